//! Combinators over tasks, asyncio's: [`gather`](fn@gather) (and the
//! [`gather!`](crate::gather!) macro), [`wait`](fn@wait),
//! [`as_completed`](fn@as_completed) and [`shield`](fn@shield).

mod as_completed;
mod gather;
mod shield;
mod track;
mod wait;

pub use as_completed::{as_completed, AsCompleted, AsCompletedTasks};
#[doc(hidden)]
pub use gather::{__gather_tuple, GatherTuple, GatherTupleFuture, GatherTupleOutcomes};
pub use gather::{gather, Gather, GatherOutcomes};
pub use shield::{shield, Shield};
pub use wait::{wait, ReturnWhen, Wait};
