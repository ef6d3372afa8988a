//! How wasm types and signatures map to Cranelift.

use cranelift_codegen::ir::{AbiParam, ArgumentPurpose, Signature, Type, types};
use cranelift_codegen::isa::{CallConv, TargetIsa};
use kiln_environ::{FuncType, WasmValType};

/// The Cranelift type holding a wasm value of type `ty`. References are
/// pointers; `v128` is carried as `i8x16` and bitcast by SIMD operators.
pub fn clif_type(ty: WasmValType) -> Type {
    match ty {
        WasmValType::I32 => types::I32,
        WasmValType::I64 => types::I64,
        WasmValType::F32 => types::F32,
        WasmValType::F64 => types::F64,
        WasmValType::V128 => types::I8X16,
        WasmValType::Ref(_) => types::I64,
    }
}

/// The signature of a wasm function: `tail` calling convention,
/// `(callee_vmctx, caller_vmctx, params...) -> results`.
pub fn wasm_signature(_isa: &dyn TargetIsa, ty: &FuncType) -> Signature {
    let mut sig = Signature::new(CallConv::Tail);
    sig.params.push(AbiParam::special(types::I64, ArgumentPurpose::VMContext));
    sig.params.push(AbiParam::new(types::I64));
    sig.params.extend(ty.params().iter().map(|t| AbiParam::new(clif_type(*t))));
    sig.returns.extend(ty.results().iter().map(|t| AbiParam::new(clif_type(*t))));
    sig
}

/// The signature of array-call entry trampolines:
/// `extern "C" fn(callee_vmctx, caller_vmctx, values, wasm_call)`.
pub fn array_to_wasm_signature(isa: &dyn TargetIsa) -> Signature {
    let mut sig = Signature::new(isa.default_call_conv());
    for _ in 0..4 {
        sig.params.push(AbiParam::new(types::I64));
    }
    sig
}

/// The signature of a host function's array-call entry:
/// `extern "C" fn(callee_vmctx, caller_vmctx, values, len)`.
pub fn host_array_call_signature(isa: &dyn TargetIsa) -> Signature {
    let mut sig = Signature::new(isa.default_call_conv());
    for _ in 0..4 {
        sig.params.push(AbiParam::new(types::I64));
    }
    sig
}
