#!/usr/bin/env python3
"""Writes docs/benchmarks.md (and docs/benchmarks.png) from criterion's output.

Run through `benches/report.sh`, which runs the benches first (or not, with
`--no-run`) and provides matplotlib for the plot; this script alone needs only
the standard library (without matplotlib it writes the tables and skips the
plot).

Inputs:
- `<target>/criterion/**/new/benchmark.json` + `estimates.json`: every
  criterion result (mean per iteration with its 95% confidence interval), where
  `<target>` is `$CARGO_TARGET_DIR`, else `target`;
- `<target>/bench-logs/<bench>.txt`: the stdout of the last run of each bench
  that `report.sh` made. It says which criterion ids that run measured (so
  results left behind by older versions of a bench are not reported) and holds
  the summaries some benches print outside criterion (net, fibers, memory,
  timers' lateness), which are copied verbatim into the report;
- `<target>/bench-logs/<bench>.status`: that run's exit code and times.

Pairing: in every criterion group, each function whose name starts with
`spindle` is paired with every other function (a peer) of the same group and
worker count; the ratio is spindle's mean time / the peer's (below 1: spindle
faster). The worker count is the criterion parameter (`group/function/<w>`,
as in scheduler.rs and structured.rs); for benches without one it is the
bench's own worker count (see BENCHES).
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import subprocess
import sys

# The bench files, in report order: (bench, criterion groups (regex), worker
# count of functions without a worker parameter, what it compares).
BENCHES = [
    ("scheduler",
     r"spawn_many_local|spawn_many_remote_idle|spawn_many_remote_busy|yield_many|ping_pong"
     r"|chained_spawn|skynet",
     None, "tokio's rt_multi_threaded workloads and skynet: spindle, tokio, smol"),
    ("structured", r"fib_\d+|gather_100k", None,
     "fork-join fib and gather: spindle (task group, gather), tokio, smol, rayon"),
    ("timers", r"sleeps_fire|timeouts_mostly_cancelled|insert_cancel_.*", "all",
     "timers: spindle, tokio, smol (async-io)"),
    ("sync", r"uncontended_acquire_release|semaphore_50_gating_100k|mpmc_bounded_.*", "all",
     "semaphore and bounded MPMC queue: spindle, tokio, smol (async-lock, async-channel), "
     "async-channel on tokio"),
    ("net", r"tcp_echo_.*", 2, "TCP echo over loopback: spindle, tokio, smol (async-io)"),
    ("fibers", r"fiber_switch|fiber_spawn_join", "all",
     "C fibers: spindle, may, corosensei, OS threads"),
    ("memory", None, None, "memory per parked task: spindle, tokio, smol (not criterion)"),
    ("per_task", r"create_and_await|gather|semaphore_gating", None,
     "per-task cost of the Python comparison's workloads: spindle, tokio, smol"),
]
# A bench declared in Cargo.toml but not listed above gets a section too: its
# groups are those of the ids its log shows measured, its functions without a
# worker parameter count as running on all cores, and its stdout from a line
# `<something> summary:` on is copied.
LOGGED = "(from the log)"
UNKNOWN_EXTRA = ("from", r"^\S.* summary:")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What of each bench's stdout goes into the report verbatim: ("from", regex)
# copies from the first matching line to the end; ("lines", regex) copies the
# matching lines.
EXTRA_OUTPUT = {
    "net": ("from", r"^tcp echo summary:"),
    "fibers": ("from", r"^fibers summary:"),
    "memory": ("from", r"^memory summary:"),
    "timers": ("lines", r"p99 lateness"),
}

# The performance targets, as spindle time / peer time (lower is better):
# (groups (regex), spindle function, peer function, operator, limit, source).
SCHED_SET = (r"spawn_many_local|spawn_many_remote_idle|spawn_many_remote_busy|yield_many"
             r"|ping_pong|chained_spawn")
TARGETS = [
    (SCHED_SET, "spindle", "tokio", "<=", 0.8, "tokio rt_multi_threaded set"),
    (r"skynet", "spindle", "tokio", "<=", 0.75, "skynet"),
    (r"skynet", "spindle", "smol", "<", 1.0, "skynet"),
    (r"fib_30", "spindle_task_group", "tokio_joinset", "<=", 0.8, "fork-join fib(30)"),
    (r"fib_30", "spindle_task_group", "rayon_join", "<=", 5.0, "fork-join fib(30)"),
    (r"fib_30", "spindle_task_group_eager", "tokio_joinset", "<=", 0.8,
     "fork-join fib(30), children started eagerly"),
    (r"fib_30", "spindle_task_group_eager", "rayon_join", "<=", 5.0,
     "fork-join fib(30), children started eagerly"),
    (r"sleeps_fire", "spindle", "tokio", "<=", 0.5, "1M timers firing"),
    (r"timeouts_mostly_cancelled", "spindle", "tokio", "<=", 0.5, "100k timeouts"),
    (r"semaphore_50_gating_100k", "spindle", "tokio", "<=", 0.8, "Semaphore(50)"),
    (r"mpmc_bounded_4x4_1m", "spindle", "tokio_mpsc_1consumer", "<=", 0.8, "bounded MPMC queue"),
    (r"tcp_echo_.*", "spindle", "tokio", "<=", 1 / 1.1, "TCP echo >= 1.1x tokio throughput"),
]

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR") or "target"


# ---------------------------------------------------------------------------
# Reading criterion's output and the logs.

class Result:
    """One criterion result: mean time per iteration, in ns, with its CI."""

    def __init__(self, group, function, value, mean, lower, upper, mtime):
        self.group, self.function, self.value = group, function, value
        self.mean, self.lower, self.upper, self.mtime = mean, lower, upper, mtime

    @property
    def full_id(self):
        parts = [self.group, self.function] + ([self.value] if self.value is not None else [])
        return "/".join(p for p in parts if p is not None)


def read_criterion(root):
    """Every result under `root` (criterion's directory), by full id."""
    results = {}
    if not os.path.isdir(root):
        return results
    for dirpath, dirnames, filenames in os.walk(root):
        if os.path.basename(dirpath) != "new":
            continue
        dirnames[:] = []
        if "benchmark.json" not in filenames or "estimates.json" not in filenames:
            continue
        try:
            with open(os.path.join(dirpath, "benchmark.json")) as f:
                bench = json.load(f)
            with open(os.path.join(dirpath, "estimates.json")) as f:
                est = json.load(f)
            mean = est["mean"]
            ci = mean["confidence_interval"]
            r = Result(bench["group_id"], bench.get("function_id"), bench.get("value_str"),
                       float(mean["point_estimate"]), float(ci["lower_bound"]),
                       float(ci["upper_bound"]),
                       os.path.getmtime(os.path.join(dirpath, "estimates.json")))
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"report.py: skipping {dirpath}: {e}", file=sys.stderr)
            continue
        results[bench.get("full_id") or r.full_id] = r
    return results


