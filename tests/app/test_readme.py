"""The README's API examples, pasted in order into bash against `fastnpc serve --fake-llm` on a
fresh database, all succeed: every curl answer is 2xx and no stream ends in an `error` event."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import trio

from tests.app.cliproc import ROOT, cli_env, serving

SECTION = "## API overview"


def api_examples() -> str:
    """The bash blocks of the README's API section, in order, as one script."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index(SECTION)
    end = readme.index("\n## ", start + len(SECTION))
    blocks = re.findall(r"```bash\n(.*?)```", readme[start:end], flags=re.DOTALL)
    return "\n".join(blocks)


def test_examples_name_only_what_they_created() -> None:
    script = api_examples()
    assert script.startswith("B=${B:-http://127.0.0.1:8000}")
    assert "PUT $B/api/admin/llm/limits" in script and '"max_concurrency"' in script
    # ids come from earlier answers, never literals like characters/1 or ["1","2","3"]
    assert not re.search(r"/(characters|groups)/\d", script)
    assert not re.search(r'"character_ids":\["\d', script)


# Every curl fails on an HTTP error (status >= 400) and the script stops at the first failure.
PRELUDE = """set -euo pipefail
curl() { command curl --fail-with-body -sS --max-time 120 "$@"; }
"""


async def test_readme_examples_run_against_a_fresh_server(tmp_path: Path) -> None:
    db = tmp_path / "fastnpc.db"
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent)  # `.venv/bin/fastnpc`
    env = cli_env(db)
    async with serving(["--fake-llm"], env) as server:
        script = work / "examples.sh"
        script.write_text(PRELUDE + api_examples())
        result = await trio.to_thread.run_sync(
            lambda: subprocess.run(
                ["bash", str(script)],
                cwd=work,
                env={**env, "B": server.base_url},
                capture_output=True,
                text=True,
                timeout=300,
            )
        )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "event: error" not in result.stdout, result.stdout
    for event in (
        "event: category",
        "event: character",
        "event: speakers",
        "event: reply",
        "event: round",
    ):
        assert event in result.stdout
    assert '"stopped"' in result.stdout
    assert "is ready" in result.stdout  # fastnpc admin create
