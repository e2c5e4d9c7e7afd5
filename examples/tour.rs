//! The tour: every scenario of the seed tutorials that spindle supports so
//! far, in Rust, with measured timings. Run it with
//! `cargo run --release --example tour`.
//!
//! Sections follow the tutorials: tasks running concurrently on several
//! workers, names, task states, done callbacks, futures (`Promise`),
//! cancellation with cleanup that still awaits, introspection.

use spindle::task::Builder;
use spindle::{AnyTask, Promise, Task};
use std::time::Instant;

/// CPU work that takes a while: counts the primes below `limit`.
fn count_primes(limit: u64) -> u64 {
    (2..limit)
        .filter(|n| (2..).take_while(|d| d * d <= *n).all(|d| n % d != 0))
        .count() as u64
}

/// Runs `work` in slices, yielding between them, like an async function that
/// awaits between steps.
async fn crunch(slices: u32, limit: u64) -> spindle::Result<u64> {
    let mut total = 0;
    for _ in 0..slices {
        total += count_primes(limit);
        spindle::yield_now().await?;
    }
    Ok(total)
}

async fn concurrent_tasks() -> spindle::Result<()> {
    println!("== Tasks run concurrently, on every worker ==");
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Calibrate one unit of work.
    let start = Instant::now();
    crunch(4, 60_000).await?;
    let one = start.elapsed();

    let start = Instant::now();
    let tasks: Vec<Task<(u64, String)>> = (0..workers)
        .map(|i| {
            Builder::new().name(format!("crunch-{i}")).spawn(async move {
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
    let elapsed = start.elapsed();
    println!(
        "  {workers} tasks of {:.0?} each took {:.0?} in total on {} worker thread(s) \
         (sequentially: ~{:.0?})",
        one,
        elapsed,
        threads.len(),
        one * workers as u32
    );
    Ok(())
}

async fn names_and_states() -> spindle::Result<()> {
    println!("== Task names and states ==");
    let named = Builder::new()
        .name("fetch-https://api.example.com/a")
        .spawn(async { spindle::Ok("Data from https://api.example.com/a") });
    let unnamed = spindle::spawn(async { spindle::Ok(()) });
    println!("  named task:   {}", named.name());
    println!("  default name: {}", unnamed.name());
    println!("  before awaiting: done={} cancelled={}", named.done(), named.cancelled());
    println!("  result(): {:?}", named.result().map_err(|e| e.to_string()));
    let data = named.clone().await?;
    println!("  awaited: {data}");
    println!(
        "  after awaiting: done={} cancelled={} exception={:?}",
        named.done(),
        named.cancelled(),
        named.exception()?
    );
    unnamed.await?;

    let failing = spindle::spawn(async { Err::<(), _>(spindle::Error::msg("connection refused")) });
    let outcome = failing.clone().await;
    println!("  a failing task: await gives {:?}", outcome.map_err(|e| e.to_string()));
    println!("  ... and exception() gives {:?}", failing.exception()?.map(|e| e.to_string()));
    Ok(())
}

fn on_complete(task: &Task<String>) {
    if task.cancelled() {
        println!("  callback: task {} was cancelled", task.name());
    } else if let Ok(Some(error)) = task.exception() {
        println!("  callback: task {} failed: {error}", task.name());
    } else {
        println!("  callback: task {} result: {:?}", task.name(), task.result());
    }
}

async fn done_callbacks() -> spindle::Result<()> {
    println!("== Done callbacks ==");
    let task = Builder::new().name("work").spawn(async {
        spindle::yield_now().await?;
        spindle::Ok("Done!".to_string())
    });
    task.add_done_callback(on_complete);
    task.add_done_callback(|_: &Task<String>| println!("  callback 1 called"));
    task.add_done_callback(|_: &Task<String>| println!("  callback 2 called"));
    task.clone().await?;

    let doomed = Builder::new().name("doomed").spawn(async {
        // Waits for a promise nobody sets: only a cancel ends it.
        Promise::<String>::new().await
    });
    doomed.add_done_callback(on_complete);
    spindle::yield_now().await?;
    doomed.cancel();
    let _ = doomed.await;
    Ok(())
}

async fn futures() -> spindle::Result<()> {
    println!("== Futures (asyncio.Future is spindle::Promise) ==");
    let future = Promise::new();
    future.set_result("Hello!")?;
    println!("  {}", future.clone().await?);

    let future: Promise<String> = Promise::new();
    let producer = {
        let future = future.clone();
        spindle::spawn(async move {
            // Simulated work between awaits.
            crunch(2, 20_000).await?;
            future.set_result("Data ready!".to_string())
        })
    };
    let consumer = spindle::spawn(async move {
        println!("  Waiting for data...");
        let result = future.await?;
        println!("  Got: {result}");
        spindle::Ok(())
    });
    producer.await?;
    consumer.await?;
    Ok(())
}

async fn save_state() -> spindle::Result<()> {
    // Cleanup that awaits: it hands the state to another task and waits for it.
    let saver = spindle::spawn(async {
        spindle::yield_now().await?;
        spindle::Ok("state saved")
    });
    println!("  {}", saver.await?);
    Ok(())
}

async fn cancellation() -> spindle::Result<()> {
    println!("== Cancellation with cleanup ==");
    let started = Promise::new();
    let started_signal = started.clone();
    let worker = Builder::new().name("graceful_worker").spawn(async move {
        started_signal.set_result(())?;
        let mut rounds = 0u64;
        loop {
            if let Err(error) = spindle::yield_now().await {
                println!("  I was cancelled after {rounds} rounds ({error}); cleaning up...");
                save_state().await?;
                return Err::<(), _>(error);
            }
            rounds += 1;
        }
    });
    started.await?;
    for _ in 0..100 {
        spindle::yield_now().await?;
    }
    worker.cancel_with("Timeout exceeded");
    println!("  cancel requested: cancelling()={}, cancelled()={}", worker.cancelling(), worker.cancelled());
    match worker.clone().await {
        Err(e) if e.is_cancelled() => println!("  Cancelled: {}", e.cancel_message().unwrap_or("")),
        other => println!("  unexpected: {other:?}"),
    }
    println!("  after the await: cancelled()={}", worker.cancelled());

    println!("  -- a task cancelled before it starts never runs its body:");
    let never = spindle::spawn(async {
        println!("  (this line is never printed)");
        spindle::Ok(())
    });
    never.cancel_with("too early");
    println!("  {:?}", never.await.map_err(|e| e.to_string()));
    Ok(())
}

async fn introspection() -> spindle::Result<()> {
    println!("== Introspection ==");
    let me = spindle::current_task()?.expect("the tour runs in a task");
    println!("  current task: {} (id {})", me.name(), me.id());
    let blockers: Vec<Task<()>> = (0..3)
        .map(|i| Builder::new().name(format!("waiter-{i}")).spawn(Promise::new()))
        .collect();
    spindle::yield_now().await?;
    let mut tasks: Vec<AnyTask> = spindle::all_tasks()?;
    tasks.sort_by_key(|t| t.id());
    for task in &tasks {
        println!("  all_tasks: {:>4} {:<12} {:?}", task.id(), task.name(), task.state());
    }
    for task in &blockers {
        task.cancel();
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    spindle::run(async {
        concurrent_tasks().await?;
        names_and_states().await?;
        done_callbacks().await?;
        futures().await?;
        cancellation().await?;
        introspection().await?;
        spindle::Ok(())
    })
    .map_err(|e| e.to_string())?;
    println!("== Tour done in {:.0?} ==", start.elapsed());
    Ok(())
}
