//! A worker's parker: a sleep that an unpark can end, and that never misses an
//! unpark that came first (the token is kept until the next park).

use crate::loom::{lock, Condvar, Mutex};

pub(crate) struct Parker {
    token: Mutex<bool>,
    condvar: Condvar,
}

impl Parker {
    pub(crate) fn new() -> Parker {
        Parker {
            token: Mutex::new(false),
            condvar: Condvar::new(),
        }
    }

    /// Sleeps until an unpark; returns at once if one came since the last park.
    pub(crate) fn park(&self) {
        let mut token = lock(&self.token);
        while !*token {
            token = match self.condvar.wait(token) {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
        }
        *token = false;
    }

    /// Wakes the parked thread, or makes its next park return at once.
    pub(crate) fn unpark(&self) {
        *lock(&self.token) = true;
        self.condvar.notify_one();
    }
}
