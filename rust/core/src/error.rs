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
        }
    }
}

impl std::error::Error for CoreError {}

pub type Result<T> = std::result::Result<T, CoreError>;
