"""``python -m llm.fake``: the same as ``fastnpc fake-llm``."""

from llm.fake.cli import run_fake_upstream_cli

run_fake_upstream_cli()
