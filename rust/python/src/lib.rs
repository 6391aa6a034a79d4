//! The private extension module `congruence._core`: conversion only. Arrays are borrowed from
//! NumPy (float32 or float64, any strides), the interpreter is released while the core works,
//! and core errors become `ValueError`s.

use congruence_core::linalg::Input;
use congruence_core::CoreError;
use numpy::PyReadonlyArray2;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

fn to_py(e: CoreError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// Run core work with the interpreter released; a core error becomes `ValueError` and a panic
/// (a bug) becomes `RuntimeError`, never an uncatchable `PanicException`.
pub(crate) fn run<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> Result<T, CoreError> + Send,
) -> PyResult<T> {
    let out = py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    match out {
        Ok(r) => r.map_err(to_py),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(PyRuntimeError::new_err(format!(
                "internal error in congruence's core (please report it): {msg}"
            )))
        }
    }
}

/// A borrowed float32 or float64 2-D NumPy array.
#[derive(FromPyObject)]
pub(crate) enum Array<'py> {
    F64(PyReadonlyArray2<'py, f64>),
    F32(PyReadonlyArray2<'py, f32>),
}

impl Array<'_> {
    pub(crate) fn input(&self) -> Input<'_> {
        match self {
            Array::F64(a) => Input::F64(a.as_array()),
            Array::F32(a) => Input::F32(a.as_array()),
        }
    }
}

/// One binding module per family, each with a `register` function that adds its functions.
mod distance;
mod kernel;
mod neighbors;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    distance::register(m)?;
    kernel::register(m)?;
    neighbors::register(m)?;
    Ok(())
}
