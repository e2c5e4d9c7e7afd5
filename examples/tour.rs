//! The tour: every scenario of the seed tutorials that spindle supports so
//! far, in Rust, with measured timings next to the ones the tutorials claim.
//! Run it with `cargo run --release --example tour`.

use spindle::task::Builder;
use spindle::time::Timeout;
use spindle::{AnyTask, Promise, Task};
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Prints a measured duration next to the one the tutorial claims.
fn timing(what: &str, took: Duration, claimed: &str) {
    println!(
        "  [{what}: {:.2} s, tutorial: {claimed}]",
        took.as_secs_f64()
    );
}

async fn fetch(url: &str) -> spindle::Result<String> {
    println!("  Fetching {url}");
    spindle::sleep(secs(1.0)).await?; // simulate network I/O
    Ok(format!("Data from {url}"))
}

async fn create_task() -> spindle::Result<()> {
    println!("== create_task: two fetches run concurrently ==");
    let start = Instant::now();
    let task1 = spindle::spawn(fetch("https://api.example.com/a"));
    let task2 = spindle::spawn(fetch("https://api.example.com/b"));
    let (result1, result2) = (task1.await?, task2.await?);
    println!("  {result1} {result2}");
    timing("two 1 s fetches", start.elapsed(), "~1 s, not ~2 s");
    Ok(())
}

/// CPU work that takes a while: counts the primes below `limit`.
fn count_primes(limit: u64) -> u64 {
    (2..limit)
        .filter(|n| (2..).take_while(|d| d * d <= *n).all(|d| n % d != 0))
        .count() as u64
}

async fn crunch(slices: u32, limit: u64) -> spindle::Result<u64> {
    let mut total = 0;
    for _ in 0..slices {
        total += count_primes(limit);
        spindle::yield_now().await?;
    }
    Ok(total)
}

async fn every_core() -> spindle::Result<()> {
    println!("== Tasks run in parallel on every worker ==");
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = Instant::now();
    crunch(4, 60_000).await?;
    let one = start.elapsed();
    let start = Instant::now();
    let tasks: Vec<Task<(u64, String)>> = (0..workers)
        .map(|i| {
            Builder::new()
                .name(format!("crunch-{i}"))
                .spawn(async move {
                    let primes = crunch(4, 60_000).await?;
                    let thread = std::thread::current().name().unwrap_or("?").to_string();
                    spindle::Ok((primes, thread))
                })
        })
        .collect();
    let mut threads = Vec::new();
    for task in tasks {
        let name = task.name();
        let (primes, thread) = task.await?;
        println!("  {name}: {primes} primes, finished on {thread}");
        threads.push(thread);
    }
    threads.sort();
    threads.dedup();
    println!(
        "  {workers} CPU-bound tasks of {:.0?} each: {:.0?} in total on {} worker thread(s) \
         (one after another: ~{:.0?})",
        one,
        start.elapsed(),
        threads.len(),
        one * workers as u32
    );
    Ok(())
}

async fn names_and_states() -> spindle::Result<()> {
    println!("== Task names and states ==");
    let url = "https://api.example.com/a";
    let named = Builder::new()
        .name(format!("fetch-{url}"))
        .spawn(async move {
            spindle::sleep(secs(0.1)).await?;
            spindle::Ok(format!("Data from {url}"))
        });
    let unnamed = spindle::spawn(async { spindle::Ok(()) });
    println!("  named task:   {}", named.name());
    println!("  default name: {}", unnamed.name());
    println!(
        "  before: done={} cancelled={}",
        named.done(),
        named.cancelled()
    );
    println!("  result() too early: {}", named.result().unwrap_err());
    println!("  awaited: {}", named.clone().await?);
    println!(
        "  after: done={} cancelled={} exception={:?}",
        named.done(),
        named.cancelled(),
        named.exception()?
    );
    unnamed.await?;
    let failing = spindle::spawn(async {
        spindle::sleep(secs(0.01)).await?;
        Err::<(), _>(spindle::Error::msg("connection refused"))
    });
    println!("  a failing task: {}", failing.clone().await.unwrap_err());
    println!(
        "  ... exception(): {:?}",
        failing.exception()?.map(|e| e.to_string())
    );
    Ok(())
}

fn on_complete(task: &Task<String>) {
    if task.cancelled() {
        println!("  Task was cancelled");
    } else if let Ok(Some(error)) = task.exception() {
        println!("  Task failed: {error}");
    } else {
        println!("  Task result: {}", task.result().unwrap_or_default());
    }
}

