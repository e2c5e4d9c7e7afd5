#!/usr/bin/env python3
"""The workloads of benches/sync.rs in CPython asyncio (standard library only).

- uncontended_acquire_release: one coroutine does N acquire() + release()
  pairs on an asyncio.Semaphore(1).
- semaphore_50_gating_100k: N tasks each take a permit of an
  asyncio.Semaphore(50) (`async with`), yield once (`await asyncio.sleep(0)`)
  and give it back; the run ends when all are done (task creation included).
- mpmc_bounded_4x4_1m: 4 producers put N ints (0..N, interleaved) into an
  asyncio.Queue(1024) and 4 consumers take them out. On Python >= 3.13 the
  last producer shuts the queue down (as spindle's bench does); before that,
  each consumer gets a None sentinel. The sum is checked.

Each workload runs a few times (one event loop per run, as asyncio.run does);
the median run is reported, one line per workload:

    NAME  total S s  per-op NS ns  (OPS ops, median of R runs)

Usage: python3 benches/asyncio_sync.py [--test] [--repeat R] [NAME...]
(--test: the small sizes of the Rust bench's test mode.)
"""

import argparse
import asyncio
import statistics
import sys
import time

SIZES = {
    # name: (full size, test-mode size)
    "uncontended_acquire_release": (100_000, 10_000),
    "semaphore_50_gating_100k": (100_000, 5_000),
    "mpmc_bounded_4x4_1m": (1_000_000, 20_000),
}
GATING_PERMITS = 50
PRODUCERS = 4
CONSUMERS = 4
CAPACITY = 1024


async def uncontended(ops):
    sem = asyncio.Semaphore(1)
    start = time.perf_counter()
    for _ in range(ops):
        await sem.acquire()
        sem.release()
    elapsed = time.perf_counter() - start
    assert not sem.locked()
    return elapsed


async def gating(tasks):
    sem = asyncio.Semaphore(GATING_PERMITS)
    holding = 0
    most = 0

    async def worker():
        nonlocal holding, most
        async with sem:
            holding += 1
            most = max(most, holding)
            await asyncio.sleep(0)
            holding -= 1

    start = time.perf_counter()
    await asyncio.gather(*[asyncio.create_task(worker()) for _ in range(tasks)])
    elapsed = time.perf_counter() - start
    assert 1 <= most <= GATING_PERMITS, most
    return elapsed


async def mpmc(items):
    queue = asyncio.Queue(CAPACITY)
    can_shutdown = hasattr(queue, "shutdown")
    shut_down = getattr(asyncio, "QueueShutDown", None)
    producing = PRODUCERS

    async def producer(p):
        nonlocal producing
        for n in range(p, items, PRODUCERS):
            await queue.put(n)
        producing -= 1
        if producing == 0:
            if can_shutdown:
                queue.shutdown()
            else:
                for _ in range(CONSUMERS):
                    await queue.put(None)

    async def consumer():
        total = 0
        while True:
            if can_shutdown:
                try:
                    n = await queue.get()
                except shut_down:
                    return total
            else:
                n = await queue.get()
                if n is None:
                    return total
            total += n

    start = time.perf_counter()
    consumers = [asyncio.create_task(consumer()) for _ in range(CONSUMERS)]
    producers = [asyncio.create_task(producer(p)) for p in range(PRODUCERS)]
    await asyncio.gather(*producers)
    sums = await asyncio.gather(*consumers)
    elapsed = time.perf_counter() - start
    assert sum(sums) == items * (items - 1) // 2, sum(sums)
    return elapsed


WORKLOADS = {
    "uncontended_acquire_release": uncontended,
    "semaphore_50_gating_100k": gating,
    "mpmc_bounded_4x4_1m": mpmc,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", action="store_true", help="small sizes")
    parser.add_argument("--repeat", type=int, default=5, help="runs per workload")
    parser.add_argument("names", nargs="*", help="workloads to run (default: all)")
    args = parser.parse_args()
    names = args.names or list(WORKLOADS)
    for name in names:
        if name not in WORKLOADS:
            parser.error(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")

    print(f"# CPython {sys.version.split()[0]} asyncio", flush=True)
    for name in names:
        ops = SIZES[name][1 if args.test else 0]
        runs = [asyncio.run(WORKLOADS[name](ops)) for _ in range(max(1, args.repeat))]
        total = statistics.median(runs)
        print(
            f"{name}  total {total:.6f} s  per-op {total / ops * 1e9:.1f} ns"
            f"  ({ops} ops, median of {len(runs)} runs)",
            flush=True,
        )


if __name__ == "__main__":
    main()
