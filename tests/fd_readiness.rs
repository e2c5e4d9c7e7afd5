//! Readiness of arbitrary file descriptors (`spindle::io::AsyncFd`) on
//! non-blocking pipes: waking readers and writers, end of stream and broken
//! pipes, many descriptors at once, clearing readiness after `WouldBlock`,
//! cancellation of a wait, bad descriptors, `into_inner`, and shutdown.
//!
//! A new registration is assumed ready until an operation says otherwise
//! (see `src/io/readiness.rs`), so a test that needs a reader to *wait*
//! first consumes that assumption with a read that finds `WouldBlock`.

mod common;
use common::storm::Rng;
use common::{current, ms, rt, within_limit};

use futures_util::FutureExt;
use spindle::io::{AsyncFd, Interest};
use spindle::{ErrorKind, Runtime, Unhandled, UnhandledKind};
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

// -- helpers ------------------------------------------------------------------

/// A non-blocking pipe: (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: pipe2 succeeded: both descriptors are open and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn read_fd(fd: &impl AsRawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes of writing.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn write_fd(fd: &impl AsRawFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: `data` is valid for `data.len()` bytes of reading.
    let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn is_would_block<T>(result: &io::Result<T>) -> bool {
    matches!(result, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Consumes the readiness a new registration assumes: waits for readable
/// (at once), finds the pipe empty, and clears the readiness (`try_io`).
async fn consume_assumed_readiness(fd: &AsyncFd<OwnedFd>) -> spindle::Result<()> {
    let guard = fd.readable().await?;
    let mut buf = [0u8; 16];
    let result = guard.try_io(|fd| read_fd(fd, &mut buf));
    assert!(
        is_would_block(&result),
        "the pipe was not empty: {result:?}"
    );
    Ok(())
}

/// Waits (in a task) until `condition` holds; fails the test after 10 s.
async fn wait_until(what: &str, condition: impl Fn() -> bool) -> spindle::Result<()> {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        spindle::sleep(ms(1)).await?;
    }
    Ok(())
}

/// Sets its flag once the wrapped future returned `Pending`, and counts polls.
struct Watched<F> {
    inner: Pin<Box<F>>,
    pending: Arc<AtomicBool>,
    polls: Arc<AtomicUsize>,
}

impl<F> Watched<F> {
    fn new(inner: F) -> (Self, Arc<AtomicBool>, Arc<AtomicUsize>) {
        let pending = Arc::new(AtomicBool::new(false));
        let polls = Arc::new(AtomicUsize::new(0));
        let watched = Watched {
            inner: Box::pin(inner),
            pending: pending.clone(),
            polls: polls.clone(),
        };
        (watched, pending, polls)
    }
}

impl<F: Future> Future for Watched<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, SeqCst);
        let poll = self.inner.as_mut().poll(cx);
        if poll.is_pending() {
            self.pending.store(true, SeqCst);
        }
        poll
    }
}

/// A minimal executor for a plain thread: polls, parks until woken.
fn block_on_plain<F: Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park_timeout(ms(10));
    }
}

/// Any descriptor number, owned by nobody (for bad input).
#[derive(Debug)]
struct RawNumber(RawFd);

impl AsRawFd for RawNumber {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

// -- readable, writable, end of stream ------------------------------------------

/// A task waiting for a pipe to be readable stays waiting until another task
/// writes, then wakes once and reads exactly what was written; the write end
/// is writable at once.
#[test]
fn a_reader_waits_for_readable_and_wakes_when_another_task_writes() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (r, w) = pipe();
                let r = Arc::new(AsyncFd::with_interest(r, Interest::READABLE)?);
                let w = AsyncFd::new(w)?;
                consume_assumed_readiness(&r).await?;

                let wakes = Arc::new(AtomicUsize::new(0));
                let (reader_r, reader_wakes) = (r.clone(), wakes.clone());
                let reader = spindle::spawn(async move {
                    let mut buf = [0u8; 64];
                    loop {
                        let guard = reader_r.readable().await?;
                        reader_wakes.fetch_add(1, SeqCst);
                        match guard.try_io(|fd| read_fd(fd, &mut buf)) {
                            Ok(n) => return spindle::Ok(buf[..n].to_vec()),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                            Err(e) => return Err(e.into()),
                        }
                    }
                });
                spindle::sleep(ms(50)).await?;
                assert!(!reader.done(), "the reader returned with nothing to read");
                assert_eq!(
                    wakes.load(SeqCst),
                    0,
                    "the reader woke with nothing to read"
                );

