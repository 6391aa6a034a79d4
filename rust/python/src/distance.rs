//! Bindings of the RSM family: distance matrices, distance correlation, RSA.

use crate::{run, Array};
use congruence_core::distance::{self, Compare, Rsm};
use congruence_core::rsm::{self, RsaPrep};
use congruence_core::CoreError;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

/// Full n x n Euclidean distance matrix between the rows of `x`.
#[pyfunction]
fn distance_matrix<'py>(py: Python<'py>, x: Array<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let ix = x.input();
    let d = run(py, || distance::distance_matrix(ix))?;
    Ok(d.into_pyarray(py))
}

/// Full n x n matrix `D_X - D_Y` of the two Euclidean distance matrices.
#[pyfunction]
fn distance_difference<'py>(
    py: Python<'py>,
    x: Array<'py>,
    y: Array<'py>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let (ix, iy) = (x.input(), y.input());
    let d = run(py, || distance::distance_difference(ix, iy))?;
    Ok(d.into_pyarray(py))
}

/// `||D_X - D_Y||_F` (both triangles), streamed.
#[pyfunction]
fn rsm_fro_diff(py: Python<'_>, x: Array<'_>, y: Array<'_>) -> PyResult<f64> {
    let (ix, iy) = (x.input(), y.input());
    run(py, || distance::rsm_fro_diff(ix, iy))
}

/// `(sum A B, sum A A, sum B B)` of the doubly centred distance matrices, streamed.
#[pyfunction]
fn dcov_sums(py: Python<'_>, x: Array<'_>, y: Array<'_>) -> PyResult<(f64, f64, f64)> {
    let (ix, iy) = (x.input(), y.input());
    run(py, || distance::dcov_sums(ix, iy))
}

/// Distance correlation (V-statistic).
#[pyfunction]
fn distance_correlation(py: Python<'_>, x: Array<'_>, y: Array<'_>) -> PyResult<f64> {
    let (ix, iy) = (x.input(), y.input());
    run(py, || distance::distance_correlation(ix, iy))
}

/// RSA: Pearson or Spearman correlation of the two RSM triangles.
#[pyfunction]
fn rsa(py: Python<'_>, x: Array<'_>, y: Array<'_>, rsm: &str, compare: &str) -> PyResult<f64> {
    let (ix, iy) = (x.input(), y.input());
    let (rsm, compare) = (rsm.to_owned(), compare.to_owned());
    run(py, move || {
        let rsm = Rsm::parse(&rsm)?;
        let compare = Compare::parse(&compare)?;
        distance::rsa(ix, iy, rsm, compare)
    })
}

/// The packed strict lower triangle of an RSM (row i holds j < i), or None when undefined.
#[pyfunction]
fn rsm_lower<'py>(
    py: Python<'py>,
    x: Array<'py>,
    rsm: &str,
) -> PyResult<Option<Bound<'py, PyArray1<f64>>>> {
    let ix = x.input();
    let rsm = rsm.to_owned();
    let v = run(py, move || distance::rsm_lower(ix, Rsm::parse(&rsm)?))?;
    Ok(v.map(|v| v.into_pyarray(py)))
}

/// Average ranks (1-based, ties averaged) of a 1-D float64 array.
#[pyfunction]
fn average_ranks<'py>(
    py: Python<'py>,
    v: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let mut out = v.as_array().to_vec();
    run(py, || {
        if let Some(bad) = out.iter().position(|x| !x.is_finite()) {
            return Err(congruence_core::CoreError::NonFinite {
                arg: "v",
                count: out.iter().skip(bad).filter(|x| !x.is_finite()).count(),
            });
        }
        distance::rank_in_place(&mut out);
        Ok(())
    })?;
    Ok(out.into_pyarray(py))
}

/// A contiguous 1-D float64 array as a slice (prepared vectors are made contiguous by the
/// Python side).
fn slice<'a>(v: &'a PyReadonlyArray1<'_, f64>, arg: &'static str) -> PyResult<&'a [f64]> {
    v.as_slice().map_err(|_| {
        crate::to_py(CoreError::Shape {
            arg,
            shape: vec![v.as_array().len()],
            expected: "a contiguous float64 vector".into(),
        })
    })
}

