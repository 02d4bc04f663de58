"""Measure the fallback store alone: puts and gets per second by backend and mode.

`bench/run.py` measures whole `/execute` calls, where the HTTP server, the
guard and the upstream dominate. This script isolates the store: it runs
`--tasks` concurrent tasks that each put (and then get) `--count` entries
with 1 KiB bodies, in a temporary directory, and prints puts/s, gets/s and
the p50/p99 latency of a put for `memory`, `sqlite` with `sync` durability
(with `synchronous` normal and full) and `sqlite` with `batched` durability.

Usage (from the repository root):

    python bench/storage.py                 # 4000 entries, 32 tasks
    python bench/storage.py --count 20000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from faultguard_core.storage.base import EntryKey, FallbackStore, StoredResponse
from faultguard_core.storage.memory import MemoryStore
from faultguard_core.storage.sqlite import SQLiteStore

BODY = b"x" * 1024


def _builders(directory: Path) -> dict[str, Callable[[], FallbackStore]]:
    return {
        "memory": lambda: MemoryStore(max_entries=1_000_000),
        "sqlite-sync": lambda: SQLiteStore(directory / "sync.db", durability="sync"),
        "sqlite-sync-full": lambda: SQLiteStore(
            directory / "sync-full.db", durability="sync", synchronous="full"
        ),
        "sqlite-batched": lambda: SQLiteStore(
            directory / "batched.db", durability="batched"
        ),
    }


async def _measure(store: FallbackStore, count: int, tasks: int) -> dict[str, float]:
    await store.open()
    put_latencies: list[float] = []
    keys = [
        EntryKey(key=f"k{n}", method="GET", url=f"/items/{n}") for n in range(count)
    ]
    now = time.time()

    async def put_range(start: int) -> None:
        for index in range(start, count, tasks):
            response = StoredResponse(200, (), BODY, now + index, now + index)
            began = time.perf_counter()
            await store.put(keys[index], response)
            put_latencies.append(time.perf_counter() - began)

    async def get_range(start: int) -> None:
        for index in range(start, count, tasks):
            await store.get(keys[index])

    began = time.perf_counter()
    async with anyio.create_task_group() as group:
        for start in range(tasks):
            group.start_soon(put_range, start)
    await store.flush()
    put_seconds = time.perf_counter() - began

    began = time.perf_counter()
    async with anyio.create_task_group() as group:
        for start in range(tasks):
            group.start_soon(get_range, start)
    get_seconds = time.perf_counter() - began
    await store.close()

    quantiles = statistics.quantiles(put_latencies, n=100)
    return {
        "puts_per_second": count / put_seconds,
        "gets_per_second": count / get_seconds,
        "put_p50_ms": quantiles[49] * 1000,
        "put_p99_ms": quantiles[98] * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4000, help="entries per run")
    parser.add_argument("--tasks", type=int, default=32, help="concurrent tasks")
    parser.add_argument("--json", metavar="FILE", help="also write results as JSON")
    args = parser.parse_args(argv)

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="faultguard-bench-") as directory:
        for name, build in _builders(Path(directory)).items():
            results[name] = anyio.run(_measure, build(), args.count, args.tasks)

    print(
        f"machine: {platform.machine()}, Python {platform.python_version()};"
        f" {args.count} entries of 1 KiB, {args.tasks} tasks"
    )
    print("| store | puts/s | gets/s | put p50 ms | put p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for name, figures in results.items():
        print(
            f"| {name} | {figures['puts_per_second']:,.0f}"
            f" | {figures['gets_per_second']:,.0f}"
            f" | {figures['put_p50_ms']:.3f} | {figures['put_p99_ms']:.3f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
