//! Code shared by the examples (`#[path = "common/mod.rs"] mod common;`).
//! Each example uses part of it.
#![allow(dead_code)]

pub mod fetch_many;
pub mod http;
