//! Bindings of the RSM family: distance matrices, distance correlation, RSA.

use crate::{run, Array};
use congruence_core::distance::{self, Compare, Rsm};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1};
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

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(distance_difference, m)?)?;
    m.add_function(wrap_pyfunction!(rsm_fro_diff, m)?)?;
    m.add_function(wrap_pyfunction!(distance_correlation, m)?)?;
    m.add_function(wrap_pyfunction!(rsa, m)?)?;
    Ok(())
}

/// The family's internals that only the tests call (the `_testing` submodule): each is checked
/// there against an independent NumPy/SciPy reference.
pub(crate) fn register_testing(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(distance_matrix, m)?)?;
    m.add_function(wrap_pyfunction!(dcov_sums, m)?)?;
    m.add_function(wrap_pyfunction!(rsm_lower, m)?)?;
    m.add_function(wrap_pyfunction!(average_ranks, m)?)?;
    Ok(())
}
