//! Criterion benchmarks of the core's kernels, without Python: `cargo bench -p congruence-core`
//! (off by default: nothing here runs in `cargo test`). Sizes follow the Python benchmarks
//! (benches/); `RAYON_NUM_THREADS` sets the threads. Filter one case with
//! `cargo bench -p congruence-core -- rsa`.

use congruence_core::distance::{self, Compare, Rsm};
use congruence_core::hsic::{self, Spec};
use congruence_core::linalg::Input;
use congruence_core::neighbors;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ndarray::Array2;
use std::hint::black_box;

/// A reproducible `(n, p)` matrix of values in `[-0.5, 0.5)` (a 64-bit LCG, top 53 bits).
fn pseudo(n: usize, p: usize, seed: u64) -> Array2<f64> {
    let mut s = seed;
    Array2::from_shape_fn((n, p), |_| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    })
}

fn spec(kernel: &str, unbiased: bool, statistic: &str) -> Spec {
    Spec::parse(kernel, 1.0, unbiased, statistic, "auto").expect("a valid spec")
}

fn kernel_pairs(c: &mut Criterion) {
    let mut g = c.benchmark_group("cka_pair");
    g.sample_size(10);
    let (x, y) = (pseudo(2000, 256, 1), pseudo(2000, 256, 2));
    let (x32, y32) = (x.mapv(|v| v as f32), y.mapv(|v| v as f32));
    for (label, s) in [
        ("linear", spec("linear", false, "cka")),
        ("linear_debiased", spec("linear", true, "cka")),
    ] {
        g.bench_function(BenchmarkId::new(label, "2000x256_f64"), |b| {
            b.iter(|| hsic::pair(Input::F64(x.view()), Input::F64(y.view()), &s).unwrap())
        });
    }
    let s = spec("linear", false, "cka");
    g.bench_function(BenchmarkId::new("linear", "2000x256_f32"), |b| {
        b.iter(|| hsic::pair(Input::F32(x32.view()), Input::F32(y32.view()), &s).unwrap())
    });
    let (x, y) = (pseudo(2000, 64, 3), pseudo(2000, 64, 4));
    let s = spec("rbf", false, "cka");
    g.bench_function(BenchmarkId::new("rbf", "2000x64_f64"), |b| {
        b.iter(|| hsic::pair(Input::F64(x.view()), Input::F64(y.view()), &s).unwrap())
    });
    g.finish();
}

fn kernel_layer_matrix(c: &mut Criterion) {
    let mut g = c.benchmark_group("cka_layer_matrix");
    g.sample_size(10);
    let layers: Vec<Array2<f64>> = (0..6).map(|i| pseudo(2000, 128, 10 + i)).collect();
    let inputs: Vec<Input> = layers.iter().map(|a| Input::F64(a.view())).collect();
    let s = spec("linear", false, "cka");
    g.bench_function("linear_6x6_2000x128_f64", |b| {
        b.iter(|| hsic::layer_matrix(black_box(&inputs), None, &s).unwrap())
    });
    g.finish();
}

fn rsm_family(c: &mut Criterion) {
    let mut g = c.benchmark_group("rsm");
    g.sample_size(10);
    let (x, y) = (pseudo(1000, 128, 5), pseudo(1000, 128, 6));
    g.bench_function("rsa_euclidean_spearman_1000x128", |b| {
        b.iter(|| {
            distance::rsa(
                Input::F64(x.view()),
                Input::F64(y.view()),
                Rsm::Euclidean,
                Compare::Spearman,
            )
            .unwrap()
        })
    });
    g.bench_function("distance_correlation_1000x128", |b| {
        b.iter(|| {
            distance::distance_correlation(Input::F64(x.view()), Input::F64(y.view())).unwrap()
        })
    });
    g.finish();
}

fn neighbours(c: &mut Criterion) {
    let mut g = c.benchmark_group("knn");
    g.sample_size(10);
    let x = pseudo(4000, 64, 7);
    g.bench_function("knn_k10_4000x64", |b| {
        b.iter(|| neighbors::knn(Input::F64(x.view()), 10).unwrap())
    });
    g.finish();
}

criterion_group!(
    kernels,
    kernel_pairs,
    kernel_layer_matrix,
    rsm_family,
    neighbours
);
criterion_main!(kernels);
