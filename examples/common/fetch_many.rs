//! The seed tutorials' "fetch many URLs" scenarios, over real sockets: a
//! [`Server`](super::http::Server) on loopback stands in for the web (each
//! path answers after its own delay) and the fetches are real HTTP `GET`s.
//!
//! - [`rate_limited`]: the rate-limited fetcher (at most 3 requests at a
//!   time with a `Semaphore`, `gather` over all URLs);
//! - [`scrape`]: the concurrent web scraper exercise (10 pages of 0.5 to
//!   2.5 s, at most 3 at a time, a 3 s timeout over the whole `gather`,
//!   results processed as they arrive, then which pages completed and which
//!   timed out).
//!
//! Both print what happens and return a report whose `check` says whether
//! the measured behaviour is the one the tutorials describe.

use super::http::{get, Server, ServerStats};
use spindle::task::Builder;
use spindle::{Error, Result, Semaphore, Task};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// At most this many requests at a time, as in the tutorials.
pub const LIMIT: usize = 3;

/// The scraper's pages' delays in seconds, drawn once from the tutorial's
/// `random.uniform(0.5, 2.5)` and fixed, so that runs compare. No sum of up
/// to four of them (a semaphore slot's requests one after another) comes
/// within 40 ms of the 3 s timeout, so no request ends in a race with it,
/// whatever order the pages get the semaphore in.
pub const PAGE_DELAYS: [f64; 10] = [0.99, 1.5, 0.82, 2.14, 0.96, 1.6, 2.35, 1.29, 2.44, 1.96];

/// The scraper's overall timeout.
pub const OVERALL: Duration = Duration::from_secs(3);

/// One fetched page.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub path: String,
    pub status: u16,
    pub body: String,
    /// When the request was sent and when the response was in, from the
    /// start of the scenario.
    pub sent: Duration,
    pub done: Duration,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The number in `/{n}` or `/page/{n}` if it is below `count`.
fn number(path: &str, prefix: &str, count: usize) -> Option<usize> {
    let n = path.strip_prefix(prefix)?.parse().ok()?;
    (n < count).then_some(n)
}

/// When each request was sent, if it was.
type SentLog = Mutex<Vec<Option<Duration>>>;

/// `async with sem:` fetch `path`: acquires a permit, notes when the request
/// goes out in `sent[i]`, and `GET`s it.
async fn fetch(
    addr: SocketAddr,
    path: String,
    sem: &Semaphore,
    (sent, i): (&SentLog, usize),
    start: Instant,
) -> Result<Fetched> {
    let _permit = sem.acquire().await?;
    let sent_at = start.elapsed();
    sent.lock().unwrap()[i] = Some(sent_at);
    println!("  [{:.2} s] Fetching http://{addr}{path}", secs(sent_at));
    let response = get(addr, &path).await?;
    Ok(Fetched {
        path,
        status: response.status,
        body: response.body,
        sent: sent_at,
        done: start.elapsed(),
    })
}

/// What [`rate_limited`] measured.
pub struct RateLimited {
    pub fetched: Vec<Fetched>,
    pub delay: Duration,
    pub took: Duration,
    pub server: ServerStats,
}

/// The rate-limited fetcher: `count` URLs whose server takes `delay` each,
/// gathered, with at most [`LIMIT`] requests at a time.
pub async fn rate_limited(count: usize, delay: Duration) -> Result<RateLimited> {
    let server = Server::start(move |path| number(path, "/", count).map(|_| delay)).await?;
    let addr = server.addr();
    println!(
        "  server on http://{addr}: /0 to /{} answer after {:.1} s",
        count - 1,
        secs(delay)
    );
    let sem = Arc::new(Semaphore::new(LIMIT));
    let sent = Arc::new(Mutex::new(vec![None; count]));
    let start = Instant::now();
    let fetches = (0..count).map(|i| {
        let (sem, sent) = (sem.clone(), sent.clone());
        async move { fetch(addr, format!("/{i}"), &sem, (&sent, i), start).await }
    });
    let fetched = spindle::gather(fetches).await?;
    let took = start.elapsed();
    let server = server.stop().await?;
    let ok = fetched.iter().filter(|page| page.status == 200).count();
    println!(
        "  Fetched {} URLs in {:.3} s ({ok} with 200 OK, the last: \"{}\"); \
         the server had at most {} requests at once",
        fetched.len(),
        secs(took),
        fetched.last().map_or("", |page| &page.body),
        server.max_concurrent
    );
    Ok(RateLimited {
        fetched,
        delay,
        took,
        server,
    })
}

