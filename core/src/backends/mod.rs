//! The backends, one folder each. Each implements [`crate::backend::Backend`].

pub mod consul;
mod duration;
pub mod ldlm;
pub mod memory;
pub mod mongo;
mod retry;
