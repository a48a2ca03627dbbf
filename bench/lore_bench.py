"""Prompt assembly cost of lorebooks: 1,000 entries scanned over a 20-message conversation.

    python bench/lore_bench.py [--entries 1000] [--messages 20] [--rounds 200]

Times `select_lore` (activation, budget, order) plus the system prompt it feeds, the work done
for every reply. Entries are plain substring keys (two each, a tenth selective, a few regex),
a few of which the conversation mentions. Target (issue 16): under 5 ms per prompt.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime

from app.services.lore_activation import select_lore
from app.services.prompts import build_prompt, character_system_prompt
from storage.records import Character, Lorebook, LoreEntry

NOW = datetime(2026, 1, 1, tzinfo=UTC)
WORDS = "the a of and to in is it that was he she they ship storm glade king river".split()


def make_book(entries: int, rng: random.Random) -> Lorebook:
    out = []
    for i in range(entries):
        regex = i % 100 == 0
        out.append(
            LoreEntry(
                id=i + 1,
                lorebook_id=1,
                keys=[rf"place{i}\b", f"/person{i}s?/i"] if regex else [f"place{i}", f"人物{i}"],
                secondary_keys=["storm"] if i % 10 == 1 else [],
                selective=i % 10 == 1,
                constant=i == 0,
                enabled=True,
                case_sensitive=False,
                use_regex=regex,
                content=f"Entry {i}: " + " ".join(rng.choices(WORDS, k=40)),
                insertion_order=rng.randint(0, 100),
                priority=rng.randint(0, 10),
                position="before_char" if i % 2 else "after_char",
                comment="",
            )
        )
    return Lorebook(1, 1, "bench", "", 20, 2048, True, out, NOW, NOW)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(16)
    book = make_book(args.entries, rng)
    history = [
        " ".join(rng.choices(WORDS, k=60)) + f" near place{rng.randrange(args.entries)}"
        for _ in range(args.messages)
    ]
    character = Character(1, 1, "Mira", "ready", {}, None, NOW, NOW)
    timings = []
    chosen = 0
    for _ in range(args.rounds):
        start = time.perf_counter()
        lore = select_lore([book], history)
        system = character_system_prompt(character, [], lore)
        build_prompt(system, [("user", m) for m in history], budget=6000)
        timings.append(time.perf_counter() - start)
        chosen = len(lore.entries)
    timings.sort()
    print(
        f"{args.entries} entries x {args.messages}-message scan (scan_depth 20, recursive): "
        f"median {statistics.median(timings) * 1000:.2f} ms, "
        f"p95 {timings[int(len(timings) * 0.95)] * 1000:.2f} ms, "
        f"{chosen} entries inserted"
    )


if __name__ == "__main__":
    main()
