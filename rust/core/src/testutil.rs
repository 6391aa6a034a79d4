//! Helpers shared by the unit tests of the core's modules.

use ndarray::Array2;

/// A reproducible `(n, p)` matrix of values in `[-0.5, 0.5)` (a 64-bit LCG; the top 53 bits).
pub(crate) fn pseudo(n: usize, p: usize, seed: u64) -> Array2<f64> {
    let mut s = seed;
    Array2::from_shape_fn((n, p), |_| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    })
}

/// The full `n x n` matrix of squared Euclidean distances between the rows of `x`, entry by
/// entry (the slow reference of the kernel tests).
pub(crate) fn full_sq_dist(x: &Array2<f64>) -> Array2<f64> {
    let n = x.nrows();
    Array2::from_shape_fn((n, n), |(i, j)| {
        x.row(i)
            .iter()
            .zip(x.row(j))
            .map(|(a, b)| (a - b) * (a - b))
            .sum()
    })
}

/// `f` run in a fresh rayon pool of `threads` threads (for thread-count independence tests).
pub(crate) fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}