impl RateLimited {
    /// Rounds of [`LIMIT`] requests: the tutorial's arithmetic.
    pub fn rounds(&self) -> usize {
        self.fetched.len().div_ceil(LIMIT)
    }

    /// Every page fetched with status 200, never more than [`LIMIT`] at the
    /// server at once, in about `rounds * delay`.
    pub fn check(&self, count: usize) -> Result<()> {
        let ideal = self.delay * self.rounds() as u32;
        expect(self.fetched.len() == count, "every URL fetched")?;
        expect(
            self.fetched.iter().all(|p| p.status == 200),
            "every status 200",
        )?;
        expect(
            (1..=LIMIT).contains(&self.server.max_concurrent),
            format!(
                "at most {LIMIT} requests at once at the server, saw {}",
                self.server.max_concurrent
            ),
        )?;
        expect(
            self.took >= ideal && self.took < ideal + self.delay * 2,
            format!(
                "{:.3} s for {count} requests of {:.1} s, {LIMIT} at a time (ideal {:.1} s)",
                secs(self.took),
                secs(self.delay),
                secs(ideal)
            ),
        )
    }
}

/// What became of one page of the scraper.
pub enum Page {
    Completed(Fetched),
    /// Cancelled by the timeout while its request was out (sent at).
    CutOff(Duration),
    /// Cancelled by the timeout while waiting for the semaphore.
    NeverSent,
}

/// What [`scrape`] measured.
pub struct Scrape {
    /// Every page, with its delay at the server and what became of it.
    pub pages: Vec<(Duration, Page)>,
    pub overall: Duration,
    pub timed_out: bool,
    pub took: Duration,
    pub server: ServerStats,
}

/// The web scraper exercise: [`PAGE_DELAYS`] pages, at most [`LIMIT`] at a
/// time, with a timeout of `overall` around the `gather` of all of them.
/// Results are printed as they arrive; at the end, which pages completed
/// and which timed out.
pub async fn scrape(overall: Duration) -> Result<Scrape> {
    let delays = PAGE_DELAYS.map(Duration::from_secs_f64);
    let count = delays.len();
    let server =
        Server::start(move |path| number(path, "/page/", count).map(|i| delays[i])).await?;
    let addr = server.addr();
    println!("  server on http://{addr}: /page/0 to /page/9 answer after {PAGE_DELAYS:?} s");
    let sem = Arc::new(Semaphore::new(LIMIT));
    let sent = Arc::new(Mutex::new(vec![None; count]));
    let start = Instant::now();
    let tasks: Vec<Task<Fetched>> = (0..count)
        .map(|i| {
            let (sem, sent) = (sem.clone(), sent.clone());
            Builder::new()
                .name(format!("fetch-page-{i}"))
                .spawn(async move {
                    let page = fetch(addr, format!("/page/{i}"), &sem, (&sent, i), start).await?;
                    // Processed as it arrives:
                    println!(
                        "  [{:.2} s] ✓ {} ({:.2} s): {} \"{}\"",
                        secs(page.done),
                        page.path,
                        secs(delays[i]),
                        page.status,
                        page.body
                    );
                    spindle::Ok(page)
                })
        })
        .collect();
    // async with asyncio.timeout(3): await asyncio.gather(*tasks)
    let outcome = spindle::timeout(overall, spindle::gather(tasks.clone())).await;
    let took = start.elapsed();
    let (timed_out, pages) = match outcome {
        Ok(fetched) => (false, fetched.into_iter().map(Page::Completed).collect()),
        Err(e) if e.is_timeout() => {
            println!(
                "  [{:.2} s] Timeout: the fetches not done are cancelled",
                secs(took)
            );
            // The gather has cancelled the unfinished tasks; let them end.
            spindle::wait(tasks.clone(), spindle::ReturnWhen::AllCompleted, None).await?;
            let sent = sent.lock().unwrap();
            let pages = tasks
                .iter()
                .zip(sent.iter())
                .map(|(task, sent)| match (task.cancelled(), sent) {
                    (true, Some(sent)) => Ok(Page::CutOff(*sent)),
                    (true, None) => Ok(Page::NeverSent),
                    (false, _) => task.take_result().map(Page::Completed),
                })
                .collect::<Result<Vec<_>>>()?;
            (true, pages)
        }
        Err(e) => return Err(e),
    };
    let server = server.stop().await?;
    let report = Scrape {
        pages: delays.into_iter().zip(pages).collect(),
        overall,
        timed_out,
        took,
        server,
    };
    report.summary();
    Ok(report)
}

