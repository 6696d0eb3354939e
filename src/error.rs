//! Errors are values with a stable `code` and a sentence a web developer can act on.
//! They cross into JS as real `Error` objects with a `code` property (see `wasm.rs`).
//! `Code` is the one list of the engine's codes: the typings' `ErrorCode` is held to it by
//! `tests/error_codes.rs`, with the codes only the JavaScript runtime gives.

use std::fmt;

/// Every error code the engine gives, as JavaScript reads it (`error.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// The caller stopped a generation.
    Aborted,
    /// Not a GGUF file (an HTML error page, say).
    BadMagic,
    /// Another call is using the engine.
    Busy,
    /// The prompt and `max_tokens` do not fit the context.
    ContextOverflow,
    /// A bug: nothing a caller did.
    Internal,
    /// A value the caller passed is not allowed.
    InvalidArgument,
    /// A chat the template cannot render, or a model without one.
    InvalidChat,
    /// The file's metadata is missing or inconsistent.
    InvalidMetadata,
    /// A tensor's shape, type or place in the file is wrong.
    InvalidTensor,
    /// A tensor the architecture needs is not in the file.
    MissingTensor,
    /// The model cannot fit this device or a page's memory.
    ModelTooLarge,
    /// A download failed.
    Network,
    /// Another request used the engine since this generation started.
    Superseded,
    /// The file ends before what its header announces.
    TruncatedFile,
    UnsupportedArchitecture,
    UnsupportedQuantization,
    UnsupportedTokenizer,
    UnsupportedVersion,
    /// The GPU failed a command.
    WebgpuError,
    /// The GPU device was lost (the model moves to the CPU).
    WebgpuLost,
    /// No usable WebGPU adapter.
    WebgpuUnavailable,
}

impl Code {
    pub const ALL: [Code; 21] = [
        Code::Aborted,
        Code::BadMagic,
        Code::Busy,
        Code::ContextOverflow,
        Code::Internal,
        Code::InvalidArgument,
        Code::InvalidChat,
        Code::InvalidMetadata,
        Code::InvalidTensor,
        Code::MissingTensor,
        Code::ModelTooLarge,
        Code::Network,
        Code::Superseded,
        Code::TruncatedFile,
        Code::UnsupportedArchitecture,
        Code::UnsupportedQuantization,
        Code::UnsupportedTokenizer,
        Code::UnsupportedVersion,
        Code::WebgpuError,
        Code::WebgpuLost,
        Code::WebgpuUnavailable,
    ];

    /// The code as JavaScript sees it: `bad_magic`, `context_overflow`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Aborted => "aborted",
            Code::BadMagic => "bad_magic",
            Code::Busy => "busy",
            Code::ContextOverflow => "context_overflow",
            Code::Internal => "internal",
            Code::InvalidArgument => "invalid_argument",
            Code::InvalidChat => "invalid_chat",
            Code::InvalidMetadata => "invalid_metadata",
            Code::InvalidTensor => "invalid_tensor",
            Code::MissingTensor => "missing_tensor",
            Code::ModelTooLarge => "model_too_large",
            Code::Network => "network",
            Code::Superseded => "superseded",
            Code::TruncatedFile => "truncated_file",
            Code::UnsupportedArchitecture => "unsupported_architecture",
            Code::UnsupportedQuantization => "unsupported_quantization",
            Code::UnsupportedTokenizer => "unsupported_tokenizer",
            Code::UnsupportedVersion => "unsupported_version",
            Code::WebgpuError => "webgpu_error",
            Code::WebgpuLost => "webgpu_lost",
            Code::WebgpuUnavailable => "webgpu_unavailable",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tests and callers compare a code with its name: `assert_eq!(e.code, "bad_magic")`.
impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Stable, machine-readable.
    pub code: Code,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
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

/// A real JavaScript `Error` with the `code` property.
#[cfg(target_arch = "wasm32")]
impl From<Error> for wasm_bindgen::JsValue {
    fn from(e: Error) -> Self {
        let err = js_sys::Error::new(&e.message);
        let _ = js_sys::Reflect::set(&err, &"code".into(), &e.code.as_str().into());
        err.into()
    }
}

/// `bail!(Code, "format", args…)` returns an `Err(Error)` from the current function.
#[macro_export]
macro_rules! bail {
    ($code:expr, $($arg:tt)*) => { return Err($crate::error::Error::new($code, format!($($arg)*))) };
}