async fn done_callbacks() -> spindle::Result<()> {
    println!("== Done callbacks ==");
    let start = Instant::now();
    let task = spindle::spawn(async {
        spindle::sleep(secs(1.0)).await?;
        spindle::Ok("Done!".to_string())
    });
    task.add_done_callback(on_complete);
    task.add_done_callback(|_: &Task<String>| println!("  Callback 1 called"));
    task.add_done_callback(|_: &Task<String>| println!("  Callback 2 called"));
    task.clone().await?;
    timing("work with a 1 s sleep", start.elapsed(), "1 s");
    let doomed = spindle::spawn(async {
        spindle::sleep(secs(10.0)).await?;
        spindle::Ok(String::new())
    });
    doomed.add_done_callback(on_complete);
    spindle::sleep(secs(0.01)).await?;
    doomed.cancel();
    let _ = doomed.await;
    Ok(())
}

async fn futures() -> spindle::Result<()> {
    println!("== Futures (asyncio.Future is spindle::Promise) ==");
    let future = Promise::new();
    future.set_result("Hello!")?;
    println!("  {}", future.clone().await?);

    let start = Instant::now();
    let future: Promise<String> = Promise::new();
    let setter = future.clone();
    let producer = spindle::spawn(async move {
        spindle::sleep(secs(1.0)).await?;
        setter.set_result("Data ready!".to_string())
    });
    let consumer = spindle::spawn(async move {
        println!("  Waiting for data...");
        println!("  Got: {}", future.await?);
        spindle::Ok(())
    });
    producer.await?;
    consumer.await?;
    timing("producer/consumer", start.elapsed(), "1 s");
    Ok(())
}

async fn save_state() -> spindle::Result<()> {
    spindle::sleep(secs(0.1)).await?;
    println!("  State saved!");
    Ok(())
}

async fn cancellation() -> spindle::Result<()> {
    println!("== Cancellation ==");
    let start = Instant::now();
    let worker = spindle::spawn(async {
        loop {
            println!("  Working...");
            if let Err(cancelled) = spindle::sleep(secs(0.1)).await {
                println!("  Task was cancelled! Cleaning up...");
                return Err::<(), _>(cancelled);
            }
        }
    });
    spindle::sleep(secs(0.3)).await?;
    worker.cancel();
    if worker.clone().await.is_err_and(|e| e.is_cancelled()) {
        println!(
            "  Confirmed: task is cancelled (cancelled()={})",
            worker.cancelled()
        );
    }
    timing("cancelled after", start.elapsed(), "0.3 s");

    println!("  -- cleanup that awaits, and a message:");
    let start = Instant::now();
    let task = spindle::spawn(async {
        match spindle::sleep(secs(10.0)).await {
            Err(cancelled) => {
                println!("  Cleaning up resources...");
                save_state().await?; // can still await in cleanup
                Err::<(), _>(cancelled) // always re-raise
            }
            Ok(()) => Ok(()),
        }
    });
    spindle::sleep(secs(0.01)).await?;
    task.cancel_with("Timeout exceeded");
    match task.await {
        Err(e) if e.is_cancelled() => println!("  Cancelled: {}", e.cancel_message().unwrap_or("")),
        other => println!("  unexpected: {other:?}"),
    }
    timing("cancel + 0.1 s of cleanup", start.elapsed(), "~0.11 s");

    // With several workers an idle one may start a new task at once; on one
    // worker (asyncio's single loop) a task spawned and cancelled before the
    // spawner yields never runs. Shown on a one-worker runtime of its own.
    let outcome = std::thread::spawn(|| {
        let runtime = spindle::Runtime::builder().worker_threads(1).build()?;
        runtime.block_on(async {
            let never = spindle::spawn(async {
                println!("  (never printed: a task cancelled before it starts never runs)");
                spindle::Ok(())
            });
            never.cancel();
            spindle::Ok(never.await.unwrap_err())
        })
    })
    .join()
    .expect("the one-worker demo thread");
    println!("  cancelled before starting: {}", outcome?);
    Ok(())
}

async fn slow_operation() -> spindle::Result<&'static str> {
    spindle::sleep(secs(5.0)).await?;
    Ok("finally done")
}

async fn unreliable_fetch(attempt: u32) -> spindle::Result<String> {
    let delay = if attempt < 3 { 0.5 } else { 0.01 }; // fast on the third attempt
    spindle::sleep(secs(delay)).await?;
    Ok(format!("data (attempt {attempt})"))
}

