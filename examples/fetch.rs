//! "Fetch many URLs concurrently with a semaphore and an overall timeout",
//! the seed tutorials' scenario, done for real: a tiny HTTP/1.1 server on
//! loopback plays the slow web (each path answers after its own delay) and
//! the fetches are HTTP `GET`s over spindle `TcpStream`s, at most 3 at a
//! time (a `Semaphore`), gathered, under a 3 s timeout scope.
//!
//! Run it with `cargo run --example fetch`. The code of the scenarios is in
//! `examples/common/` (the tour runs it too).

#[path = "common/mod.rs"]
mod common;

use common::fetch_many::{rate_limited, scrape, OVERALL};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    spindle::run(async {
        println!("== Rate-limited fetcher: 10 URLs, at most 3 at a time ==");
        let report = rate_limited(10, Duration::from_millis(100)).await?;
        println!(
            "  [measured: {:.3} s, tutorial: ~{:.1} s ({} rounds of 0.1 s)]",
            report.took.as_secs_f64(),
            0.1 * report.rounds() as f64,
            report.rounds()
        );
        report.check(10)?;

        println!("== Web scraper: 10 pages of 0.5-2.5 s, at most 3 at a time, 3 s overall ==");
        let report = scrape(OVERALL).await?;
        println!(
            "  [measured: {:.3} s, tutorial: 3 s (the overall timeout), \
             some pages completed and the rest timed out]",
            report.took.as_secs_f64()
        );
        report.check()
    })
    .map_err(|e| e.to_string())?;
    println!("== Done in {:.1} s ==", start.elapsed().as_secs_f64());
    Ok(())
}
