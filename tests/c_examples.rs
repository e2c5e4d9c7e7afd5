//! The C examples (`c-examples/`) and the C-side tests of the API: built by
//! `c-examples/Makefile` against this profile's `libspindle.a` and run; each
//! must exit 0, print its key lines, and keep the timings the seed
//! tutorials claim (concurrent work takes about the longest delay, not the
//! sum). Also `make install` with pkg-config into a temporary prefix.
//!
//! The ASan/UBSan and valgrind runs of the same programs are `make -C
//! c-examples check-asan check-valgrind`, a step of `scripts/test-all.sh`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>`: where this test binary's profile puts `libspindle.a`
/// (the binary itself is `target/<profile>/deps/c_examples-<hash>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

/// Runs `command` to the end, at most `limit`; its status and output.
fn run_with_limit(mut command: Command, limit: Duration) -> (Option<i32>, String) {
    let what = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} ran longer than {limit:?}; its output so far:\n{}{}",
                out.join().unwrap_or_default(),
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = out.join().unwrap_or_default() + &err.join().unwrap_or_default();
    (status.code(), output)
}

/// Builds the library (a no-op when fresh) and every C program, once.
fn built() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let profile_dir = profile_dir();
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("debug")
            .to_string();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .current_dir(root())
            .args(["build", "--quiet", "--lib", "--target-dir"])
            .arg(profile_dir.parent().expect("target dir"));
        match profile.as_str() {
            "debug" => {}
            "release" => {
                build.arg("--release");
            }
            other => {
                build.args(["--profile", other]);
            }
        }
        let (status, output) = run_with_limit(build, Duration::from_secs(900));
        if status != Some(0) {
            return Err(format!("cargo build --lib failed:\n{output}"));
        }
        let out = profile_dir.join("c-examples");
        let mut make = Command::new("make");
        make.current_dir(root().join("c-examples"))
            .arg("-j2")
            .arg(format!("LIBDIR={}", profile_dir.display()))
            .arg(format!("BUILD={}", out.display()))
            .arg("all");
        let (status, output) = run_with_limit(make, Duration::from_secs(300));
        if status != Some(0) {
            return Err(format!("make failed:\n{output}"));
        }
        Ok(out)
    });
    match result {
        Ok(dir) => dir,
        Err(message) => panic!("{message}"),
    }
}

/// One `[timing]` line: what, measured, and the bounds the example checked.
#[derive(Debug)]
struct Timing {
    what: String,
    measured: f64,
    min: f64,
    max: f64,
    verdict: String,
}

/// Reads `[timing] what: 1.002 s (seed: ...) [ok: 0.95..1.50 s]`.
fn timings(output: &str) -> Vec<Timing> {
    output
        .lines()
        .filter_map(|line| line.strip_prefix("[timing] "))
        .map(|line| {
            let parse = || -> Option<Timing> {
                let (what, rest) = line.split_once(": ")?;
                let (measured, rest) = rest.split_once(" s ")?;
                let bounds = rest.rsplit_once('[')?.1.strip_suffix(" s]")?;
                let (verdict, range) = bounds.split_once(": ")?;
                let (min, max) = range.split_once("..")?;
                Some(Timing {
                    what: what.to_string(),
                    measured: measured.parse().ok()?,
                    min: min.parse().ok()?,
                    max: max.parse().ok()?,
                    verdict: verdict.to_string(),
                })
            };
            parse().unwrap_or_else(|| panic!("a malformed timing line: {line}"))
        })
        .collect()
}

