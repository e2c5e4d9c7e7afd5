#!/usr/bin/env bash
# Runs the benchmarks and writes docs/benchmarks.md and docs/benchmarks.png.
#
#   benches/report.sh                      every bench ([[bench]] in Cargo.toml), then the report
#   benches/report.sh scheduler sync       only these benches (the others' earlier
#                                          criterion output and logs are reported as they are)
#   benches/report.sh --no-run             no bench: only regenerate the report and the plot
#   benches/report.sh structured -- ARGS   pass ARGS to every bench run: criterion's
#                                          options, e.g. `-- fib_25` (only the benchmarks
#                                          whose id contains fib_25). Note that the groups of
#                                          these benches set their own warm-up, measurement
#                                          time and sample size, which take precedence over
#                                          criterion's --warm-up-time etc.
#
# For each bench run, its stdout is captured (and shown) in
# ${CARGO_TARGET_DIR:-target}/bench-logs/<bench>.txt and its exit code, start
# and end times and load averages in <bench>.status; a bench that fails does
# not stop the others, but makes this script exit non-zero once the report is
# written. Then benches/report.py reads criterion's output
# (${CARGO_TARGET_DIR:-target}/criterion) and the logs and writes the report;
# the plot needs matplotlib, which is installed (pinned) into a virtualenv at
# ${CARGO_TARGET_DIR:-target}/bench-venv the first time. If that cannot be done
# (no network, no venv module) the report is written without the plot.
#
# Full measurements want an otherwise idle machine: the benches compare
# runtimes one after the other, so background load skews the ratios.
set -euo pipefail

MATPLOTLIB_VERSION=3.9.4

cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
logs=$target/bench-logs
venv=$target/bench-venv

run=1
benches=()
bench_args=()
while [ $# -gt 0 ]; do
    case $1 in
        --no-run) run=0 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        --) shift; bench_args=("$@"); break ;;
        -*) echo "report.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *)
            if [ ! -f "benches/$1.rs" ]; then
                echo "report.sh: no bench benches/$1.rs" >&2
                exit 2
            fi
            benches+=("$1")
            ;;
    esac
    shift
done
if [ ${#benches[@]} -eq 0 ]; then
    # Every [[bench]] target of Cargo.toml, in its order.
    while IFS= read -r name; do
        benches+=("$name")
    done < <(awk '/^\[/ { in_bench = ($0 == "[[bench]]") }
                  in_bench && match($0, /^name *= *"[^"]+"/) {
                      s = substr($0, RSTART, RLENGTH); sub(/^name *= *"/, "", s); sub(/"$/, "", s)
                      print s
                  }' Cargo.toml)
fi

failed=()
if [ $run -eq 1 ]; then
    mkdir -p "$logs"
    # Build them all first, so that compiling does not overlap the first bench.
    build=()
    for b in "${benches[@]}"; do build+=(--bench "$b"); done
    cargo bench --no-run "${build[@]}" ||
        echo "report.sh: building the benches together failed; each is built on its own" >&2
    for b in "${benches[@]}"; do
        echo "=== report.sh: cargo bench --bench $b -- ${bench_args[*]:-}" >&2
        status=$logs/$b.status
        {
            echo "start=$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
            echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
            echo "args=${bench_args[*]:-}"
            commit=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
            if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
                commit="$commit (with uncommitted changes)"
            fi
            echo "commit=$commit"
        } > "$status"
        rc=0
        cargo bench --bench "$b" -- "${bench_args[@]}" | tee "$logs/$b.txt" || rc=$?
        {
            echo "end=$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
            echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
            echo "exit=$rc"
        } >> "$status"
        if [ $rc -ne 0 ]; then
            echo "report.sh: bench $b failed (exit $rc); continuing" >&2
            failed+=("$b")
        fi
    done
fi

# Python for the report: the virtualenv with matplotlib if it can be had,
# else the system's python3 (tables only).
python=python3
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    python=$venv/bin/python
elif python3 -m venv "$venv" >&2 &&
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "matplotlib==$MATPLOTLIB_VERSION" >&2; then
    python=$venv/bin/python
else
    echo "report.sh: could not install matplotlib into $venv: the report will have no plot" >&2
fi

"$python" benches/report.py

if [ ${#failed[@]} -gt 0 ]; then
    echo "report.sh: these benches failed: ${failed[*]} (logs in $logs)" >&2
    exit 1
fi
