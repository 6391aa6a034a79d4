//! Bindings of the kernel family: HSIC and CKA for pairs and layer matrices.

use crate::{run, to_py, Array};
use congruence_core::hsic::{self, Spec};
use congruence_core::linalg::Input;
use numpy::{IntoPyArray, PyArray2};
use pyo3::prelude::*;

/// Matrix of HSIC or CKA values between the layers of `a` and `b` (or all of `a` with itself).
#[pyfunction]
#[pyo3(signature = (a, b, kernel, sigma_frac, unbiased, statistic, route="auto"))]
#[allow(clippy::too_many_arguments)] // one argument per keyword of the Python call
fn kernel_matrix<'py>(
    py: Python<'py>,
    a: Vec<Array<'py>>,
    b: Option<Vec<Array<'py>>>,
    kernel: &str,
    sigma_frac: f64,
    unbiased: bool,
    statistic: &str,
    route: &str,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let spec = Spec::parse(kernel, sigma_frac, unbiased, statistic, route).map_err(to_py)?;
    let ia: Vec<Input> = a.iter().map(Array::input).collect();
    let ib: Option<Vec<Input>> = b.as_ref().map(|b| b.iter().map(Array::input).collect());
    let out = run(py, || hsic::layer_matrix(&ia, ib.as_deref(), &spec))?;
    Ok(out.into_pyarray(py))
}

/// HSIC or CKA of one pair.
#[pyfunction]
#[pyo3(signature = (x, y, kernel, sigma_frac, unbiased, statistic, route="auto"))]
#[allow(clippy::too_many_arguments)] // one argument per keyword of the Python call
fn kernel_pair<'py>(
    py: Python<'py>,
    x: Array<'py>,
    y: Array<'py>,
    kernel: &str,
    sigma_frac: f64,
    unbiased: bool,
    statistic: &str,
    route: &str,
) -> PyResult<f64> {
    let spec = Spec::parse(kernel, sigma_frac, unbiased, statistic, route).map_err(to_py)?;
    let (ix, iy) = (x.input(), y.input());
    run(py, || hsic::pair(ix, iy, &spec))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(kernel_pair, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_matrix, m)?)?;
    Ok(())
}