async fn fetch_with_retries(max_retries: u32, timeout: f64) -> spindle::Result<String> {
    for attempt in 1..=max_retries {
        match spindle::wait_for(Some(secs(timeout)), unreliable_fetch(attempt)).await {
            Ok(result) => {
                println!("  Attempt {attempt}: success");
                return Ok(result);
            }
            Err(e) if e.is_timeout() => println!("  Attempt {attempt}: timed out"),
            Err(e) => return Err(e),
        }
    }
    Err(spindle::Error::msg(format!(
        "Failed after {max_retries} attempts"
    )))
}

async fn timeouts() -> spindle::Result<()> {
    println!("== Timeouts ==");
    let start = Instant::now();
    match spindle::wait_for(Some(secs(0.1)), slow_operation()).await {
        Ok(result) => println!("  Result: {result}"),
        Err(e) if e.is_timeout() => println!("  Operation timed out after 0.1s"),
        Err(e) => return Err(e),
    }
    timing(
        "5 s operation under a 0.1 s wait_for",
        start.elapsed(),
        "0.1 s",
    );

    let fast = async {
        spindle::sleep(secs(0.01)).await?;
        spindle::Ok("quick result")
    };
    println!(
        "  Fast result: {}",
        spindle::wait_for(Some(secs(1.0)), fast).await?
    );

    let start = Instant::now();
    let result = fetch_with_retries(3, 0.1).await?;
    println!("  Final result: {result}");
    timing(
        "retries: two 0.1 s timeouts, then success",
        start.elapsed(),
        "~0.21 s",
    );

    let start = Instant::now();
    let scope = Timeout::after(secs(0.2));
    let outcome = scope.run(spindle::sleep(secs(10.0))).await;
    println!(
        "  asyncio.timeout(0.2) around a 10 s sleep: {} (expired()={})",
        outcome.unwrap_err(),
        scope.expired()
    );
    timing("timeout scope", start.elapsed(), "0.2 s");
    Ok(())
}

async fn fetch_data(name: &'static str, delay: f64) -> spindle::Result<String> {
    spindle::sleep(secs(delay)).await?;
    Ok(format!("{name}: done"))
}

async fn might_fail(n: u64) -> spindle::Result<u64> {
    spindle::sleep(secs(0.1)).await?;
    if n == 2 {
        return Err(ValueError("oops!".into()).into());
    }
    Ok(n * 10)
}

async fn combinators() -> spindle::Result<()> {
    println!("== gather ==");
    let start = Instant::now();
    let results = spindle::gather([
        spindle::spawn(fetch("https://api.example.com/a")),
        spindle::spawn(fetch("https://api.example.com/b")),
        spindle::spawn(fetch("https://api.example.com/c")),
    ])
    .await?;
    println!("  {results:?}");
    timing(
        "three 1 s fetches gathered",
        start.elapsed(),
        "~1 s, not 3 s",
    );

    let (a, b, c) = spindle::gather!(
        fetch_data("A", 0.3),
        fetch_data("B", 0.1),
        fetch_data("C", 0.2)
    )
    .await?;
    println!("  gather! keeps argument order: [{a}, {b}, {c}]");

    let outcomes = spindle::gather([might_fail(1), might_fail(2), might_fail(3)])
        .return_exceptions()
        .await?;
    for outcome in outcomes {
        match outcome {
            Ok(result) => println!("  Result: {result}"),
            Err(error) => println!("  Error: {error}"),
        }
    }

    println!("== wait FIRST_COMPLETED: racing three servers ==");
    let start = Instant::now();
    let servers = [("Server1", 2.0), ("Server2", 1.0), ("Server3", 3.0)];
    let tasks: Vec<Task<String>> = servers
        .iter()
        .map(|&(server, delay)| {
            spindle::spawn(async move {
                spindle::sleep(secs(delay)).await?;
                spindle::Ok(format!("Data from {server}"))
            })
        })
        .collect();
    let (done, pending) = spindle::wait(tasks, spindle::ReturnWhen::FirstCompleted, None).await?;
    println!("  First result: {}", done[0].result()?);
    for task in &pending {
        task.cancel();
    }
    for task in pending {
        let _ = task.await;
    }
    timing("first of 2 s / 1 s / 3 s servers", start.elapsed(), "1 s");

    println!("== as_completed: fastest first ==");
    let start = Instant::now();
    let mut results = spindle::as_completed(
        [
            spindle::spawn(fetch_data("slow.com", 0.3)),
            spindle::spawn(fetch_data("fast.com", 0.1)),
            spindle::spawn(fetch_data("medium.com", 0.2)),
        ],
        None,
    );
    while let Some(result) = results.next().await {
        println!("  {} (at {:.2} s)", result?, start.elapsed().as_secs_f64());
    }
    Ok(())
}

