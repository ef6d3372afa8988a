//! The error type for module translation and compilation.

use std::fmt;

/// Why a module could not be turned into code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WasmError {
    /// The bytes are not a well-formed or valid WebAssembly module.
    Invalid {
        /// What is wrong.
        message: String,
        /// Byte offset of the problem in the module.
        offset: u64,
    },
    /// The module is valid but uses something Kiln does not support.
    Unsupported(String),
    /// An implementation limit was exceeded.
    Limit(String),
    /// The code generator failed (a Kiln bug).
    Codegen(String),
}

impl WasmError {
    /// The byte offset the error points at, if it has one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            WasmError::Invalid { offset, .. } => Some(*offset),
            _ => None,
        }
    }
}

impl fmt::Display for WasmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WasmError::Invalid { message, offset } => write!(f, "{message} (at offset {offset:#x})"),
            WasmError::Unsupported(s) => write!(f, "unsupported feature: {s}"),
            WasmError::Limit(s) => write!(f, "implementation limit exceeded: {s}"),
            WasmError::Codegen(s) => write!(f, "compilation failed: {s}"),
        }
    }
}

impl std::error::Error for WasmError {}

impl From<wasmparser::BinaryReaderError> for WasmError {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        WasmError::Invalid { message: e.message().to_string(), offset: e.offset() }
    }
}

impl From<crate::types::UnsupportedType> for WasmError {
    fn from(e: crate::types::UnsupportedType) -> Self {
        WasmError::Unsupported(e.0)
    }
}

/// Result alias for translation and compilation.
pub type WasmResult<T> = Result<T, WasmError>;