/// Runs a built program; checks its exit status, that it printed every
/// line of `expected` (as substrings), and that its timings held.
fn run_example(name: &str, expected: &[&str], timed: usize) -> String {
    let program = built().join(name);
    let (status, output) = run_with_limit(Command::new(&program), Duration::from_secs(60));
    assert_eq!(status, Some(0), "{name} failed; its output:\n{output}");
    assert!(
        output.contains("== OK =="),
        "{name} did not say OK:\n{output}"
    );
    for line in expected {
        assert!(
            output.contains(line),
            "{name} did not print {line:?}; its output:\n{output}"
        );
    }
    let timings = timings(&output);
    assert_eq!(
        timings.len(),
        timed,
        "{name} should print {timed} timing lines:\n{output}"
    );
    for t in &timings {
        assert!(
            t.verdict == "ok" && t.min <= t.measured && t.measured <= t.max,
            "{name}: {} took {:.3} s, outside {:.2}..{:.2} s:\n{output}",
            t.what,
            t.measured,
            t.min,
            t.max
        );
    }
    output
}

/// The timing line named `what`.
fn timing<'a>(timings: &'a [Timing], what: &str) -> &'a Timing {
    timings
        .iter()
        .find(|t| t.what == what)
        .unwrap_or_else(|| panic!("no timing line {what:?} in {timings:?}"))
}

#[test]
fn concurrent_fetch_takes_the_longest_delay_not_the_sum() {
    let output = run_example(
        "concurrent_fetch",
        &[
            "Data from https://api.example.com/a Data from https://api.example.com/b",
            "named task:   fetch-https://api.example.com/a",
            "default name: Task-",
            "result() too early: invalid state for this operation",
            "after: done=1 cancelled=0",
        ],
        3,
    );
    let timings = timings(&output);
    // Two 1 s fetches: about 1 s; one after the other would be 2 s.
    let two = timing(&timings, "two 1 s fetches");
    assert!(two.measured < 1.5, "{two:?}");
    let sequential = timing(&timings, "sequential, 2 x 0.2 s").measured;
    let concurrent = timing(&timings, "concurrent, 2 x 0.2 s").measured;
    assert!(
        concurrent < sequential - 0.1,
        "{concurrent} vs {sequential}"
    );
}

#[test]
fn task_group_waits_for_all_and_a_failure_cancels_the_rest() {
    let output = run_example(
        "task_group",
        &[
            "results: [0, 2, 4, 6, 8]",
            "the block's own work: cancelled",
            "group: a task group failed",
            "good             result = OK",
            "slow             cancelled",
            "slow task: cancelled by the group, cleaning up",
        ],
        2,
    );
    assert!(
        output.contains("except* ValueError") || output.contains("except* OSError"),
        "{output}"
    );
    let timings = timings(&output);
    assert!(timing(&timings, "group with a failing child").measured < 1.0);
}

#[test]
fn wait_for_times_out_and_retries() {
    run_example(
        "wait_for_retry",
        &[
            "Operation timed out after 0.1s",
            "the slow task: done=1 cancelled=1",
            "Fast result: quick result",
            "Attempt 1: timed out",
            "Attempt 2: timed out",
            "Attempt 3: success",
            "Final result: data (attempt 3)",
        ],
        2,
    );
}

#[test]
fn cancellation_lets_cleanup_block() {
    let output = run_example(
        "cancellation",
        &[
            "Working...",
            "Task was cancelled! Cleaning up...",
            "Confirmed: task is cancelled",
            "Cleaning up resources...",
            "Cleanup complete",
            "Finally block executed",
            "join -> cancelled, cancelled() = 1",
            "join -> finished regardless, cancelled() = 0",
        ],
        1,
    );
    // Cancelled after 1 s of a 10 s sleep, 0.1 s of cleanup.
    let timings = timings(&output);
    assert!(timing(&timings, "cancel at 1 s, 0.1 s of cleanup").measured < 2.0);
}

#[test]
fn shield_keeps_the_task_running() {
    run_example(
        "shield",
        &[
            "Timeout, but task still running!",
            "Got result: Critical result",
            "handler: cancelled; the save goes on without it",
            "critical_save: committed order #42",
            "saves committed: 1",
        ],
        2,
    );
}