def read_log(path):
    """The lines of a bench's captured stdout (ANSI colours removed), or None."""
    try:
        with open(path, errors="replace") as f:
            return [ANSI.sub("", line).rstrip() for line in f]
    except OSError:
        return None


def measured_ids(lines):
    """The criterion ids the logged run measured (those with a `time:` line)."""
    ids, previous = [], ""
    for line in lines:
        m = re.match(r"^(.*?)\s*time:\s+\[", line)
        if m:
            ident = m.group(1).strip() or previous.strip()
            # `change: time: [...]` compares with the previous run: no id.
            if ident and not ident.endswith(":"):
                ids.append(ident)
        if line.strip():
            previous = line
    return ids


def find_logged(ident, results):
    """The result of a logged id (criterion shortens long titles with `...`)."""
    if ident in results:
        return results[ident]
    if ident.endswith("..."):
        found = [r for k, r in results.items() if k.startswith(ident[:-3])]
        if len(found) == 1:
            return found[0]
    return None


def declared_benches():
    """The names of the `[[bench]]` targets in Cargo.toml."""
    names, in_bench = [], False
    try:
        with open(os.path.join(ROOT, "Cargo.toml")) as f:
            for line in f:
                line = line.strip()
                if line.startswith("["):
                    in_bench = line == "[[bench]]"
                    continue
                m = re.match(r'name\s*=\s*"([^"]+)"', line)
                if in_bench and m:
                    names.append(m.group(1))
    except OSError:
        pass
    return names


def extra_output(bench, lines):
    known = [b[0] for b in BENCHES]
    spec = EXTRA_OUTPUT.get(bench) if bench in known else UNKNOWN_EXTRA
    if not spec or not lines:
        return []
    kind, pattern = spec
    if kind == "lines":
        return [line for line in lines if re.search(pattern, line)]
    for i, line in enumerate(lines):
        if re.search(pattern, line):
            out = lines[i:]
            while out and not out[-1].strip():
                out.pop()
            return out
    return []


