#!/usr/bin/env bash
# Runs the synchronization workloads in CPython asyncio (benches/asyncio_sync.py)
# and in Rust (`cargo bench --bench sync`: spindle, tokio, async-channel), then
# prints one row per workload: each peer's time per iteration (criterion's
# point estimate), spindle/peer, the asyncio time and the asyncio/spindle
# multiple.
#
# Usage: benches/compare_asyncio.sh [--test]
#   --test: small sizes on both sides (a smoke run; criterion prints no
#           estimates in test mode, so only the asyncio column is filled).
# Python: `PYENV_VERSION=3.13.0 python` if that runs, else python3; set
# PYTHON to choose another interpreter.
set -euo pipefail

cd "$(dirname "$0")/.."

test_args=()
cargo_args=()
if [[ "${1:-}" == "--test" ]]; then
    test_args=(--test)
    cargo_args=(-- --test)
fi

if [[ -n "${PYTHON:-}" ]]; then
    py=($PYTHON)
elif PYENV_VERSION=3.13.0 python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
    py=(env PYENV_VERSION=3.13.0 python)
else
    py=(python3)
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== asyncio: ${py[*]} benches/asyncio_sync.py ${test_args[*]}"
"${py[@]}" benches/asyncio_sync.py "${test_args[@]}" | tee "$out/asyncio.txt"

echo "== cargo bench --bench sync ${cargo_args[*]}"
cargo bench --bench sync "${cargo_args[@]}" | tee "$out/criterion.txt"

echo
python3 - "$out/asyncio.txt" "$out/criterion.txt" <<'EOF'
import re
import sys

asyncio_txt, criterion_txt = (open(path, encoding="utf-8").read() for path in sys.argv[1:3])

# asyncio_sync.py: "NAME  total S s  per-op NS ns  (...)"
asyncio = {
    m.group(1): float(m.group(2))
    for m in re.finditer(r"^(\w+)\s+total ([0-9.]+) s", asyncio_txt, re.M)
}

# criterion: "GROUP/FUNCTION  time:   [LOW UNIT EST UNIT HIGH UNIT]", the
# id on its own line when it is long.
UNITS = {"ps": 1e-12, "ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
rust = {}
for m in re.finditer(
    r"^(\S+)/(\S+)\s+time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", criterion_txt, re.M
):
    rust.setdefault(m.group(1), {})[m.group(2)] = float(m.group(3)) * UNITS[m.group(4)]


def fmt(seconds):
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3f} {unit}"
    return f"{seconds / 1e-9:.1f} ns"


def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "-"


rows = [("workload", "spindle", "peer", "peer time", "spindle/peer", "asyncio", "asyncio/spindle")]
for workload in dict.fromkeys(list(asyncio) + list(rust)):
    peers = rust.get(workload, {})
    spindle = peers.get("spindle")
    others = [name for name in peers if name != "spindle"] or ["-"]
    for i, peer in enumerate(others):
        peer_time = peers.get(peer)
        py = asyncio.get(workload) if i == 0 else None
        rows.append((
            workload if i == 0 else "",
            fmt(spindle) if i == 0 else "",
            peer,
            fmt(peer_time),
            ratio(spindle, peer_time),
            fmt(py) if i == 0 else "",
            ratio(py, spindle) if i == 0 else "",
        ))
widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
for row in rows:
    print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
EOF
