//! The backends, one folder each. Each implements [`crate::backend::Backend`].

pub mod consul;
pub mod memory;
pub mod mongo;
mod retry;
