"""The origin plan's "after" design, built as the plan describes it, as a benchmark baseline.

FastAPI ``async def`` routes served by uvicorn in one process, ``openai.AsyncOpenAI`` for
every LLM call, ``asyncio.gather`` for the eight character categories and the group speakers,
one ``asyncio.Semaphore`` bounding LLM concurrency, and synchronous ``sqlite3`` calls made
directly inside the async routes (the plan keeps its database calls synchronous).

It implements only the routes the benchmark drives, with the same paths and shapes as
``/work/shared/API.md`` so one driver drives both servers.
"""

from bench.reference.app import ReferenceConfig, create_app

__all__ = ["ReferenceConfig", "create_app"]