#[derive(Debug)]
struct ValueError(String);

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueError {}

async fn process_item(n: u64) -> spindle::Result<u64> {
    let delay = if n == 3 { 0.1 } else { 0.5 };
    match spindle::sleep(secs(delay)).await {
        Err(cancelled) => {
            println!("  item {n}: cancelled, cleaning up");
            Err(cancelled)
        }
        Ok(()) if n == 3 => Err(ValueError(format!("Cannot process {n}")).into()),
        Ok(()) => Ok(n * 10),
    }
}

async fn task_groups() -> spindle::Result<()> {
    println!("== TaskGroup ==");
    let start = Instant::now();
    let tasks = spindle::task_group(|tg| async move {
        (0..5u64)
            .map(|i| {
                tg.spawn(async move {
                    spindle::sleep(secs(0.5)).await?;
                    spindle::Ok(i * 2)
                })
            })
            .collect::<spindle::Result<Vec<_>>>()
    })
    .await?;
    let results: Vec<u64> = tasks
        .iter()
        .map(|t| t.result())
        .collect::<spindle::Result<_>>()?;
    println!("  Results: {results:?}");
    timing("five 0.5 s items in a group", start.elapsed(), "0.5 s");

    println!("  -- item 3 fails; the group cancels the others:");
    let start = Instant::now();
    let mut tasks = Vec::new();
    let group = spindle::TaskGroup::new();
    let outcome = group
        .run(async {
            for i in 0..5 {
                tasks.push(group.spawn(process_item(i))?);
            }
            spindle::Ok(())
        })
        .await;
    if let Err(error) = outcome {
        let group = error
            .as_group()
            .expect("a TaskGroup fails with an ErrorGroup");
        // except* ValueError
        let (value_errors, rest) = group.split_by::<ValueError>();
        if let Some(value_errors) = value_errors {
            println!("  Caught {} ValueError(s):", value_errors.len());
            for exc in &value_errors {
                println!("    - {exc}");
            }
        }
        if let Some(rest) = rest {
            return Err(rest.into());
        }
    }
    for (i, t) in tasks.iter().enumerate() {
        if t.cancelled() {
            println!("  Task {i}: cancelled");
        } else if let Ok(Some(_)) = t.exception() {
            println!("  Task {i}: failed");
        } else {
            println!("  Task {i}: result = {}", t.result()?);
        }
    }
    timing(
        "failure at 0.1 s ends the group",
        start.elapsed(),
        "~0.1 s, not 0.5 s",
    );
    Ok(())
}

async fn important_work() -> spindle::Result<&'static str> {
    spindle::sleep(secs(1.0)).await?;
    Ok("Critical result")
}

async fn shielding() -> spindle::Result<()> {
    println!("== shield ==");
    let start = Instant::now();
    let task = spindle::spawn(important_work());
    match spindle::wait_for(Some(secs(0.5)), spindle::shield(task.clone())).await {
        Ok(result) => println!("  Result: {result}"),
        Err(e) if e.is_timeout() => {
            println!("  Timeout, but task still running!");
            println!("  Got result: {}", task.await?);
        }
        Err(e) => return Err(e),
    }
    timing(
        "0.5 s timeout, then the shielded 1 s work",
        start.elapsed(),
        "1 s",
    );
    Ok(())
}

async fn semaphores() -> spindle::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    println!("== Semaphore: limiting concurrency ==");
    let sem = Arc::new(spindle::Semaphore::new(2));
    let (current, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let tasks = (0..5).map(|task_id| {
        let (sem, current, max) = (sem.clone(), current.clone(), max.clone());
        async move {
            let _permit = sem.acquire().await?; // async with sem:
            let now = current.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(now, Ordering::SeqCst);
            println!("  Task {task_id}: running (concurrent: {now})");
            spindle::sleep(secs(0.01)).await?;
            current.fetch_sub(1, Ordering::SeqCst);
            spindle::Ok(())
        }
    });
    spindle::gather(tasks).await?;
    println!(
        "  Max concurrent tasks: {} (limit was 2)",
        max.load(Ordering::SeqCst)
    );

    println!("  -- rate-limited fetch of 10 URLs, at most 3 at a time:");
    let start = Instant::now();
    let sem = Arc::new(spindle::Semaphore::new(3));
    let fetches = (0..10).map(|i| {
        let sem = sem.clone();
        async move {
            let _permit = sem.acquire().await?;
            let url = format!("https://api.example.com/{i}");
            println!("  Fetching {url}");
            spindle::sleep(secs(0.1)).await?; // simulate a network request
            spindle::Ok(format!("Data from {url}"))
        }
    });
    let results = spindle::gather(fetches).await?;
    println!("  Fetched {} URLs", results.len());
    timing(
        "10 fetches of 0.1 s, 3 at a time",
        start.elapsed(),
        "~0.4 s (4 rounds)",
    );
    Ok(())
}

