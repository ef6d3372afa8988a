//! The part of the translator that code outside the operator loop writes
//! through: the builder, the function's fixed values, and builtin calls.

use super::Regions;
use super::env::readonly;
use crate::builtins::{builtin_call_conv, builtin_signature};
use cranelift_codegen::ir::{self, InstBuilder, MemFlagsData, Value, types};
use cranelift_codegen::isa::TargetIsa;
use cranelift_frontend::{FunctionBuilder, Variable};
use kiln_environ::vmoffsets::vmctx_header;
use kiln_environ::{BuiltinFunctionIndex, WasmValType};
use std::collections::HashMap;

/// Borrows of the translator's fields that emit code, lent to a component
/// (interruption, see `interrupt/`) that keeps state of its own: the
/// operand and control stacks stay with the translator.
pub(crate) struct Emitter<'b, 'f> {
    /// The target.
    pub(crate) isa: &'b dyn TargetIsa,
    /// The function being built.
    pub(crate) builder: &'b mut FunctionBuilder<'f>,
    /// The callee VMContext parameter.
    pub(crate) vmctx: Value,
    /// The function's alias regions.
    pub(crate) regions: Regions,
    /// Wasm locals, params first.
    pub(crate) locals: &'b [(Variable, WasmValType)],
    /// Builtin signatures imported so far, by builtin index.
    pub(crate) builtin_sigs: &'b mut HashMap<u32, ir::SigRef>,
}

impl Emitter<'_, '_> {
    /// Flags for a load of a VMContext field that never changes, as in
    /// `readonly`, but not hoistable when the current block is cold (an
    /// interrupt check's slow side, inside a hot loop): a hoisted load
    /// would be moved out of the loop and hold a callee-saved register
    /// across all of it, pushing the loop's own values onto the stack.
    pub(crate) fn readonly_here(&self) -> MemFlagsData {
        let cold = self.builder.current_block().is_some_and(|b| self.builder.func.layout.is_cold(b));
        if cold { MemFlagsData::trusted().with_readonly() } else { readonly() }
    }

    /// The store context, loaded from the VMContext.
    pub(crate) fn store_context(&mut self) -> Value {
        let flags = self.readonly_here();
        self.builder.ins().load(types::I64, flags, self.vmctx, vmctx_header::STORE_CONTEXT as i32)
    }

    /// Calls builtin `index` with exactly `args` (builtins that take the
    /// VMContext get it in `args`). Nothing else: publishing the fuel
    /// counter first and polling epochs afterwards are the caller's.
    pub(crate) fn call_builtin(&mut self, index: BuiltinFunctionIndex, args: &[Value]) -> Option<Value> {
        let (sig, f) = self.builtin_target(index);
        let call = self.builder.ins().call_indirect(sig, f, args);
        self.builder.inst_results(call).first().copied()
    }

    /// The signature of builtin `index` and its address, loaded from the
    /// VMContext's builtin array.
    pub(crate) fn builtin_target(&mut self, index: BuiltinFunctionIndex) -> (ir::SigRef, Value) {
        let sig = match self.builtin_sigs.get(&index.index()) {
            Some(s) => *s,
            None => {
                let s = self.builder.import_signature(builtin_signature(index, builtin_call_conv(self.isa, index)));
                self.builtin_sigs.insert(index.index(), s);
                s
            }
        };
        // On a cold path, the builtin's address must stay there.
        let flags = self.readonly_here();
        let array = self.builder.ins().load(types::I64, flags, self.vmctx, vmctx_header::BUILTINS as i32);
        let f = self.builder.ins().load(types::I64, flags, array, (index.index() * 8) as i32);
        (sig, f)
    }
}
