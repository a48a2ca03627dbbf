"""FastNPC load and latency benchmarks (not part of the CI test command).

- ``bench.run``: the HTTP load driver (FastNPC vs the origin plan's reference server).
- ``bench.client_bench``: our LLM client vs the openai SDK, CPU per streamed delta.
- ``bench.reference``: the origin plan's "after" design (FastAPI + AsyncOpenAI), the baseline.
"""