                let guard = w.writable().await?;
                assert!(guard.ready().is_writable());
                let n = guard.try_io(|fd| write_fd(fd, b"hello pipe"))?;
                assert_eq!(n, 10);

                let got = spindle::timeout(Duration::from_secs(5), reader).await?;
                assert_eq!(got, b"hello pipe");
                assert_eq!(wakes.load(SeqCst), 1, "one write, one wake");
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A writer that filled the pipe waits in `writable()` (it does not return
/// while the pipe is full) and wakes when a reader drains it; every byte
/// written arrives.
#[test]
fn a_writer_waits_while_the_pipe_is_full_and_wakes_when_it_is_drained() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (r, w) = pipe();
                let w = Arc::new(AsyncFd::with_interest(w, Interest::WRITABLE)?);
                let chunk = vec![7u8; 16 * 1024];
                let mut written = 0;
                loop {
                    let guard = w.writable().await?;
                    match guard.try_io(|fd| write_fd(fd, &chunk)) {
                        Ok(n) => written += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e.into()),
                    }
                }
                assert!(written > 0);

                let writer_w = w.clone();
                let writer = spindle::spawn(async move {
                    writer_w
                        .async_io(Interest::WRITABLE, |fd| write_fd(fd, b"more"))
                        .await
                });
                spindle::sleep(ms(50)).await?;
                assert!(!writer.done(), "writable returned while the pipe was full");

