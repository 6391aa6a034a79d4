//! Bindings of the kernel family: HSIC and CKA for pairs and layer matrices.

use crate::{run, Array};
use congruence_core::hsic::{self, Estimator, Kernel, Route, Spec, Statistic};
use congruence_core::linalg::Input;
use numpy::{IntoPyArray, PyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn spec(
    kernel: &str,
    sigma_frac: f64,
    unbiased: bool,
    statistic: &str,
    route: &str,
) -> PyResult<Spec> {
    let kernel = match kernel {
        "linear" => Kernel::Linear,
        "rbf" => Kernel::Rbf { sigma_frac },
        other => {
            return Err(PyValueError::new_err(format!(
                "kernel={other:?} is invalid; expected 'linear' or 'rbf'"
            )))
        }
    };
    let statistic = match statistic {
        "cka" => Statistic::Cka,
        "hsic" => Statistic::Hsic,
        other => {
            return Err(PyValueError::new_err(format!(
                "statistic={other:?} is invalid; expected 'cka' or 'hsic'"
            )))
        }
    };
    let route = match route {
        "auto" => Route::Auto,
        "features" => Route::Features,
        "gram" => Route::Gram,
        other => {
            return Err(PyValueError::new_err(format!(
                "route={other:?} is invalid; expected 'auto', 'features' or 'gram'"
            )))
        }
    };
    let estimator = if unbiased {
        Estimator::Unbiased
    } else {
        Estimator::Biased
    };
    Ok(Spec {
        kernel,
        estimator,
        statistic,
        route,
    })
}

/// Matrix of HSIC or CKA values between the layers of `a` and `b` (or all of `a` with itself).
#[pyfunction]
#[pyo3(signature = (a, b, kernel, sigma_frac, unbiased, statistic, route="auto"))]
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
    let spec = spec(kernel, sigma_frac, unbiased, statistic, route)?;
    let ia: Vec<Input> = a.iter().map(Array::input).collect();
    let ib: Option<Vec<Input>> = b.as_ref().map(|b| b.iter().map(Array::input).collect());
    let out = run(py, || hsic::layer_matrix(&ia, ib.as_deref(), &spec))?;
    Ok(out.into_pyarray(py))
}

/// HSIC or CKA of one pair.
#[pyfunction]
#[pyo3(signature = (x, y, kernel, sigma_frac, unbiased, statistic, route="auto"))]
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
    let spec = spec(kernel, sigma_frac, unbiased, statistic, route)?;
    let (ix, iy) = (x.input(), y.input());
    run(py, || hsic::pair(ix, iy, &spec))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(kernel_pair, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_matrix, m)?)?;
    Ok(())
}
