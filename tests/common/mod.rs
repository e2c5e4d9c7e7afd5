//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod storm;

use spindle::{Promise, Runtime, Task};
use std::sync::mpsc;
use std::time::Duration;

pub fn rt(workers: usize) -> Runtime {
    Runtime::builder().worker_threads(workers).build().unwrap()
}

/// Runs `f` on its own thread and fails the test if it does not finish within
/// a generous limit, so that a runtime bug shows up as a failure, not a hang.
pub fn within_limit<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(value) => {
            let _ = thread.join();
            value
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the test thread ended without a value"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within 30 s (hang)"),
    }
}

pub fn current() -> spindle::AnyTask {
    spindle::current_task()
        .expect("inside a runtime")
        .expect("inside a task")
}

/// An ordered record of events, shared by the tasks of a test.
#[derive(Clone, Default)]
pub struct Log(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }
    pub fn get(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Waits until `task` is done without awaiting its handle (an await moves a
/// success value out of the task).
pub async fn wait_done<T: Send + 'static>(task: &Task<T>) -> spindle::Result<()> {
    let done = Promise::<()>::new();
    let d = done.clone();
    task.add_done_callback(move |_: &Task<T>| {
        let _ = d.set_result(());
    });
    done.await
}

/// A task body that takes a permit of `sem`, counts it in `acquired` and
/// holds it for an hour (it gives it back only by being cancelled).
pub async fn hold_permit_for_an_hour(
    sem: std::sync::Arc<spindle::Semaphore>,
    acquired: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> spindle::Result<()> {
    let _permit = sem.acquire().await?;
    acquired.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    spindle::sleep(Duration::from_secs(3600)).await
}

/// Yields until every task in `tasks` is parked at an await point
/// ([`spindle::TaskState::Waiting`]). A test that cancels them afterwards
/// knows that none is still in a step: on several workers a task in its
/// first step when the cancel arrives may, for instance, take a free
/// semaphore permit without a suspension, so without seeing the cancel
/// (as asyncio's acquire does).
pub async fn until_all_waiting<T: Send + 'static>(tasks: &[Task<T>]) -> spindle::Result<()> {
    while !tasks
        .iter()
        .all(|task| task.state() == spindle::TaskState::Waiting)
    {
        spindle::yield_now().await?;
    }
    spindle::Ok(())
}