def read_status(path):
    """`key=value` lines written by report.sh (exit code, start, end, load)."""
    status = {}
    try:
        with open(path) as f:
            for line in f:
                if "=" in line:
                    key, value = line.rstrip("\n").split("=", 1)
                    status[key] = value
    except OSError:
        pass
    return status


# ---------------------------------------------------------------------------
# Pairing and targets.

def workers_of(result, default, cores):
    if result.value is not None and re.fullmatch(r"\d+", result.value):
        return int(result.value)
    if result.function and re.search(r"_1worker$", result.function):
        return 1
    if default == "all":
        return cores
    return default


def target_for(group, spindle, peer):
    for groups, s, p, op, limit, source in TARGETS:
        if re.fullmatch(groups, group) and s == spindle and p == peer:
            return op, limit, source
    return None


def meets(op, limit, value):
    return value <= limit if op == "<=" else value < limit


def rows_for(results, default_workers, cores):
    """Table rows: dicts of group, workers, spindle result, peer result (or
    None), in run order (criterion writes results as it goes)."""
    groups = {}
    for r in sorted(results, key=lambda r: r.mtime):
        groups.setdefault(r.group, []).append(r)
    rows = []
    for group, members in groups.items():
        by_workers = {}
        for r in members:
            by_workers.setdefault(workers_of(r, default_workers, cores), []).append(r)
        for w in sorted(by_workers, key=lambda w: (w is None, w or 0)):
            same = by_workers[w]
            spindles = [r for r in same if (r.function or "").startswith("spindle")]
            peers = [r for r in same if not (r.function or "").startswith("spindle")]
            for s in spindles:
                for p in peers or [None]:
                    rows.append({"group": group, "workers": w, "spindle": s, "peer": p})
            if not spindles:
                for p in peers:
                    rows.append({"group": group, "workers": w, "spindle": None, "peer": p})
    return rows


# ---------------------------------------------------------------------------
# Formatting.

def fmt_ns(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}" if ns / scale < 100 else f"{ns / scale:.0f} {unit}"
    return f"{ns:.3g} ns"


def fmt_result(r):
    if r is None:
        return "—"
    half = (r.upper - r.lower) / 2
    pct = 100 * half / r.mean if r.mean > 0 else 0
    return f"{fmt_ns(r.mean)} ±{pct:.1f}%"


def ratio_of(row):
    s, p = row["spindle"], row["peer"]
    if s is None or p is None or p.mean <= 0 or p.lower <= 0:
        return None
    return s.mean / p.mean, s.lower / p.upper, s.upper / p.lower


def verdict(row):
    s, p = row["spindle"], row["peer"]
    if s is None or p is None:
        return "", ""
    t = target_for(row["group"], s.function, p.function)
    if t is None:
        return "", ""
    op, limit, _ = t
    if ratio_of(row) is None:
        return f"{op} {limit:.2f}", "?"
    ratio, low, high = ratio_of(row)
    text = "yes" if meets(op, limit, ratio) else "**no**"
    if meets(op, limit, low) != meets(op, limit, high):
        text += " (within noise)"
    return f"{op} {limit:.2f}", text


