//! Bindings of the neighbourhood family: kNN sets under cosine distance and the measures of
//! MEASURES.md section 5 computed from them.

use crate::{run, to_py, Array};
use congruence_core::neighbors::{self, SetStatistic};
use congruence_core::CoreError;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2};
use pyo3::prelude::*;

/// Neighbour indices (int64) and distances (float64), both `(n, k)`.
type Lists<'py> = (Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f64>>);

/// The `k` nearest neighbours of every row of `x` under cosine distance: `(indices, distances)`,
/// both `(n, k)`, int64 and float64, ordered by increasing distance, ties to the smaller index.
#[pyfunction]
fn knn<'py>(py: Python<'py>, x: Array<'py>, k: i64) -> PyResult<Lists<'py>> {
    let k = usize::try_from(k).map_err(|_| {
        to_py(CoreError::Parameter {
            name: "k",
            value: k.to_string(),
            expected: "an integer >= 1".into(),
        })
    })?;
    let ix = x.input();
    let r = run(py, || neighbors::knn(ix, k))?;
    Ok((r.indices.into_pyarray(py), r.distances.into_pyarray(py)))
}

/// Mean over rows of a statistic of two kNN index matrices: "jaccard", "rank",
/// "joint_rank_jaccard" or "mutual".
#[pyfunction]
fn knn_statistic(
    py: Python<'_>,
    nx: PyReadonlyArray2<'_, i64>,
    ny: PyReadonlyArray2<'_, i64>,
    statistic: &str,
) -> PyResult<f64> {
    let statistic = SetStatistic::parse(statistic).map_err(to_py)?;
    let (ax, ay) = (nx.as_array(), ny.as_array());
    run(py, || neighbors::set_statistic(ax, ay, statistic))
}

/// Second-order cosine similarity of `x` and `y` given their kNN index matrices.
#[pyfunction]
fn second_order_cosine<'py>(
    py: Python<'py>,
    x: Array<'py>,
    y: Array<'py>,
    nx: PyReadonlyArray2<'py, i64>,
    ny: PyReadonlyArray2<'py, i64>,
) -> PyResult<f64> {
    let (ix, iy) = (x.input(), y.input());
    let (ax, ay) = (nx.as_array(), ny.as_array());
    run(py, || neighbors::second_order_cosine(ix, iy, ax, ay))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(knn, m)?)?;
    m.add_function(wrap_pyfunction!(knn_statistic, m)?)?;
    m.add_function(wrap_pyfunction!(second_order_cosine, m)?)?;
    Ok(())
}
