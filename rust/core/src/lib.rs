//! congruence-core: the numerical kernels of congruence, in pure Rust (ndarray + rayon + faer).
//!
//! * [`linalg`]: column centring and matrix products that accumulate in float64.
//! * [`kernel`]: Gram matrices (linear, RBF with the median-distance bandwidth), centring,
//!   U-centring, and the exact selection of the median squared distance.
//! * [`gram`]: the Gram route of a whole layer matrix, tile by tile, with all the inner
//!   products of a tile as one matrix product.
//! * [`hsic`]: HSIC (biased and unbiased) and CKA (biased and debiased), for one pair of
//!   representations and for whole layer-by-layer matrices with per-layer statistics reused.
//! * [`rsm`]: per-layer preparations of the RSM family (standardised RSM triangles, doubly
//!   centred distance matrices) and the blocked products that combine them.
//! * [`permutation`]: permutation nulls of HSIC and CKA from centred kernel matrices computed
//!   once and re-indexed per permutation.
//! * [`memory`]: the one memory budget (available memory, cgroup limit, address-space limit),
//!   the pre-flight check and the fallible allocation of large buffers.
//! * [`interrupt`]: cancellation (Ctrl-C) at a checkpoint per tile, and the pool it works in.
//!
//! Errors: the measures return [`Result`]. A computation that has to stop inside a parallel
//! loop (cancelled, or an allocation that failed there) unwinds with its [`CoreError`] as the
//! payload; run inside [`interrupt::guard`] (as the binding does), it returns that error.
//!
//! Determinism: every parallel reduction splits its work into chunks whose boundaries do not
//! depend on the number of threads and adds the partial results in a fixed order, so float64
//! results are identical for any `RAYON_NUM_THREADS`.

pub mod distance;
pub mod error;
pub mod gram;
pub mod hsic;
pub mod interrupt;
pub mod kernel;
pub mod linalg;
pub mod memory;
pub mod neighbors;
pub mod permutation;
pub mod rsm;
pub mod simd;
#[cfg(test)]
mod testutil;

pub use error::{CoreError, Result};