/// The per-layer part of RSA: `(0, triangle)` standardised (raw for Kendall's tau-a),
/// `(1, None)` when a row has zero variance (correlation RSM), `(2, None)` when the triangle
/// is constant.
#[pyfunction]
fn rsa_prepare<'py>(
    py: Python<'py>,
    x: Array<'py>,
    rsm: &str,
    compare: &str,
) -> PyResult<(u8, Option<Bound<'py, PyArray1<f64>>>)> {
    let ix = x.input();
    let (rsm, compare) = (rsm.to_owned(), compare.to_owned());
    let prep = run(py, move || {
        rsm::rsa_prepare(ix, Rsm::parse(&rsm)?, Compare::parse(&compare)?)
    })?;
    Ok(match prep {
        RsaPrep::Ready(v) => (0, Some(v.into_pyarray(py))),
        RsaPrep::RowUndefined => (1, None),
        RsaPrep::Constant => (2, None),
    })
}

/// The doubly centred distance matrix of `x` as the unit vector
/// `[sqrt 2 A_lower, diag A] / ||A||_F` (None when `A = 0`).
#[pyfunction]
fn dcor_prepare<'py>(
    py: Python<'py>,
    x: Array<'py>,
) -> PyResult<Option<Bound<'py, PyArray1<f64>>>> {
    let ix = x.input();
    let v = run(py, || rsm::dcor_prepare(ix))?;
    Ok(v.map(|v| v.into_pyarray(py)))
}

/// `out[i, j] = <a_i, b_j>` (`dot=True`) or `||a_i - b_j||^2` for two lists of equally long
/// vectors, blocked over their length.
#[pyfunction]
fn layer_cross<'py>(
    py: Python<'py>,
    a: Vec<PyReadonlyArray1<'py, f64>>,
    b: Vec<PyReadonlyArray1<'py, f64>>,
    dot: bool,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let sa = a
        .iter()
        .map(|v| slice(v, "a"))
        .collect::<PyResult<Vec<_>>>()?;
    let sb = b
        .iter()
        .map(|v| slice(v, "b"))
        .collect::<PyResult<Vec<_>>>()?;
    let out = run(py, || {
        if dot {
            rsm::cross::<true>(&sa, &sb)
        } else {
            rsm::cross::<false>(&sa, &sb)
        }
    })?;
    Ok(out.into_pyarray(py))
}

/// `values[k] = <zx, zy o perms[k]>`: the dot products of `zx` with the packed triangle of
/// the rows of `zy` permuted by each row of `perms` (`(N, n)` int64).
#[pyfunction]
fn permuted_dots<'py>(
    py: Python<'py>,
    zx: PyReadonlyArray1<'py, f64>,
    zy: PyReadonlyArray1<'py, f64>,
    n: usize,
    perms: PyReadonlyArray2<'py, i64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (sx, sy) = (slice(&zx, "zx")?, slice(&zy, "zy")?);
    let pv = perms.as_array();
    let out = run(py, || rsm::permuted_dots(sx, sy, n, pv))?;
    Ok(out.into_pyarray(py))
}

/// Kendall's tau-a of two equally long vectors (exact pair counts).
#[pyfunction]
fn kendall_tau_a(
    py: Python<'_>,
    a: PyReadonlyArray1<'_, f64>,
    b: PyReadonlyArray1<'_, f64>,
) -> PyResult<f64> {
    let (sa, sb) = (slice(&a, "a")?, slice(&b, "b")?);
    run(py, || {
        if sa.len() != sb.len() {
            return Err(CoreError::Mismatch {
                what: format!("vectors of lengths {} and {}", sa.len(), sb.len()),
            });
        }
        Ok(distance::kendall_tau_a(sa, sb))
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(distance_difference, m)?)?;
    m.add_function(wrap_pyfunction!(rsm_fro_diff, m)?)?;
    m.add_function(wrap_pyfunction!(distance_correlation, m)?)?;
    m.add_function(wrap_pyfunction!(rsa, m)?)?;
    m.add_function(wrap_pyfunction!(rsm_lower, m)?)?;
    m.add_function(wrap_pyfunction!(rsa_prepare, m)?)?;
    m.add_function(wrap_pyfunction!(dcor_prepare, m)?)?;
    m.add_function(wrap_pyfunction!(layer_cross, m)?)?;
    m.add_function(wrap_pyfunction!(permuted_dots, m)?)?;
    m.add_function(wrap_pyfunction!(kendall_tau_a, m)?)?;
    Ok(())
}

/// The family's internals that only the tests call (the `_testing` submodule): each is checked
/// there against an independent NumPy/SciPy reference.
pub(crate) fn register_testing(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(distance_matrix, m)?)?;
    m.add_function(wrap_pyfunction!(dcov_sums, m)?)?;
    m.add_function(wrap_pyfunction!(average_ranks, m)?)?;
    Ok(())
}