impl Scrape {
    pub fn completed(&self) -> usize {
        self.pages
            .iter()
            .filter(|(_, p)| matches!(p, Page::Completed(_)))
            .count()
    }

    /// The seed's report: how many completed, and which timed out.
    fn summary(&self) {
        println!("  === Summary ===");
        println!("  Completed: {}/{}", self.completed(), self.pages.len());
        println!("  Timed out: {}", self.pages.len() - self.completed());
        for (i, (delay, page)) in self.pages.iter().enumerate() {
            let delay = secs(*delay);
            match page {
                Page::Completed(_) => {}
                Page::CutOff(sent) => println!(
                    "    - /page/{i} ({delay:.2} s): cut off in flight, sent at {:.2} s, \
                     would have taken until {:.2} s",
                    secs(*sent),
                    secs(*sent) + delay
                ),
                Page::NeverSent => {
                    println!("    - /page/{i} ({delay:.2} s): still waiting for the semaphore")
                }
            }
        }
        println!(
            "  The server received {} requests, answered {}, at most {} at once",
            self.server.received, self.server.answered, self.server.max_concurrent
        );
    }

    /// The timeout fired at `overall`; the pages that completed did so in
    /// time and after their delay; those cut off needed longer; at most
    /// [`LIMIT`] requests at the server at once; the semaphore's slots were
    /// kept busy (a page waiting for one was only cut off if all three
    /// requests out could not finish).
    pub fn check(&self) -> Result<()> {
        let slack = Duration::from_millis(150);
        expect(self.timed_out, "the overall timeout fired")?;
        expect(
            self.took >= self.overall && self.took < self.overall + slack,
            format!(
                "timed out after {:.3} s (limit {:.1} s)",
                secs(self.took),
                secs(self.overall)
            ),
        )?;
        expect(
            (1..=LIMIT).contains(&self.server.max_concurrent),
            format!(
                "at most {LIMIT} requests at once at the server, saw {}",
                self.server.max_concurrent
            ),
        )?;
        let (mut cut_off, mut never) = (0, 0);
        for (delay, page) in &self.pages {
            match page {
                Page::Completed(f) => expect(
                    f.status == 200
                        && f.done >= f.sent + *delay
                        && f.done < f.sent + *delay + slack
                        && f.done <= self.took,
                    format!(
                        "{} ({:.1} s) sent at {:.2} s, done at {:.2} s",
                        f.path,
                        secs(*delay),
                        secs(f.sent),
                        secs(f.done)
                    ),
                )?,
                Page::CutOff(sent) => {
                    cut_off += 1;
                    expect(
                        *sent + *delay + slack > self.overall,
                        format!(
                            "a page of {:.1} s sent at {:.2} s was cut off",
                            secs(*delay),
                            secs(*sent)
                        ),
                    )?
                }
                Page::NeverSent => never += 1,
            }
        }
        expect(
            cut_off == LIMIT || never == 0,
            format!("{cut_off} requests out at the timeout while {never} waited"),
        )?;
        expect(
            self.server.received == self.completed() + cut_off,
            format!(
                "the server received {} requests for {} completed and {cut_off} cut off",
                self.server.received,
                self.completed()
            ),
        )
    }
}

fn expect(ok: bool, what: impl Into<String>) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::msg(format!("check failed: {}", what.into())))
    }
}
