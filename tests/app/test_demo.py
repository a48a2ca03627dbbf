"""`fastnpc demo` with its provider down ends with one line saying what failed, not a traceback."""

from __future__ import annotations

import socket

from tests.app.cliproc import cli_env, run_cli


def test_demo_with_provider_down_says_what_failed_in_one_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # nothing listens here once the socket is closed
    env = cli_env(
        OPENROUTER_API_KEY="k",
        FASTNPC_OPENROUTER_BASE_URL=f"http://127.0.0.1:{closed}/v1",
        FASTNPC_LLM_MAX_RETRIES="0",
    )
    result = run_cli(["demo"], env, timeout=120)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "ExceptionGroup" not in output
    failures = [line for line in output.splitlines() if line.startswith("fastnpc demo: failed:")]
    assert len(failures) == 1, output
    assert "/api/characters/" in failures[0]  # names the step's request
    assert output.strip().splitlines()[-1] == failures[0]