def machine():
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info.setdefault("cpu", platform.processor() or platform.machine())
    info["cores"] = os.cpu_count()
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["ram"] = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                    break
    except (OSError, ValueError, IndexError):
        pass
    info.setdefault("ram", "?")
    info["kernel"] = f"{platform.system()} {platform.release()}"

    def run(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    info["rustc"] = run("rustc", "--version")
    commit = run("git", "rev-parse", "--short", "HEAD")
    if commit != "?" and run("git", "status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    info["commit"] = commit
    info["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return info


# ---------------------------------------------------------------------------
# The plot.

def plot(rows, path):
    """A horizontal bar chart of every ratio, log scale, a line at 1.0 and a
    tick at each target. Returns an error message, or None."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (benches/report.sh installs it into a virtualenv)"
    bars = [r for r in rows if ratio_of(r) is not None]
    if not bars:
        return "no ratio to plot"
    bars = list(reversed(bars))  # matplotlib draws bottom-up; keep the table's order
    labels = [f"{r['group']} · {r['workers']}w · {r['spindle'].function} / {r['peer'].function}"
              for r in bars]
    values = [ratio_of(r)[0] for r in bars]
    errors = [[v - ratio_of(r)[1] for v, r in zip(values, bars)],
              [ratio_of(r)[2] - v for v, r in zip(values, bars)]]
    peers = sorted({r["peer"].function for r in bars})
    palette = plt.get_cmap("tab10")
    hues = [0, 1, 2, 4, 5, 6, 7, 8, 9]  # tab10 without its red, the colour of the targets
    colour = {p: palette(hues[i % len(hues)]) for i, p in enumerate(peers)}
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.26 * len(bars)))
    ys = range(len(bars))
    # Bars grow from 1.0 (parity) to the ratio: left for spindle faster.
    ax.barh(ys, [v - 1.0 for v in values], left=1.0,
            color=[colour[r["peer"].function] for r in bars])
    ax.errorbar(values, list(ys), xerr=errors, fmt="none", elinewidth=0.8, capsize=1.5,
                ecolor="0.3")
    for y, r in zip(ys, bars):
        t = target_for(r["group"], r["spindle"].function, r["peer"].function)
        if t:
            ax.plot([t[1], t[1]], [y - 0.4, y + 0.4], color="red", linewidth=1.5)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(list(ys))
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_ylim(-0.6, len(bars) - 0.4)
    ax.set_xlabel("spindle time / peer time (log scale; below 1: spindle faster; "
                  "red ticks: targets; whiskers: 95% CI)")
    lo = min(min(values), min(ratio_of(r)[1] for r in bars), 0.5)
    hi = max(max(values), max(ratio_of(r)[2] for r in bars), 2.0)
    ax.set_xlim(lo / 1.3, hi * 1.3)
    ax.grid(axis="x", which="both", linewidth=0.3, alpha=0.5)
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(color=colour[p], label=p) for p in peers], title="peer",
              fontsize=7, title_fontsize=7, loc="best")
    ax.set_title("spindle / peer, per workload and worker count")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# ---------------------------------------------------------------------------
# The report.

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/benchmarks.md", help="the Markdown file to write")
    parser.add_argument("--plot", default=None,
                        help="the PNG to write (default: benchmarks.png next to --out)")
    parser.add_argument("--command", default="benches/report.sh",
                        help="the command shown as the way to reproduce")
    args = parser.parse_args()
    out = args.out
    png = args.plot or os.path.join(os.path.dirname(out) or ".", "benchmarks.png")

    tdir = target_dir()
    results = read_criterion(os.path.join(tdir, "criterion"))
    logs = os.path.join(tdir, "bench-logs")
    cores = os.cpu_count() or 1
    m = machine()

    md = ["# Benchmarks", "",
          "Generated by `benches/report.py` (through `benches/report.sh`) from criterion's "
          "output; do not edit by hand.", "",
          "## Machine", "",
          f"- CPU: {m['cpu']}, {m['cores']} cores (logical CPUs)",
          f"- RAM: {m['ram']}",
          f"- Kernel: {m['kernel']}",
          f"- Rust: {m['rustc']}",
          f"- Commit when this report was written: {m['commit']} (each bench's section "
          "says the commit it ran at)",
          f"- Report written: {m['date']}",
          "",
          "## Reproduce", "",
          "```sh",
          f"{args.command}                 # every bench, then this report (long: each "
          "bench file's header says how long it takes)",
          f"{args.command} scheduler sync  # only these benches; the others' earlier results "
          "are kept",
          f"{args.command} --no-run        # only regenerate this file and the plot",
          "```", "",
          "Times are criterion's mean time per iteration, ± half the width of its 95% "
          "confidence interval. **ratio** = spindle's time / the peer's time: below 1, spindle "
          "is faster (for throughput benches, 1/ratio is spindle's throughput relative to the "
          "peer). Each peer runs in the same process and run as spindle, with the same number "
          "of worker threads (**workers**), and peer versions are pinned in `Cargo.toml`. "
          "**target** is the goal for that ratio; *within noise* means the ratio's confidence "
          "range (spindle's CI against the peer's) crosses the target.", "",
          "![spindle / peer ratios](benchmarks.png)", ""]

    all_rows = []
    claimed = set()
    benches = list(BENCHES)
    for name in declared_benches():
        if name not in [b[0] for b in benches]:
            benches.append((name, LOGGED, "all", "not described by benches/report.py"))
    for bench, groups, default_workers, what in benches:
        md += [f"## {bench}", "", f"`benches/{bench}.rs`: {what}.", ""]
        lines = read_log(os.path.join(logs, f"{bench}.txt"))
        if groups == LOGGED:
            logged_groups = {i.split("/")[0] for i in (measured_ids(lines) if lines else [])}
            groups = "|".join(re.escape(g) for g in sorted(logged_groups)) or r"(?!)"
        status = read_status(os.path.join(logs, f"{bench}.status"))
        if status:
            note = f"Last run by report.sh: {status.get('start', '?')} to {status.get('end', '?')}"
            if status.get("commit"):
                note += f", at commit {status['commit']}"
            if status.get("load_before"):
                note += (f", load average {status['load_before']} before and "
                         f"{status.get('load_after', '?')} after")
            if status.get("args"):
                note += f", criterion arguments `{status['args']}`"
            rc = status.get("exit", "0")
            note += "." if rc == "0" else f"; **it failed (exit {rc})**, see the log."
            md += [note, ""]
        mine = []
        if groups is not None:
            matching = {k: r for k, r in results.items() if re.fullmatch(groups, r.group)}
            claimed.update(matching)
            logged = measured_ids(lines) if lines else []
            if logged:
                found = {i: find_logged(i, matching) for i in dict.fromkeys(logged)}
                mine = [r for r in found.values() if r is not None]
                missing = [i for i, r in found.items() if r is None]
                if missing:
                    md += ["Measured in the logged run but without criterion output: "
                           + ", ".join(f"`{i}`" for i in missing) + ".", ""]
            else:
                mine = list(matching.values())
                if mine:
                    md += [f"(No log of a measured run in `{logs}/{bench}.txt`: every criterion "
                           "result found for this bench's groups is shown, whenever it was "
                           "measured.)", ""]
            if not mine:
                md += [f"_No criterion output for this bench under `{tdir}/criterion` "
                       "(not run yet, run in test mode only, or it failed): skipped._", ""]
        rows = rows_for(mine, default_workers, cores)
        all_rows += [r for r in rows if r["spindle"] is not None]
        if rows:
            md += ["| workload | workers | spindle | time | peer | time | ratio | target | met |",
                   "|---|---:|---|---:|---|---:|---:|---:|---|"]
            for r in rows:
                s, p = r["spindle"], r["peer"]
                ratio = ratio_of(r)
                target, met = verdict(r)
                md.append("| " + " | ".join([
                    f"`{r['group']}`",
                    "—" if r["workers"] is None else str(r["workers"]),
                    f"`{s.function}`" if s else "—",
                    fmt_result(s),
                    f"`{p.function}`" if p else "—",
                    fmt_result(p),
                    f"{ratio[0]:.3f}" if ratio else "—",
                    target,
                    met,
                ]) + " |")
            md.append("")
        extra = extra_output(bench, lines)
        if extra:
            md += ["Printed by the bench outside criterion (verbatim, from "
                   f"`{logs}/{bench}.txt`):", "", "```"] + extra + ["```", ""]
        elif groups is None:
            md += [f"_No summary in `{logs}/{bench}.txt` (not run by report.sh yet, or it "
                   "failed): skipped._", ""]

    others = sorted({r.group for k, r in results.items() if k not in claimed})
    if others:
        md += ["## Other criterion output", "",
               "Groups under the criterion directory that no bench file above claims "
               "(renamed or removed workloads?): " + ", ".join(f"`{g}`" for g in others) + ".",
               ""]

    met = [verdict(r)[1] for r in all_rows if verdict(r)[1]]
    if met:
        hit = sum(1 for v in met if v.startswith("yes"))
        md[md.index("![spindle / peer ratios](benchmarks.png)"):
           md.index("![spindle / peer ratios](benchmarks.png)")] = [
            f"Targets met: {hit} of {len(met)} ratios that have one.", ""]

    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    error = plot(all_rows, png)
    if error:
        md = [line for line in md if line != "![spindle / peer ratios](benchmarks.png)"]
        md.insert(md.index("## Machine"), f"_Plot not written: {error}._")
        md.insert(md.index("## Machine"), "")
        print(f"report.py: plot skipped: {error}", file=sys.stderr)
    elif os.path.basename(png) != "benchmarks.png" or os.path.dirname(png) != os.path.dirname(out):
        md = [line.replace("(benchmarks.png)", f"({os.path.relpath(png, os.path.dirname(out) or '.')})")
              for line in md]
    with open(out, "w") as f:
        f.write("\n".join(md).rstrip("\n") + "\n")
    print(f"report.py: wrote {out}" + ("" if error else f" and {png}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