                let mut drained = 0;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match read_fd(&r, &mut buf) {
                        Ok(0) => panic!("unexpected end of stream"),
                        Ok(n) => drained += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e.into()),
                    }
                }
                assert_eq!(drained, written);

                let n = spindle::timeout(Duration::from_secs(5), writer).await?;
                assert_eq!(n, 4);
                let start = Instant::now();
                let mut tail = [0u8; 8];
                let n = loop {
                    match read_fd(&r, &mut tail) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            assert!(start.elapsed() < Duration::from_secs(5));
                            spindle::sleep(ms(1)).await?;
                        }
                        other => break other?,
                    }
                };
                assert_eq!(&tail[..n], b"more");
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A reader waiting on a pipe whose writer closes wakes with
/// `is_read_closed()`, and its read returns 0 (end of stream); data written
/// before the close is read first.
#[test]
fn closing_the_writer_wakes_the_reader_with_read_closed_and_eof() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                // Close with nothing written: the waiter wakes with read_closed.
                let (r, w) = pipe();
                let r = Arc::new(AsyncFd::with_interest(r, Interest::READABLE)?);
                consume_assumed_readiness(&r).await?;
                let reader_r = r.clone();
                let reader = spindle::spawn(async move {
                    let guard = reader_r.ready(Interest::READABLE).await?;
                    let ready = guard.ready();
                    let mut buf = [0u8; 8];
                    let n = guard.try_io(|fd| read_fd(fd, &mut buf))?;
                    spindle::Ok((ready, n))
                });
                spindle::sleep(ms(30)).await?;
                assert!(!reader.done());
                drop(w);
                let (ready, n) = spindle::timeout(Duration::from_secs(5), reader).await?;
                assert!(ready.is_read_closed(), "{ready:?}");
                assert!(ready.is_readable(), "{ready:?}");
                assert_eq!(n, 0, "end of stream");
                // End of stream is final: later waits return at once.
                let again = spindle::timeout(Duration::from_secs(5), r.readable()).await?;
                assert!(again.ready().is_read_closed());

                // Data, then close: the data first, then 0.
                let (r, w) = pipe();
                let r = AsyncFd::with_interest(r, Interest::READABLE)?;
                consume_assumed_readiness(&r).await?;
                assert_eq!(write_fd(&w, b"last words")?, 10);
                drop(w);
                let mut buf = [0u8; 64];
                let n = r
                    .async_io(Interest::READABLE, |fd| read_fd(fd, &mut buf))
                    .await?;
                assert_eq!(&buf[..n], b"last words");
                let n = r
                    .async_io(Interest::READABLE, |fd| read_fd(fd, &mut buf))
                    .await?;
                assert_eq!(n, 0);
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A writer waiting on a full pipe whose reader closes wakes (writable with
/// an error or write-closed condition) and its write fails with `BrokenPipe`
/// (an `Io` error), not a hang.
#[test]
fn closing_the_reader_wakes_a_waiting_writer_with_broken_pipe() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (r, w) = pipe();
                let w = Arc::new(AsyncFd::with_interest(w, Interest::WRITABLE)?);
                let chunk = vec![1u8; 16 * 1024];
                loop {
                    let guard = w.writable().await?;
                    if is_would_block(&guard.try_io(|fd| write_fd(fd, &chunk))) {
                        break;
                    }
                }
                let writer_w = w.clone();
                let writer = spindle::spawn(async move {
                    let ready = loop {
                        let guard = writer_w.writable().await?;
                        let ready = guard.ready();
                        if ready.is_error() || ready.is_write_closed() {
                            break ready;
                        }
                        // A writable edge from before the pipe filled up
                        // can still be delivered after the filling loop's
                        // last clear (readiness may be stale: seen once in
                        // 160 runs of this file under load). The pipe is
                        // full, so the write would block, which clears it.
                        let write = guard.try_io(|fd| write_fd(fd, b"x"));
                        assert!(is_would_block(&write), "the pipe is full: {write:?}");
                    };
                    let result = writer_w
                        .async_io(Interest::WRITABLE, |fd| write_fd(fd, b"x"))
                        .await;
                    spindle::Ok((ready, result))
                });
                spindle::sleep(ms(30)).await?;
                assert!(!writer.done());
                drop(r);
                let (ready, result) = spindle::timeout(Duration::from_secs(5), writer).await?;
                assert!(ready.is_writable(), "{ready:?}");
                assert!(ready.is_error() || ready.is_write_closed(), "{ready:?}");
                let err = result.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Io);
                assert_eq!(
                    err.io_error().map(io::Error::kind),
                    Some(io::ErrorKind::BrokenPipe)
                );
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// Readiness reaches a waiting task while the runtime's only worker is
/// kept busy by a task that never sleeps (it only yields): the worker
/// collects I/O events between tasks, not only when idle.
#[test]
fn readiness_reaches_a_waiter_while_the_only_worker_is_busy() {
    within_limit(|| {
        rt(1)
            .block_on(async {
                let (r, w) = pipe();
                let r = Arc::new(AsyncFd::with_interest(r, Interest::READABLE)?);
                consume_assumed_readiness(&r).await?;
                let stop = Arc::new(AtomicBool::new(false));
                let s = stop.clone();
                let spinner = spindle::spawn(async move {
                    let mut spins = 0u64;
                    while !s.load(SeqCst) {
                        spindle::yield_now().await?;
                        spins += 1;
                    }
                    spindle::Ok(spins)
                });
                let reader_r = r.clone();
                let reader = spindle::spawn(async move {
                    let mut buf = [0u8; 16];
                    let n = reader_r
                        .async_io(Interest::READABLE, |fd| read_fd(fd, &mut buf))
                        .await?;
                    spindle::Ok(buf[..n].to_vec())
                });
                // Written from a plain thread while the worker spins.
                let writer = thread::spawn(move || {
                    thread::sleep(ms(50));
                    write_fd(&w, b"busy").unwrap();
                    w
                });
                let got = spindle::timeout(Duration::from_secs(5), reader).await?;
                assert_eq!(got, b"busy");
                assert!(!spinner.done());
                stop.store(true, SeqCst);
                assert!(spinner.await? > 0);
                drop(writer.join().unwrap());
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- many descriptors -------------------------------------------------------------

/// 100 pipes, each with a task waiting for readable, written in a seeded
/// random order (some in bursts, some with pauses): every reader wakes
/// exactly once, and reads exactly its own pipe's message; nobody wakes
/// before its write.
#[test]
fn a_hundred_pipes_written_in_random_order_each_wake_their_reader_once() {
    const PIPES: usize = 100;
    within_limit(|| {
        rt(2)
            .block_on(async {
                let armed = Arc::new(AtomicUsize::new(0));
                let written: Arc<Vec<AtomicBool>> =
                    Arc::new((0..PIPES).map(|_| AtomicBool::new(false)).collect());
                let mut readers = Vec::new();
                let mut writers = Vec::new();
                for i in 0..PIPES {
                    let (r, w) = pipe();
                    writers.push(w);
                    let (armed, written) = (armed.clone(), written.clone());
                    readers.push(spindle::spawn(async move {
                        let r = AsyncFd::with_interest(r, Interest::READABLE)?;
                        consume_assumed_readiness(&r).await?;
                        armed.fetch_add(1, SeqCst);
                        let mut wakes = 0;
                        let mut buf = [0u8; 32];
                        loop {
                            let guard = r.readable().await?;
                            wakes += 1;
                            assert!(written[i].load(SeqCst), "pipe {i} woke before its write");
                            match guard.try_io(|fd| read_fd(fd, &mut buf)) {
                                Ok(n) => return spindle::Ok((i, buf[..n].to_vec(), wakes)),
                                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                                Err(e) => return Err(e.into()),
                            }
                        }
                    }));
                }
                wait_until("every reader is waiting", || armed.load(SeqCst) == PIPES).await?;
                spindle::sleep(ms(20)).await?;
                assert!(readers.iter().all(|t| !t.done()), "a reader returned early");

                let mut order: Vec<usize> = (0..PIPES).collect();
                let mut rng = Rng(0x5eed_f00d);
                for k in (1..PIPES).rev() {
                    order.swap(k, rng.below(k as u64 + 1) as usize);
                }
                for (n, &i) in order.iter().enumerate() {
                    written[i].store(true, SeqCst);
                    let message = format!("pipe-{i:03}");
                    assert_eq!(write_fd(&writers[i], message.as_bytes())?, message.len());
                    match n % 10 {
                        0 => spindle::sleep(ms(1)).await?,
                        5 => spindle::yield_now().await?,
                        _ => {}
                    }
                }

                let results =
                    spindle::timeout(Duration::from_secs(10), spindle::gather(readers)).await?;
                assert_eq!(results.len(), PIPES);
                for (slot, (i, data, wakes)) in results.into_iter().enumerate() {
                    assert_eq!(slot, i);
                    assert_eq!(data, format!("pipe-{i:03}").as_bytes(), "pipe {i}");
                    assert_eq!(wakes, 1, "pipe {i} woke {wakes} times for one write");
                }
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// Several tasks waiting for readable on the same descriptor are all woken
/// by one event (readiness futures are not single-waiter), and each sees
/// the descriptor readable.
#[test]
fn every_task_waiting_on_the_same_fd_wakes_on_one_event() {
    const WAITERS: usize = 5;
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (r, w) = pipe();
                let r = Arc::new(AsyncFd::with_interest(r, Interest::READABLE)?);
                consume_assumed_readiness(&r).await?;
                let mut waiters = Vec::new();
                let mut pending_flags = Vec::new();
                for _ in 0..WAITERS {
                    let r = r.clone();
                    let (wait, pending, _) = Watched::new(async move {
                        let ready = r.readable().await?.ready();
                        spindle::Ok(ready.is_readable())
                    });
                    pending_flags.push(pending);
                    waiters.push(spindle::spawn(wait));
                }
                wait_until("every waiter is waiting", || {
                    pending_flags.iter().all(|p| p.load(SeqCst))
                })
                .await?;
                write_fd(&w, b"!")?;
                let seen =
                    spindle::timeout(Duration::from_secs(5), spindle::gather(waiters)).await?;
                assert_eq!(seen, [true; WAITERS]);
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// Two tasks bounce a counter over two pipes 1000 times, each read waiting
/// for readiness after a `WouldBlock`: a lost wakeup anywhere in the
/// wait/report protocol would stall the exchange (caught by the timeout).
#[test]
fn ping_pong_over_two_pipes_loses_no_wakeup() {
    const ROUNDS: u32 = 1000;
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (a_r, a_w) = pipe();
                let (b_r, b_w) = pipe();
                async fn recv(fd: &AsyncFd<OwnedFd>) -> spindle::Result<u32> {
                    let mut buf = [0u8; 4];
                    let n = fd
                        .async_io(Interest::READABLE, |fd| read_fd(fd, &mut buf))
                        .await?;
                    assert_eq!(n, 4, "a 4-byte pipe write is atomic");
                    Ok(u32::from_le_bytes(buf))
                }
                async fn send(fd: &AsyncFd<OwnedFd>, value: u32) -> spindle::Result<()> {
                    let n = fd
                        .async_io(Interest::WRITABLE, |fd| write_fd(fd, &value.to_le_bytes()))
                        .await?;
                    assert_eq!(n, 4);
                    Ok(())
                }
                let ponger = spindle::spawn(async move {
                    let (rx, tx) = (AsyncFd::new(a_r)?, AsyncFd::new(b_w)?);
                    for _ in 0..ROUNDS {
                        let value = recv(&rx).await?;
                        send(&tx, value + 1).await?;
                    }
                    spindle::Ok(())
                });
                let (tx, rx) = (AsyncFd::new(a_w)?, AsyncFd::new(b_r)?);
                let exchange = async {
                    let mut value = 0;
                    for _ in 0..ROUNDS {
                        send(&tx, value).await?;
                        let back = recv(&rx).await?;
                        assert_eq!(back, value + 1);
                        value = back;
                    }
                    spindle::Ok(value)
                };
                let last = spindle::timeout(Duration::from_secs(20), exchange).await?;
                assert_eq!(last, ROUNDS);
                ponger.await?;
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- clearing readiness -------------------------------------------------------------

/// After an operation finds `WouldBlock` (`try_io` or `clear_ready`), the
/// next `readable()` really waits for new data: under a 150 ms timeout it
/// times out having been polled only a handful of times (no spinning). A
/// guard dropped without clearing keeps the readiness (the next wait
/// returns at once), and new data ends a wait promptly.
#[test]
fn after_would_block_the_next_readable_waits_for_new_data_without_spinning() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (r, w) = pipe();
                let r = AsyncFd::with_interest(r, Interest::READABLE)?;
                let mut buf = [0u8; 64];

                // try_io clears on WouldBlock.
                consume_assumed_readiness(&r).await?;
                let (waiting, _, polls) = Watched::new(r.readable());
                let err = spindle::timeout(ms(150), waiting).await.unwrap_err();
                assert!(err.is_timeout(), "{err:?}");
                let polls = polls.load(SeqCst);
                assert!(polls <= 5, "readable() was polled {polls} times: it spins");

                // New data: the wait ends.
                write_fd(&w, b"one")?;
                {
                    let guard = spindle::timeout(Duration::from_secs(5), r.readable()).await?;
                    assert!(guard.ready().is_readable());
                    // Dropped without clearing: still ready.
                }
                // So the next wait is ready on its first poll.
                let guard = r
                    .readable()
                    .now_or_never()
                    .expect("ready at once: the readiness was kept")?;
                let n = guard.try_io(|fd| read_fd(fd, &mut buf))?;
                assert_eq!(&buf[..n], b"one");

                // Drained without a WouldBlock: the readiness is still set,
                // so the caller clears it by hand; then the wait waits.
                let guard = spindle::timeout(Duration::from_secs(5), r.readable()).await?;
                guard.clear_ready();
                let (waiting, _, polls) = Watched::new(r.readable());
                let err = spindle::timeout(ms(150), waiting).await.unwrap_err();
                assert!(err.is_timeout(), "{err:?}");
                assert!(polls.load(SeqCst) <= 5, "spins after clear_ready");

                write_fd(&w, b"two")?;
                let n = spindle::timeout(
                    Duration::from_secs(5),
                    r.async_io(Interest::READABLE, |fd| read_fd(fd, &mut buf)),
                )
                .await?;
                assert_eq!(&buf[..n], b"two");
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A `clear_ready` made with a guard that is older than a new event does
/// not lose the event: the data written after the guard was taken still
/// wakes the next wait.
#[test]
fn a_stale_clear_ready_does_not_lose_a_newer_event() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (r, w) = pipe();
                let r = AsyncFd::with_interest(r, Interest::READABLE)?;
                // The assumed readiness: a guard from before the data.
                let stale = r.readable().await?;
                write_fd(&w, b"late")?;
                // Give the driver time to report the event (idle workers poll it).
                spindle::sleep(ms(30)).await?;
                stale.clear_ready();
                let mut buf = [0u8; 8];
                let n = spindle::timeout(
                    Duration::from_secs(5),
                    r.async_io(Interest::READABLE, |fd| read_fd(fd, &mut buf)),
                )
                .await?;
                assert_eq!(&buf[..n], b"late");
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- cancellation -------------------------------------------------------------

/// A task waiting in `readable()` that is cancelled ends cancelled (with
/// the message), having read nothing: data written afterwards is still in
/// the pipe, and a new waiter reads it.
#[test]
fn cancelling_a_readable_wait_ends_cancelled_and_leaves_later_data_in_the_pipe() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (r, w) = pipe();
                let r = Arc::new(AsyncFd::with_interest(r, Interest::READABLE)?);
                consume_assumed_readiness(&r).await?;
                let waiter_r = r.clone();
                let (wait, waiting, _) = Watched::new(async move {
                    let mut buf = [0u8; 16];
                    let guard = waiter_r.readable().await?;
                    let n = guard.try_io(|fd| read_fd(fd, &mut buf))?;
                    spindle::Ok(n)
                });
                let waiter = spindle::spawn(wait);
                wait_until("the waiter is waiting", || waiting.load(SeqCst)).await?;

                waiter.cancel_with("stop reading");
                let err = spindle::timeout(Duration::from_secs(5), waiter.clone())
                    .await
                    .unwrap_err();
                assert!(err.is_cancelled(), "{err:?}");
                assert_eq!(err.cancel_message(), Some("stop reading"));
                assert!(waiter.cancelled());

                write_fd(&w, b"after cancel")?;
                let reader_r = r.clone();
                let reader = spindle::spawn(async move {
                    let mut buf = [0u8; 32];
                    let n = reader_r
                        .async_io(Interest::READABLE, |fd| read_fd(fd, &mut buf))
                        .await?;
                    spindle::Ok(buf[..n].to_vec())
                });
                let got = spindle::timeout(Duration::from_secs(5), reader).await?;
                assert_eq!(got, b"after cancel");
                spindle::Ok(())
            })
            .unwrap();
    });
}

/// A wait is a cancellation point checked before the operation: a task
/// with a pending cancel request gets the cancellation from `async_io`
/// although data is ready, and the data stays in the pipe for the next
/// (uncancelled) await.
#[test]
fn a_cancelled_async_io_moves_no_data() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (r, w) = pipe();
                let r = AsyncFd::with_interest(r, Interest::READABLE)?;
                write_fd(&w, b"keep me")?;
                let mut buf = [0u8; 16];
                current().cancel_with("self");
                let err = r
                    .async_io(Interest::READABLE, |fd| read_fd(fd, &mut buf))
                    .await
                    .unwrap_err();
                assert!(err.is_cancelled(), "{err:?}");
                assert_eq!(current().uncancel(), 0);
                let n = r
                    .async_io(Interest::READABLE, |fd| read_fd(fd, &mut buf))
                    .await?;
                assert_eq!(&buf[..n], b"keep me");
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- bad input ----------------------------------------------------------------

/// Registering a descriptor epoll cannot watch (a regular file, a
/// directory, `/dev/null`) is an `Io` error with kind `InvalidInput` and a
/// message that says why; invalid descriptor numbers (-1, 1 000 000,
/// `i32::MAX`) are `Io` errors (`EBADF`); a descriptor registered twice is
/// an `Io` error; outside a runtime it is a `Runtime` error. Never a panic,
/// and the runtime keeps working.
#[test]
fn bad_descriptors_are_io_errors_not_panics() {
    within_limit(|| {
        let outside = AsyncFd::new(pipe().0).unwrap_err();
        assert_eq!(outside.kind(), ErrorKind::Runtime, "{outside}");

        rt(2)
            .block_on(async {
                let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
                let files = [
                    std::fs::File::open(manifest)?,
                    std::fs::File::open(env!("CARGO_MANIFEST_DIR"))?,
                    std::fs::File::open("/dev/null")?,
                ];
                for file in files {
                    let err = AsyncFd::new(file).unwrap_err();
                    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
                    let io = err.io_error().expect("an io error");
                    assert_eq!(io.kind(), io::ErrorKind::InvalidInput, "{err}");
                    assert!(
                        err.to_string().contains("does not support readiness"),
                        "unclear message: {err}"
                    );
                }

                for number in [-1, 1_000_000, i32::MAX] {
                    let err = AsyncFd::new(RawNumber(number)).unwrap_err();
                    assert_eq!(err.kind(), ErrorKind::Io, "fd {number}: {err}");
                    let io = err.io_error().expect("an io error");
                    assert_eq!(io.raw_os_error(), Some(libc::EBADF), "fd {number}: {err}");
                }

                let (r, w) = pipe();
                let r = AsyncFd::with_interest(r, Interest::READABLE)?;
                let twice = AsyncFd::new(RawNumber(r.as_raw_fd())).unwrap_err();
                assert_eq!(twice.kind(), ErrorKind::Io, "{twice}");

                // The failures left the runtime and the first registration intact.
                write_fd(&w, b"still fine")?;
                let mut buf = [0u8; 16];
                let n = spindle::timeout(
                    Duration::from_secs(5),
                    r.async_io(Interest::READABLE, |fd| read_fd(fd, &mut buf)),
                )
                .await?;
                assert_eq!(&buf[..n], b"still fine");
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- into_inner -----------------------------------------------------------------

/// `into_inner` gives the descriptor back open (same number, `fcntl`
/// works, unread data kept) and deregistered: registering it again succeeds
/// (while it is registered a second registration fails), and the new
/// registration wakes on new data.
#[test]
fn into_inner_returns_the_descriptor_open_and_deregistered() {
    within_limit(|| {
        rt(2)
            .block_on(async {
                let (r, w) = pipe();
                let fd = AsyncFd::with_interest(r, Interest::READABLE)?;
                let number = fd.as_raw_fd();
                assert!(AsyncFd::new(RawNumber(number)).is_err(), "registered twice");
                write_fd(&w, b"kept")?;

                let r = fd.into_inner();
                assert_eq!(r.as_raw_fd(), number);
                // SAFETY: F_GETFD only reads the descriptor's flags.
                assert_ne!(unsafe { libc::fcntl(number, libc::F_GETFD) }, -1, "closed");

                let fd = AsyncFd::with_interest(r, Interest::READABLE)?;
                let mut buf = [0u8; 16];
                let n = spindle::timeout(
                    Duration::from_secs(5),
                    fd.async_io(Interest::READABLE, |fd| read_fd(fd, &mut buf)),
                )
                .await?;
                assert_eq!(&buf[..n], b"kept");

                consume_assumed_readiness(&fd).await?;
                let fd = Arc::new(fd);
                let reader_fd = fd.clone();
                let reader = spindle::spawn(async move {
                    let mut buf = [0u8; 16];
                    let n = reader_fd
                        .async_io(Interest::READABLE, |fd| read_fd(fd, &mut buf))
                        .await?;
                    spindle::Ok(buf[..n].to_vec())
                });
                spindle::sleep(ms(20)).await?;
                write_fd(&w, b"again")?;
                let got = spindle::timeout(Duration::from_secs(5), reader).await?;
                assert_eq!(got, b"again");
                spindle::Ok(())
            })
            .unwrap();
    });
}

// -- shutdown -----------------------------------------------------------------

/// Dropping a runtime while a task waits on an fd returns promptly (far
/// under the 5 s shutdown timeout) and the task ends cancelled.
#[test]
fn shutdown_while_a_task_waits_on_an_fd_ends_it_promptly() {
    within_limit(|| {
        let rt = rt(2);
        let (r, _w) = pipe();
        let waiting = Arc::new(AtomicBool::new(false));
        let flag = waiting.clone();
        let task = rt.spawn(async move {
            let r = AsyncFd::with_interest(r, Interest::READABLE)?;
            consume_assumed_readiness(&r).await?;
            flag.store(true, SeqCst);
            r.readable().await?;
            spindle::Ok(())
        });
        let start = Instant::now();
        while !waiting.load(SeqCst) {
            assert!(start.elapsed() < Duration::from_secs(10));
            thread::sleep(ms(1));
        }
        let dropping = Instant::now();
        drop(rt);
        let took = dropping.elapsed();
        assert!(took < Duration::from_secs(2), "drop took {took:?}");
        assert!(task.cancelled(), "the waiting task ended cancelled");
    });
}

/// A task that swallows the shutdown's cancel and waits on the fd again is
/// aborted after the (short) shutdown timeout and reported as destroyed
/// pending; drop still returns promptly.
#[test]
fn shutdown_aborts_a_task_that_keeps_waiting_on_an_fd_after_its_cancel() {
    within_limit(|| {
        let reports: Arc<Mutex<Vec<Unhandled>>> = Arc::default();
        let sink = reports.clone();
        let rt = Runtime::builder()
            .worker_threads(2)
            .shutdown_timeout(ms(200))
            .on_unhandled_error(move |report| sink.lock().unwrap().push(report.clone()))
            .build()
            .unwrap();
        let (r, _w) = pipe();
        let waiting = Arc::new(AtomicBool::new(false));
        let flag = waiting.clone();
        let task = rt.spawn(async move {
            let r = AsyncFd::with_interest(r, Interest::READABLE)?;
            consume_assumed_readiness(&r).await?;
            flag.store(true, SeqCst);
            let first = r.readable().await.map(|_| ());
            assert!(first.unwrap_err().is_cancelled());
            // Swallow the cancel and wait again.
            r.readable().await?;
            spindle::Ok(())
        });
        let start = Instant::now();
        while !waiting.load(SeqCst) {
            assert!(start.elapsed() < Duration::from_secs(10));
            thread::sleep(ms(1));
        }
        let dropping = Instant::now();
        drop(rt);
        let took = dropping.elapsed();
        assert!(took < Duration::from_secs(3), "drop took {took:?}");
        assert!(task.done());
        assert!(task.cancelled(), "aborted");
        let reports = reports.lock().unwrap();
        assert!(
            reports
                .iter()
                .any(|r| r.kind() == UnhandledKind::DestroyedPending),
            "{reports:?}"
        );
    });
}

/// A wait that no task cancellation reaches (a plain thread inside
/// `Handle::enter`, driven by a plain executor) ends with a `Runtime`
/// error when the runtime shuts down: the driver fails every wait. A
/// registration through the handle of the runtime that shut down is a
/// `Runtime` error too.
#[test]
fn shutdown_fails_a_wait_outside_any_task_with_a_runtime_error() {
    within_limit(|| {
        let rt = rt(2);
        let handle = rt.handle().clone();
        let handle_after = handle.clone();
        let (r, _w) = pipe();
        let (tell, told) = std::sync::mpsc::channel();
        let waiter = thread::spawn(move || {
            let _entered = handle.enter();
            let r = AsyncFd::with_interest(r, Interest::READABLE).unwrap();
            block_on_plain(async {
                consume_assumed_readiness(&r).await?;
                let (wait, pending, _) = Watched::new(r.readable());
                tell.send(pending).unwrap();
                wait.await.map(|guard| guard.ready())
            })
        });
        let waiting = told.recv().unwrap();
        let start = Instant::now();
        while !waiting.load(SeqCst) {
            assert!(start.elapsed() < Duration::from_secs(10));
            thread::sleep(ms(1));
        }
        let dropping = Instant::now();
        drop(rt);
        let outcome = waiter.join().unwrap();
        let took = dropping.elapsed();
        let err = outcome.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Runtime, "{err}");
        assert!(took < Duration::from_secs(2), "took {took:?}");

        // Registering with the runtime that shut down: an error, not a panic.
        let _entered = handle_after.enter();
        let err = AsyncFd::new(pipe().0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Runtime, "{err}");
    });
}

#[test]
fn waiting_for_a_direction_that_is_not_registered_is_an_invalid_argument() {
    rt(2)
        .block_on(async {
            let (read_end, _write_end) = pipe();
            let fd = AsyncFd::with_interest(read_end, Interest::WRITABLE)?;
            let err = fd.readable().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            let err = fd
                .async_io(Interest::READABLE, |fd| read_fd(fd, &mut [0u8; 1]))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            spindle::Ok(())
        })
        .unwrap();
}