async fn producer(
    queue: std::sync::Arc<spindle::Queue<String>>,
    name: &str,
    count: usize,
) -> spindle::Result<()> {
    for i in 0..count {
        queue.put(format!("{name}-item-{i}")).await?;
        spindle::sleep(secs(0.1)).await?;
    }
    Ok(())
}

async fn consumer(
    queue: std::sync::Arc<spindle::Queue<String>>,
    name: &str,
) -> spindle::Result<()> {
    loop {
        let item = queue.get().await?;
        println!("  {name} processed: {item}");
        spindle::sleep(secs(0.05)).await?;
        queue.task_done()?;
    }
}

async fn producer_consumer() -> spindle::Result<()> {
    use std::sync::Arc;
    println!("== Producer-consumer with a bounded Queue ==");
    let start = Instant::now();
    let queue = Arc::new(spindle::Queue::new(5));
    let producers = vec![spindle::spawn(producer(queue.clone(), "P1", 5))];
    let consumers = vec![spindle::spawn({
        let queue = queue.clone();
        async move { consumer(queue, "C1").await }
    })];
    spindle::gather(producers).await?; // wait for the producers to finish
    queue.join().await?; // wait for every item to be processed
    for c in &consumers {
        c.cancel(); // the consumers loop forever
    }
    for c in consumers {
        let outcome = c.await;
        println!(
            "  consumer cancelled: {}",
            outcome.is_err_and(|e| e.is_cancelled())
        );
    }
    timing(
        "5 items every 0.1 s, each processed in 0.05 s",
        start.elapsed(),
        "~0.5 s",
    );
    Ok(())
}

async fn fetch_over_sockets() -> spindle::Result<()> {
    use common::fetch_many::{rate_limited, scrape, OVERALL};
    // The code is shared with examples/fetch.rs: a tiny HTTP server on
    // loopback whose pages answer after their delay, and real HTTP GETs.
    println!("== I/O: the rate-limited fetcher over real sockets ==");
    let report = rate_limited(10, secs(0.1)).await?;
    timing(
        "10 HTTP GETs of 0.1 s, 3 at a time",
        report.took,
        "~0.4 s (4 rounds)",
    );
    report.check(10)?;

    println!("== I/O: the web scraper, 3 at a time, with a 3 s overall timeout ==");
    let report = scrape(OVERALL).await?;
    timing(
        "10 pages of 0.5-2.5 s under a 3 s timeout",
        report.took,
        "3 s, the slow pages timed out",
    );
    report.check()
}

async fn introspection() -> spindle::Result<()> {
    println!("== Introspection ==");
    let me = spindle::current_task()?.expect("the tour runs in a task");
    println!("  current task: {} (id {})", me.name(), me.id());
    let waiters: Vec<Task<()>> = (0..3)
        .map(|i| {
            Builder::new()
                .name(format!("waiter-{i}"))
                .spawn(spindle::sleep(secs(60.0)))
        })
        .collect();
    spindle::sleep(secs(0.01)).await?;
    let mut tasks: Vec<AnyTask> = spindle::all_tasks()?;
    tasks.sort_by_key(|t| t.id());
    for task in &tasks {
        println!(
            "  all_tasks: {:>4} {:<12} {:?}",
            task.id(),
            task.name(),
            task.state()
        );
    }
    println!("  (the waiters are cancelled when the tour's main task returns)");
    drop(waiters);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    spindle::run(async {
        create_task().await?;
        every_core().await?;
        names_and_states().await?;
        done_callbacks().await?;
        futures().await?;
        cancellation().await?;
        timeouts().await?;
        combinators().await?;
        task_groups().await?;
        shielding().await?;
        semaphores().await?;
        producer_consumer().await?;
        fetch_over_sockets().await?;
        introspection().await?;
        spindle::Ok(())
    })
    .map_err(|e| e.to_string())?;
    println!("== Tour done in {:.1} s ==", start.elapsed().as_secs_f64());
    Ok(())
}
