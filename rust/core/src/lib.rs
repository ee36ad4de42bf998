//! nerfprune-core: the pure-Rust half of nerfprune.
//!
//! No pyo3 here: everything is plain Rust over slices, covered by `cargo test`.
//! The binding crate (`rust/py`) converts numpy arrays to slices and maps
//! [`CoreError`] to Python exceptions.

pub mod batch;
pub mod buffer;
pub mod checksum;
pub mod decode;
pub mod error;
pub mod fused;
pub mod masks;
pub mod resize;

pub use error::{CoreError, CoreResult};
