//! Combinators over tasks, asyncio's: [`shield`] (and, as they land,
//! gather, wait and as_completed).

mod shield;

pub use shield::{shield, Shield};
