//! The private extension module `congruence._core`: conversion only. Arrays are borrowed from
//! NumPy (float32 or float64, any strides), the interpreter is released while the core works,
//! and the core's errors become Python exceptions in one place, [`to_py`]:
//!
//! | core                                            | Python                          |
//! |-------------------------------------------------|---------------------------------|
//! | `Shape`, `Mismatch`, `Parameter`, `NonFinite`   | `ValueError`                    |
//! | `Memory`                                        | `MemoryError`                   |
//! | `Interrupted`                                   | `KeyboardInterrupt`             |
//! | a panic (a bug)                                 | `InternalError(RuntimeError)`   |
//!
//! Option strings are parsed by the core (`Spec::parse`, `Rsm::parse`, ...), never here.

use congruence_core::interrupt::{self, Watched};
use congruence_core::linalg::{self, Input};
use congruence_core::{memory, simd, CoreError};
use numpy::{PyArray1, PyReadonlyArray2, PyReadwriteArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyKeyboardInterrupt, PyMemoryError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::time::Duration;

pyo3::create_exception!(
    congruence._core,
    InternalError,
    PyRuntimeError,
    "A bug in congruence's Rust core (a panic), reported instead of an uncatchable \
     PanicException. Please report it with the call that raised it."
);

/// How often the main thread checks for signals (Ctrl-C) while the core works.
const POLL: Duration = Duration::from_millis(50);

/// The one map from core errors to Python exceptions.
pub(crate) fn to_py(e: CoreError) -> PyErr {
    match e {
        CoreError::Memory { .. } => PyMemoryError::new_err(e.to_string()),
        CoreError::Interrupted => PyKeyboardInterrupt::new_err(e.to_string()),
        CoreError::Shape { .. }
        | CoreError::Mismatch { .. }
        | CoreError::Parameter { .. }
        | CoreError::NonFinite { .. } => PyValueError::new_err(e.to_string()),
    }
}

/// A panic payload (a bug in the core) as an [`InternalError`].
fn internal_error(payload: Box<dyn std::any::Any + Send>) -> PyErr {
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    InternalError::new_err(format!(
        "internal error in congruence's core (please report it): {msg}"
    ))
}

/// Whether the current thread is Python's main thread (the only one that receives signals).
fn on_main_thread(py: Python<'_>) -> bool {
    let main = || -> PyResult<u64> {
        py.import("threading")?
            .call_method0("main_thread")?
            .getattr("ident")?
            .extract()
    };
    // SAFETY: a plain query of the current thread's identifier, with the interpreter attached.
    let current = unsafe { pyo3::ffi::PyThread_get_thread_ident() } as u64;
    main().is_ok_and(|m| m == current)
}

/// Run core work with the interpreter released and map its errors (see the module table).
///
/// On Python's main thread the work runs in the core's watched pool while this thread checks
/// for signals every [`POLL`] (attaching to the interpreter briefly): when a signal handler
/// raises (KeyboardInterrupt for Ctrl-C), the work is cancelled, stops at its next tile, and
/// that exception is raised once it has stopped; its partial result is discarded. Other
/// threads never receive signals: their work runs directly and nothing can cancel it, so
/// concurrent calls never cancel each other (see `congruence_core::interrupt`).
pub(crate) fn run<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> Result<T, CoreError> + Send,
) -> PyResult<T> {
    let watched: Option<&Watched> = if on_main_thread(py) {
        interrupt::shared()
    } else {
        None
    };
    let mut pending: Option<PyErr> = None;
    let out = py.detach(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match watched {
            Some(pool) => pool.run(f, POLL, || match Python::attach(|py| py.check_signals()) {
                Ok(()) => false,
                Err(e) => {
                    pending = Some(e);
                    true
                }
            }),
            None => interrupt::guard(f),
        }))
    });
    if let Some(e) = pending {
        return Err(e);
    }
    match out {
        Ok(r) => r.map_err(to_py),
        Err(payload) => Err(internal_error(payload)),
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

/// Bytes the process may still allocate (the smallest of available memory, the cgroup room
/// and the address-space room), or None when the system does not tell.
#[pyfunction]
fn memory_budget() -> Option<u64> {
    memory::budget()
}

/// Raise MemoryError if `nbytes` does not fit in 90% of `budget` (the caller passes
/// `memory_budget()`; None means unknown, no refusal); the message names the size, `what` (the
/// buffer and the measure) and `alternative`.
#[pyfunction]
fn check_fits(nbytes: f64, what: &str, alternative: &str, budget: Option<u64>) -> PyResult<()> {
    memory::check_fits_within(nbytes, budget, what, alternative).map_err(to_py)
}

/// `out[i] = float32(sum_j x[i, j] / k)` for a C-contiguous `(n, k)` float32 array, `k >= 1`:
/// each row's mean accumulated in float64 (every value exact) and rounded once to float32,
/// the global average pooling of `congruence.torch` in one pass over the activations. The
/// interpreter is released meanwhile (short work: not in the watched pool).
#[pyfunction]
fn row_means_f32<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f32>,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    let k = x.shape()[1];
    if k == 0 {
        return Err(PyValueError::new_err(
            "row_means_f32: x has no columns; expected an (n, k) array with k >= 1",
        ));
    }
    let flat = x.as_slice().map_err(|_| {
        PyValueError::new_err("row_means_f32: x must be a C-contiguous float32 array")
    })?;
    let mut out = vec![0.0f32; x.shape()[0]];
    py.detach(|| simd::row_means_f32(flat, k, &mut out));
    Ok(PyArray1::from_vec(py, out))
}

