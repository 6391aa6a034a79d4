//! The one error type of the core. The binding maps each variant to a Python exception once.

use std::fmt;

/// Every way a core computation can refuse its input.
#[derive(Debug, Clone, PartialEq)]
pub enum CoreError {
    /// An array argument has the wrong shape; `arg` names it, `expected` says what was wanted.
    Shape {
        arg: &'static str,
        shape: Vec<usize>,
        expected: String,
    },
    /// Two arrays disagree (for example in their number of rows).
    Mismatch { what: String },
    /// A scalar parameter lies outside its domain.
    Parameter {
        name: &'static str,
        value: String,
        expected: String,
    },
    /// An array holds NaN or infinite entries.
    NonFinite { arg: &'static str, count: usize },
    /// A buffer that cannot be allocated: `what` names the buffer and the computation, `bytes`
    /// its size, `budget` the bytes the process could still allocate (`None` when the
    /// pre-flight passed or is unknown and the allocation itself failed), and `alternative`
    /// what the caller can do instead (stream, minibatch, a smaller k, subsample).
    Memory {
        what: String,
        bytes: f64,
        budget: Option<u64>,
        alternative: String,
    },
    /// The computation was cancelled (Ctrl-C) at one of its checkpoints; see [`crate::interrupt`].
    Interrupted,
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::Shape {
                arg,
                shape,
                expected,
            } => {
                write!(f, "{arg} has shape {shape:?}; expected {expected}")
            }
            CoreError::Mismatch { what } => write!(f, "{what}"),
            CoreError::Parameter {
                name,
                value,
                expected,
            } => {
                write!(f, "{name}={value} is invalid; expected {expected}")
            }
            CoreError::NonFinite { arg, count } => {
                write!(f, "{arg} contains {count} non-finite value(s) (NaN or inf)")
            }
            CoreError::Memory {
                what,
                bytes,
                budget,
                alternative,
            } => {
                let size = format!("about {:.2} GB ({bytes:.0} bytes)", bytes / 1e9);
                match budget {
                    Some(b) => write!(
                        f,
                        "{what} needs {size}, but only {:.2} GB can be allocated (the smallest \
                         of available memory, the cgroup memory limit and the address-space \
                         limit); {alternative}",
                        *b as f64 / 1e9
                    ),
                    None => write!(
                        f,
                        "{what} needs {size}, and the allocation failed; {alternative}"
                    ),
                }
            }
            CoreError::Interrupted => write!(f, "the computation was interrupted"),
        }
    }
}

impl std::error::Error for CoreError {}

pub type Result<T> = std::result::Result<T, CoreError>;
