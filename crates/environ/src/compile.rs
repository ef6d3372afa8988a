//! The `Compiler` trait, implemented by code generators, and what they
//! produce.

use crate::error::WasmResult;
use crate::index::FuncIndex;
use crate::module::ModuleInfo;
use crate::translate::FunctionBodyInput;
use crate::trap::TrapCode;
use crate::types::FuncType;
use crate::vmoffsets::VMOffsets;
use serde::{Deserialize, Serialize};

/// A relocation kind inside the text blob. Only PC-relative calls between
/// the module's own functions exist: everything else is reached through the
/// VMContext, so the code is position-independent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelocKind {
    /// x86-64 `call rel32`: a 4-byte PC-relative displacement.
    X86CallPCRel4,
    /// AArch64 `bl`: a 26-bit word displacement.
    Arm64Call,
}

/// A relocation to patch when functions are laid out in the text blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relocation {
    /// Offset of the patched bytes from the function's start.
    pub offset: u32,
    /// How to patch.
    pub kind: RelocKind,
    /// The defined function being called.
    pub target: crate::FuncIndex,
    /// Constant added to the target address.
    pub addend: i64,
}

/// Machine code for one function, not yet placed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CompiledFunction {
    /// The code bytes.
    pub code: Vec<u8>,
    /// Required alignment of the first byte.
    pub alignment: u32,
    /// Calls to patch.
    pub relocations: Vec<Relocation>,
    /// Trapping instructions, by offset from the function's start.
    pub traps: Vec<(u32, TrapCode)>,
    /// `(code offset, wasm offset)` pairs, sorted by code offset: each code
    /// range starting at an entry comes from the wasm instruction at that
    /// offset *relative to the start of the function body*.
    pub address_map: Vec<(u32, u32)>,
    /// Calls made with exception handlers, sorted by return offset;
    /// handler offsets are from the function's start.
    pub exn_sites: Vec<crate::ExnSite>,
    /// Calls with GC references live across them, sorted by return
    /// offset (from the function's start).
    pub stack_maps: Vec<crate::StackMapSite>,
}

/// How long the steps of compiling one function took
/// ([`Compiler::compile_function_timed`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FunctionCompileTimes {
    /// Validating the body and translating it to the code generator's IR.
    pub translate: std::time::Duration,
    /// Optimizing, register allocation and emitting machine code.
    pub codegen: std::time::Duration,
}

/// A code generator for Kiln.
pub trait Compiler: Send + Sync {
    /// Compiles defined function `func` (a module function index) of `module`.
    ///
    /// # Errors
    ///
    /// Validation errors for the body (with byte offsets), or a code
    /// generation failure.
    fn compile_function(
        &self,
        module: &ModuleInfo,
        offsets: &VMOffsets,
        func: FuncIndex,
        input: FunctionBodyInput<'_>,
    ) -> WasmResult<CompiledFunction>;

    /// Like [`Compiler::compile_function`], and also says how long each
    /// step took (for compile-time reports). The default times the whole
    /// call as code generation; implementations that can tell translation
    /// from code generation apart override it.
    ///
    /// # Errors
    ///
    /// As [`Compiler::compile_function`].
    fn compile_function_timed(
        &self,
        module: &ModuleInfo,
        offsets: &VMOffsets,
        func: FuncIndex,
        input: FunctionBodyInput<'_>,
    ) -> WasmResult<(CompiledFunction, FunctionCompileTimes)> {
        let start = std::time::Instant::now();
        let f = self.compile_function(module, offsets, func, input)?;
        Ok((f, FunctionCompileTimes { translate: std::time::Duration::ZERO, codegen: start.elapsed() }))
    }

    /// Compiles the array-call entry trampoline for signature `ty`:
    /// `extern "C" fn(callee_vmctx, caller_vmctx, values: *mut ValRaw, wasm_call)`
    /// loads the arguments from `values`, calls `wasm_call` with the wasm
    /// calling convention, and stores the results back into `values`.
    ///
    /// # Errors
    ///
    /// A code generation failure.
    fn compile_array_to_wasm_trampoline(&self, ty: &FuncType) -> WasmResult<CompiledFunction>;

    /// Compiles the wasm-to-host trampoline for signature `ty`: a function
    /// with the wasm calling convention that spills its arguments into a
    /// `ValRaw` array, records the exit frame, and calls the host function's
    /// array-call entry found in the callee context.
    ///
    /// # Errors
    ///
    /// A code generation failure.
    fn compile_wasm_to_array_trampoline(&self, ty: &FuncType) -> WasmResult<CompiledFunction>;

    /// The target triple code is generated for.
    fn triple(&self) -> String;

    /// A string naming every setting that affects the generated code
    /// (Cranelift version, ISA, flags). Part of cache keys and artifact headers.
    fn fingerprint(&self) -> String;
}
