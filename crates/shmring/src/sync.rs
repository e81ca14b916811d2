//! The atomics the ring is written against: `std`'s, or loom's under `--cfg loom` so that
//! the model checker sees every access (see `memory.rs` and `tests/loom.rs`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, fence};
#[cfg(loom)]
pub(crate) use std::sync::atomic::compiler_fence;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, compiler_fence, fence};

pub(crate) use std::sync::atomic::Ordering;
