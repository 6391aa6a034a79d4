//! Bindings of the kernel family: HSIC and CKA for pairs and layer matrices.

use crate::{run, to_py, Array};
use congruence_core::hsic::{self, Spec};
use congruence_core::linalg::Input;
use congruence_core::permutation;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray2};
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

/// The centred (biased) or U-centred (unbiased) kernel matrix of `x` and its normalisation
/// exponent, or None when the kernel is undefined (RBF with a zero median squared distance).
#[pyfunction]
#[pyo3(signature = (x, kernel, sigma_frac, unbiased))]
fn centred_kernel<'py>(
    py: Python<'py>,
    x: Array<'py>,
    kernel: &str,
    sigma_frac: f64,
    unbiased: bool,
) -> PyResult<Option<(Bound<'py, PyArray2<f64>>, i32)>> {
    let spec = Spec::parse(kernel, sigma_frac, unbiased, "cka", "auto").map_err(to_py)?;
    let ix = x.input();
    let out = run(py, || permutation::centred_kernel(ix, &spec))?;
    Ok(out.map(|c| (c.matrix.into_pyarray(py), c.exp)))
}

/// HSIC or CKA of `X` and `Y[perm]` for each row `perm` of `perms`, from the two centred
/// kernel matrices of `centred_kernel` (`exp`: the sum of their exponents).
#[pyfunction]
#[pyo3(signature = (k, l, exp, perms, kernel, sigma_frac, unbiased, statistic))]
#[allow(clippy::too_many_arguments)] // one argument per keyword of the Python call
fn kernel_permuted<'py>(
    py: Python<'py>,
    k: PyReadonlyArray2<'py, f64>,
    l: PyReadonlyArray2<'py, f64>,
    exp: i64,
    perms: PyReadonlyArray2<'py, i64>,
    kernel: &str,
    sigma_frac: f64,
    unbiased: bool,
    statistic: &str,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let spec = Spec::parse(kernel, sigma_frac, unbiased, statistic, "auto").map_err(to_py)?;
    let (k, l, perms) = (k.as_array(), l.as_array(), perms.as_array());
    let out = run(py, || {
        permutation::permuted_statistic(k, l, exp, perms, &spec)
    })?;
    Ok(out.into_pyarray(py))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(kernel_pair, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_matrix, m)?)?;
    m.add_function(wrap_pyfunction!(centred_kernel, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_permuted, m)?)?;
    Ok(())
}
