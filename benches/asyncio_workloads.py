#!/usr/bin/env python3
"""The per-task workloads of benches/per_task.rs in Python asyncio (standard
library only), on the default event loop or on uvloop's.

- create_and_await: create N tasks whose coroutine returns its index, keep
  them, then await each in order and sum the values:
      tasks = [asyncio.create_task(f(i)) for i in range(N)]
      for t in tasks: s += await t
- gather: await asyncio.gather(*(f(i) for i in range(N))) and sum the values
  (gather wraps each coroutine in a task).
- semaphore_gating: N tasks each take a permit of an asyncio.Semaphore(50)
  (`async with`), yield once (`await asyncio.sleep(0)`) and give it back;
  the run ends when all are done (task creation included). The most tasks
  holding a permit at once is checked to be between 1 and 50.

Each workload runs a few times, each run on a new event loop (as asyncio.run
does); the timing starts inside the loop, before the first task is created,
and ends when the last is done. The median run is reported, as a table and
as one machine-readable line per workload:

    PER_TASK <workload> asyncio|uvloop 1 <ns_per_task>

Usage: python3 benches/asyncio_workloads.py [--loop asyncio|uvloop] [--test]
                                            [--repeat R] [--tasks N] [NAME...]
(--test: 10,000 tasks and 2 runs, the size of the Rust bench's test mode.)
"""

import argparse
import asyncio
import statistics
import sys
import time

TASKS = 100_000
TASKS_TEST = 10_000
GATING_PERMITS = 50


async def value(i):
    return i


async def create_and_await(n):
    start = time.perf_counter()
    tasks = [asyncio.create_task(value(i)) for i in range(n)]
    total = 0
    for task in tasks:
        total += await task
    elapsed = time.perf_counter() - start
    assert total == n * (n - 1) // 2, total
    return elapsed


async def gather(n):
    start = time.perf_counter()
    values = await asyncio.gather(*(value(i) for i in range(n)))
    elapsed = time.perf_counter() - start
    assert sum(values) == n * (n - 1) // 2, sum(values)
    return elapsed


async def semaphore_gating(n):
    sem = asyncio.Semaphore(GATING_PERMITS)
    holding = 0
    most = 0
    done = 0

    async def worker():
        nonlocal holding, most, done
        async with sem:
            holding += 1
            most = max(most, holding)
            await asyncio.sleep(0)
            holding -= 1
        done += 1

    start = time.perf_counter()
    await asyncio.gather(*[asyncio.create_task(worker()) for _ in range(n)])
    elapsed = time.perf_counter() - start
    assert done == n, done
    assert 1 <= most <= GATING_PERMITS, most
    return elapsed


WORKLOADS = {
    "create_and_await": create_and_await,
    "gather": gather,
    "semaphore_gating": semaphore_gating,
}


def loop_factory(name):
    """A function that makes a new event loop of the chosen kind."""
    if name == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        sys.exit(
            "asyncio_workloads.py: --loop uvloop needs the uvloop package, which "
            f"{sys.executable} cannot import.\n"
            "Install it (`python -m pip install uvloop`) or run "
            "benches/compare_python.sh, which installs it into a virtual environment."
        )
    return uvloop.new_event_loop


def run_once(factory, workload, n):
    """One run on a fresh event loop; returns the seconds it took."""
    loop = factory()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(workload(n))
    finally:
        asyncio.set_event_loop(None)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--test", action="store_true", help="small sizes, 2 runs")
    parser.add_argument("--repeat", type=int, help="runs per workload (default 5, 2 with --test)")
    parser.add_argument("--tasks", type=int, help="tasks per run (default 100,000)")
    parser.add_argument("names", nargs="*", help="workloads to run (default: all)")
    args = parser.parse_args()
    names = args.names or list(WORKLOADS)
    for name in names:
        if name not in WORKLOADS:
            parser.error(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
    n = args.tasks or (TASKS_TEST if args.test else TASKS)
    repeat = max(1, args.repeat or (2 if args.test else 5))
    factory = loop_factory(args.loop)

    version = sys.version.split()[0]
    if args.loop == "uvloop":
        import uvloop

        version += f", uvloop {uvloop.__version__}"
    print(f"# Python {version} ({sys.implementation.name}), loop: {args.loop}", flush=True)
    print(f"# {n} tasks per run, median of {repeat} runs", flush=True)
    print(f"# {'workload':<18} {'total':>12} {'per task':>12}", flush=True)
    lines = []
    for name in names:
        runs = [run_once(factory, WORKLOADS[name], n) for _ in range(repeat)]
        total = statistics.median(runs)
        ns = total / n * 1e9
        print(f"# {name:<18} {total * 1e3:>9.3f} ms {ns:>9.1f} ns", flush=True)
        lines.append(f"PER_TASK {name} {args.loop} 1 {ns:.1f}")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
