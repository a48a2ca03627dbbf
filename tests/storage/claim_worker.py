"""A job-claiming worker process for test_jobs (run with ``python -m``).

Usage: ``python -m tests.storage.claim_worker URL OWNER``. Prints ``ready``,
waits for a line on stdin (so that every worker starts claiming at once),
then claims and completes jobs until none is due and prints the claimed ids
as one JSON list.
"""

from __future__ import annotations

import json
import sys

import trio

from storage import jobs, open_database
from storage.timestamps import utcnow


async def main(url: str, owner: str) -> None:
    claimed: list[int] = []
    async with open_database(url, pool_size=2, migrate=False) as db:
        await db.ping()
        print("ready", flush=True)
        await trio.to_thread.run_sync(sys.stdin.readline)
        while True:
            job = await db.write(jobs.claim, owner=owner, lease_seconds=60, now=utcnow())
            if job is None:
                break
            claimed.append(job.id)
            await db.write(jobs.complete, job.id, owner=owner)
    print(json.dumps(claimed), flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2])
