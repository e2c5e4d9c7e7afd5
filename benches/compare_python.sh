#!/usr/bin/env bash
# Per-task costs of spindle next to Python's: runs the workloads of
# benches/per_task.rs (create_and_await, gather, semaphore_gating; spindle,
# tokio and smol, each at 1 worker and at all cores) and the same workloads in
# Python (benches/asyncio_workloads.py) under plain asyncio and under uvloop,
# then prints one table: ns per task for every runtime, the asyncio/spindle
# and uvloop/spindle multiples, and whether spindle is >= 100x faster than
# asyncio (the performance target).
#
# Usage: benches/compare_python.sh [--test]
#   --test: a smoke run: 10,000 tasks, criterion's test mode (one iteration
#           per function) and 2 Python runs; the numbers are not measurements.
#
# Python: a virtual environment in ${CARGO_TARGET_DIR:-target}/python-venv,
# made on first use from `PYENV_VERSION=3.13.0 python` if that is a 3.13,
# else from python3 (set PYTHON to choose the interpreter; delete the venv to
# make it anew), with uvloop installed from PyPI at the version pinned below.
# A full run takes about 3 minutes on 2 cores (cargo build not included).
#
# The synchronization workloads (uncontended acquire/release, semaphore
# gating, MPMC queue) against asyncio are benches/compare_asyncio.sh.
set -euo pipefail

# Pinned so numbers compare from run to run; 0.21.0 is the first release
# with Python 3.13 wheels.
UVLOOP_VERSION=0.23.0

die() {
    echo "compare_python.sh: $*" >&2
    exit 1
}

cd "$(dirname "$0")/.."

test_args=()
cargo_args=()
case "${1:-}" in
    "") ;;
    --test)
        test_args=(--test)
        cargo_args=(-- --test)
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$1' (usage: benches/compare_python.sh [--test])" ;;
esac
[[ $# -le 1 ]] || die "too many arguments (usage: benches/compare_python.sh [--test])"

command -v cargo >/dev/null || die "cargo is not on PATH"

target_dir="${CARGO_TARGET_DIR:-target}"
venv="$target_dir/python-venv"

# ---------------------------------------------------------------------------
# The virtual environment, with uvloop.

if [[ ! -x "$venv/bin/python" ]]; then
    if [[ -n "${PYTHON:-}" ]]; then
        base=($PYTHON)
    elif PYENV_VERSION=3.13.0 python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
        base=(env PYENV_VERSION=3.13.0 python)
    elif command -v python3 >/dev/null; then
        base=(python3)
    else
        die "no Python found: install python3 or set PYTHON"
    fi
    echo "== creating the virtual environment $venv with ${base[*]}"
    mkdir -p "$target_dir"
    "${base[@]}" -m venv "$venv" ||
        die "'${base[*]} -m venv $venv' failed (on Debian, the venv module is the python3-venv package)"
fi
py="$venv/bin/python"

if ! "$py" -c "import sys, uvloop; sys.exit(uvloop.__version__ != '$UVLOOP_VERSION')" 2>/dev/null; then
    echo "== installing uvloop==$UVLOOP_VERSION into $venv"
    "$py" -m pip install --disable-pip-version-check --quiet "uvloop==$UVLOOP_VERSION" ||
        die "could not install uvloop==$UVLOOP_VERSION with $py (is PyPI reachable? does it have a wheel or can it build one for $("$py" -V 2>&1)?)"
    "$py" -c "import uvloop" || die "uvloop was installed but $py cannot import it"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# ---------------------------------------------------------------------------
# The runs.

for loop in asyncio uvloop; do
    echo "== $loop: $py benches/asyncio_workloads.py --loop $loop ${test_args[*]}"
    "$py" benches/asyncio_workloads.py --loop "$loop" "${test_args[@]}" | tee "$out/$loop.txt" ||
        die "the Python workloads failed under $loop"
done

echo "== cargo bench --bench per_task ${cargo_args[*]}"
cargo bench --bench per_task "${cargo_args[@]}" | tee "$out/rust.txt" ||
    die "cargo bench --bench per_task failed"

# ---------------------------------------------------------------------------
# The table.

echo
"$py" - "$out" "${test_args[@]}" <<'EOF'
import pathlib
import sys

out = pathlib.Path(sys.argv[1])
test_mode = "--test" in sys.argv[2:]
TARGET = 100.0

# "PER_TASK <workload> <runtime> <workers> <ns_per_task>"
results = {}
workloads = []
for name in ("rust", "asyncio", "uvloop"):
    for line in (out / f"{name}.txt").read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) == 5 and fields[0] == "PER_TASK":
            _, workload, runtime, workers, ns = fields
            results[(workload, runtime, int(workers))] = float(ns)
            if workload not in workloads:
                workloads.append(workload)

rust_workers = sorted({w for (_, runtime, w) in results if runtime == "spindle"})
if not rust_workers:
    sys.exit("compare_python.sh: no PER_TASK lines from cargo bench --bench per_task")
for loop in ("asyncio", "uvloop"):
    if not any(runtime == loop for (_, runtime, _) in results):
        sys.exit(f"compare_python.sh: no PER_TASK lines from the {loop} run")


def ns(value):
    return "-" if value is None else f"{value:,.1f}"


def multiple(py, spindle):
    return "-" if py is None or not spindle else f"{py / spindle:,.1f}x"


header = (
    "workload", "workers", "spindle", "tokio", "smol", "asyncio", "uvloop",
    "asyncio/spindle", "uvloop/spindle", f">= {TARGET:.0f}x vs asyncio",
)
rows = [header]
met = {}
for workload in workloads:
    asyncio_ns = results.get((workload, "asyncio", 1))
    uvloop_ns = results.get((workload, "uvloop", 1))
    for w in rust_workers:
        spindle = results.get((workload, "spindle", w))
        ok = asyncio_ns is not None and spindle and asyncio_ns / spindle >= TARGET
        met.setdefault(w, []).append(ok)
        rows.append((
            workload, str(w), ns(spindle), ns(results.get((workload, "tokio", w))),
            ns(results.get((workload, "smol", w))), ns(asyncio_ns), ns(uvloop_ns),
            multiple(asyncio_ns, spindle), multiple(uvloop_ns, spindle),
            "yes" if ok else "NO",
        ))

print("Per-task cost, ns per task (lower is better). Rust: criterion's measurement mean at")
print("that many worker threads; Python: one thread, median run. Multiples: Python time /")
print("spindle time (higher: spindle faster).")
if test_mode:
    print("TEST MODE: 10,000 tasks, one iteration per Rust function, 2 Python runs: a smoke")
    print("run, not a measurement.")
widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
for i, row in enumerate(rows):
    cells = [cell.ljust(width) if c == 0 else cell.rjust(width)
             for c, (cell, width) in enumerate(zip(row, widths))]
    print("  ".join(cells))
    if i == 0:
        print("  ".join("-" * width for width in widths))
print()
for w in rust_workers:
    verdict = "met" if all(met[w]) else "NOT met"
    print(f"Target (>= {TARGET:.0f}x vs asyncio on every workload) at {w} worker(s): {verdict}"
          f" ({sum(met[w])} of {len(met[w])} workloads)")
EOF
