//! Errors are values with a stable `code` and a sentence a web developer can act on.
//! They cross into JS as real `Error` objects with a `code` property (see `wasm.rs`).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Stable, machine-readable: `bad_magic`, `truncated_file`, `context_overflow`, …
    pub code: &'static str,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for Error {}

/// `bail!(code, "format", args…)` returns an `Err(Error)` from the current function.
#[macro_export]
macro_rules! bail {
    ($code:expr, $($arg:tt)*) => { return Err($crate::error::Error::new($code, format!($($arg)*))) };
}
