//! Sparse-mask bookkeeping for lottery-ticket pruning.
//!
//! A mask says which weights of a layer are live (`true`) and which are pruned
//! (`false`). Masks are bitsets over the row-major flattening of a weight
//! matrix `[out, in]` (or of a bias vector `[out]`).
//!
//! - [`bitset`]: the [`Bitset`] type, counts and overlap statistics;
//! - [`select`]: global / layer-wise magnitude pruning by selection (no full sort)
//!   and seeded random control masks;
//! - [`graph`]: dead-neuron analysis on a generic layer graph (skip connections,
//!   several heads), to a fixed point;
//! - [`csr`]: export of masked weights as compressed sparse rows.
//!
//! Masks are saved in one place only: the training checkpoint (safetensors,
//! `mask/<param>` tensors), written by the Python side.

pub mod bitset;
pub mod csr;
pub mod graph;
pub mod select;

pub use bitset::{Bitset, Overlap};
pub use csr::Csr;
pub use graph::{DeadNeuronReport, LayerGraph, LayerNode, Segment, Source};
pub use select::{Selection, SelectionScope};
