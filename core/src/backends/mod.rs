//! The backends, one folder each. Each implements [`crate::backend::Backend`].
//! Every one but `memory` is built only with the cargo feature of its name
//! (`consul`, `mongodb`, `ldlm`, `postgres`; all on by default); [`crate::url`]'s table
//! of schemes says which.

#[cfg(feature = "consul")]
pub mod consul;
#[cfg(any(feature = "consul", feature = "ldlm"))]
pub(crate) mod duration;
#[cfg(feature = "ldlm")]
pub mod ldlm;
pub mod memory;
#[cfg(feature = "mongodb")]
pub mod mongo;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "consul", feature = "mongodb", feature = "postgres"))]
mod retry;
#[cfg(any(feature = "ldlm", feature = "postgres"))]
mod tls;
#[cfg(any(feature = "ldlm", feature = "postgres"))]
pub(crate) mod url_text;