/// The column statistics of a C-contiguous float64 block of rows, which is centred in place
/// (`congruence_core::linalg::centre_rows_in_place`, the corrected two-pass rule): returns
/// `(mu, c, lo, hi)`, the mean being `mu + c` (`z` minus `mu + c` with `exact`, else minus
/// `mu`) and `lo`, `hi` the column extremes before centring (NaN for a column with a NaN).
/// The interpreter is released meanwhile (short work: not in the watched pool).
#[pyfunction]
#[allow(clippy::type_complexity)]
fn centre_rows<'py>(
    py: Python<'py>,
    mut z: PyReadwriteArray2<'py, f64>,
    exact: bool,
) -> PyResult<(
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
)> {
    if z.shape()[0] == 0 || !z.is_c_contiguous() {
        return Err(PyValueError::new_err(
            "centre_rows: z must be a C-contiguous float64 array with at least one row",
        ));
    }
    let view = z.as_array_mut();
    let st = py.detach(move || linalg::centre_rows_in_place(view, exact));
    Ok((
        PyArray1::from_vec(py, st.mu),
        PyArray1::from_vec(py, st.c),
        PyArray1::from_vec(py, st.lo),
        PyArray1::from_vec(py, st.hi),
    ))
}

/// Run a computation that panics, as a bug in the core would: for the tests of the mapping to
/// [`InternalError`] (from the main thread and from other threads).
#[pyfunction]
fn panic(py: Python<'_>, message: &str) -> PyResult<()> {
    let message = message.to_owned();
    run(py, move || -> Result<(), CoreError> { panic!("{message}") })
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
    m.add_function(wrap_pyfunction!(memory_budget, m)?)?;
    m.add_function(wrap_pyfunction!(row_means_f32, m)?)?;
    m.add_function(wrap_pyfunction!(centre_rows, m)?)?;
    m.add_function(wrap_pyfunction!(check_fits, m)?)?;
    m.add("InternalError", m.py().get_type::<InternalError>())?;
    // The private testing surface `congruence._core._testing`: internals that only the tests
    // call, kept out of the module's interface (and its stub).
    let testing = PyModule::new(m.py(), "_testing")?;
    distance::register_testing(&testing)?;
    testing.add_function(wrap_pyfunction!(panic, &testing)?)?;
    m.add_submodule(&testing)?;
    Ok(())
}