#[test]
fn bad_input_gives_clear_codes() {
    let output = run_example("bad_input", &["SPINDLE_ENOTASK", "SPINDLE_EBUSY"], 0);
    assert!(!output.contains("WRONG"), "{output}");
    let checks: usize = output
        .lines()
        .find_map(|l| l.strip_suffix(" checks"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no check count:\n{output}"));
    assert!(checks >= 100, "only {checks} checks ran:\n{output}");
}

#[test]
fn a_stack_overflow_stops_the_process() {
    run_example(
        "stack_overflow",
        &[
            "child: exited with 0",
            "child said: spindle: a C task overflowed its fiber stack",
            "overflow detected: the process stopped",
        ],
        0,
    );
}

#[test]
fn gather_keeps_argument_order_and_return_exceptions() {
    let output = run_example(
        "gather",
        &[
            "Results: [A: done, B: done, C: done]",
            "Error: Task 2 failed! (ValueError)",
            "Task 1: 10",
            "Task 2: Error - ValueError: Task 2 failed!",
            "Task 3: 30",
            "100 pages, in order",
        ],
        4,
    );
    let timings = timings(&output);
    // 0.3, 0.1 and 0.2 s together: the longest, not the sum (0.6 s).
    assert!(timing(&timings, "gather of 0.3, 0.1 and 0.2 s").measured < 0.45);
    assert!(timing(&timings, "100 pages of 0.1 s").measured < 1.0);
}

#[test]
fn wait_first_completed_returns_with_the_fastest() {
    run_example(
        "wait_first",
        &[
            "1 done, 2 pending",
            "First result: Data from Server2",
            "Completed: fast (0.1s)",
            "Completed: slow (0.3s)",
            "Done: 3, Pending: 2",
        ],
        4,
    );
}

#[test]
fn as_completed_gives_the_fastest_first() {
    run_example(
        "as_completed",
        &[
            "[1/3] Data from fast.com",
            "[2/3] Data from medium.com",
            "[3/3] Data from slow.com",
            "a task was not done in time",
        ],
        2,
    );
}

#[test]
fn semaphore_limits_concurrency() {
    let output = run_example(
        "semaphore",
        &[
            "Max concurrent tasks: 2 (limit was 2)",
            "Fetched 10 URLs, at most 3 at once",
            "release beyond the initial value: invalid state for this operation",
        ],
        2,
    );
    // Ten 0.1 s fetches three at a time: four rounds, well under ten.
    let timings = timings(&output);
    assert!(timing(&timings, "10 fetches of 0.1 s, 3 at a time").measured < 0.75);
}

#[test]
fn producer_consumer_processes_every_item() {
    run_example(
        "producer_consumer",
        &[
            "C1 processed: P1-item-0",
            "C1 processed: P1-item-4",
            "processed 5 items",
            "processed 40 items",
        ],
        2,
    );
}

#[test]
fn scraper_stops_at_its_overall_timeout() {
    run_example(
        "scraper",
        &[
            "the 3 s scope ended: timed out",
            "Completed: 7/10",
            "Timed out: 3",
            "Failed URLs:",
        ],
        1,
    );
}

#[test]
fn echo_server_serves_its_clients_concurrently() {
    run_example(
        "echo_server",
        &[
            "20 clients got their echo; the server served 20 connections",
            "the log (written through spindle_to_thread) has 20 lines",
        ],
        1,
    );
}

#[test]
fn bad_input_to_primitives_gives_clear_codes() {
    let output = run_example(
        "bad_input_sync",
        &[
            "-- freeing an object while a task waits on it: SPINDLE_EBUSY --",
            "spindle_queue_free(queue)",
        ],
        0,
    );
    assert!(!output.contains("WRONG"), "{output}");
    let checks: usize = output
        .lines()
        .find_map(|l| l.strip_suffix(" checks"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no check count:\n{output}"));
    assert!(checks >= 150, "only {checks} checks ran:\n{output}");
}

/// Programs that the tests above check line by line.
const CHECKED: &[&str] = &[
    "concurrent_fetch",
    "task_group",
    "wait_for_retry",
    "cancellation",
    "shield",
    "bad_input",
    "stack_overflow",
    "gather",
    "wait_first",
    "as_completed",
    "semaphore",
    "producer_consumer",
    "scraper",
    "echo_server",
    "bad_input_sync",
];

/// Every other program in c-examples/ (the C++ ones, new ones): exit 0.
#[test]
fn every_other_program_runs_clean() {
    let dir = built();
    let mut others = Vec::new();
    for folder in [root().join("c-examples"), root().join("c-examples/tests")] {
        for entry in std::fs::read_dir(&folder).expect("c-examples/") {
            let path = entry.expect("entry").path();
            let is_source = matches!(path.extension().and_then(|e| e.to_str()), Some("c" | "cpp"));
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            if is_source && !CHECKED.contains(&name) {
                others.push(name.to_string());
            }
        }
    }
    others.sort();
    for name in others {
        let (status, output) =
            run_with_limit(Command::new(dir.join(&name)), Duration::from_secs(60));
        assert_eq!(status, Some(0), "{name} failed; its output:\n{output}");
    }
}

/// A program built against the installed files: `pkg-config --cflags
/// --libs spindle` (shared) and `spindle-static`.
#[test]
fn make_install_gives_a_working_pkg_config() {
    let dir = built();
    if Command::new("pkg-config")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "pkg-config is missing (.ci/run installs it)"
        );
        eprintln!("pkg-config is not installed: skipping the install test");
        return;
    }
    let prefix = dir.join(format!("install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&prefix);
    let mut make = Command::new("make");
    make.current_dir(root().join("c-examples"))
        .arg(format!("LIBDIR={}", profile_dir().display()))
        .arg(format!("PREFIX={}", prefix.display()))
        .arg("install");
    let (status, output) = run_with_limit(make, Duration::from_secs(120));
    assert_eq!(status, Some(0), "make install failed:\n{output}");
    for file in [
        "include/spindle.h",
        "lib/libspindle.a",
        "lib/libspindle.so",
        "lib/pkgconfig/spindle.pc",
        "lib/pkgconfig/spindle-static.pc",
    ] {
        assert!(prefix.join(file).is_file(), "{file} was not installed");
    }
    if root().join("include/spindle.hpp").is_file() {
        assert!(prefix.join("include/spindle.hpp").is_file());
    }
    let pkg_config_path = prefix.join("lib/pkgconfig");
    let example = root().join("c-examples/concurrent_fetch.c");
    let common = root().join("c-examples");
    for (package, binary) in [
        ("spindle", "fetch-shared"),
        ("spindle-static", "fetch-static"),
    ] {
        // cc $(pkg-config --cflags --libs spindle) prog.c
        let script = format!(
            "cc -std=c11 -Wall -Wextra -Werror -I'{}' '{}' $(pkg-config --cflags --libs {package}) -o '{}'",
            common.display(),
            example.display(),
            prefix.join(binary).display()
        );
        let mut cc = Command::new("sh");
        cc.arg("-c")
            .arg(&script)
            .env("PKG_CONFIG_PATH", &pkg_config_path);
        let (status, output) = run_with_limit(cc, Duration::from_secs(120));
        assert_eq!(status, Some(0), "{script} failed:\n{output}");
        let mut run = Command::new(prefix.join(binary));
        run.env("LD_LIBRARY_PATH", prefix.join("lib"));
        let (status, output) = run_with_limit(run, Duration::from_secs(60));
        assert_eq!(
            status,
            Some(0),
            "{binary} (built with {package}.pc) failed:\n{output}"
        );
        assert!(output.contains("== OK =="), "{output}");
    }
    // The shared build really uses the installed shared library.
    let (_, ldd) = run_with_limit(
        {
            let mut ldd = Command::new("ldd");
            ldd.arg(prefix.join("fetch-shared"))
                .env("LD_LIBRARY_PATH", prefix.join("lib"));
            ldd
        },
        Duration::from_secs(30),
    );
    assert!(ldd.contains("libspindle.so"), "{ldd}");
    let _ = std::fs::remove_dir_all(&prefix);
}
