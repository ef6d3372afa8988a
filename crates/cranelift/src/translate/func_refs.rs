//! Typed function references: `call_ref`, `return_call_ref`,
//! `ref.as_non_null`, `br_on_null` and `br_on_non_null`.
//!
//! A typed reference's static type is exact (validation guarantees that a
//! `(ref $t)` holds a function of type `$t`, and the runtime checks every
//! reference that enters from the host), so `call_ref` needs no signature
//! check: only the null check, then the record's code pointer and callee
//! context, as `call_indirect` loads them after its checks.

use super::FuncTranslator;
use super::env::funcref_flags;
use crate::trap_codes::to_clif;
use cranelift_codegen::ir::{InstBuilder, Value, types};
use kiln_environ::TrapCode;
use kiln_environ::vmoffsets::func_ref;

impl FuncTranslator<'_, '_> {
    /// Pops a function reference and returns its code pointer and callee
    /// context, trapping if it is null.
    fn ref_callee(&mut self) -> (Value, Value) {
        let fref = self.pop1();
        self.builder.ins().trapz(fref, to_clif(TrapCode::NullFunctionReference));
        let code = self.builder.ins().load(types::I64, funcref_flags(), fref, func_ref::WASM_CALL as i32);
        let callee = self.builder.ins().load(types::I64, funcref_flags(), fref, func_ref::VMCTX as i32);
        (code, callee)
    }

    /// `call_ref type_index`.
    pub(crate) fn translate_call_ref(&mut self, type_index: u32) {
        let (code, callee) = self.ref_callee();
        self.call_through(type_index, code, callee);
    }

    /// `return_call_ref type_index`.
    pub(crate) fn translate_return_call_ref(&mut self, type_index: u32) {
        let (code, callee) = self.ref_callee();
        self.return_call_through(type_index, code, callee);
    }

    /// `ref.as_non_null`: traps on null, leaves the reference.
    pub(crate) fn translate_ref_as_non_null(&mut self) {
        let r = self.pop1();
        self.builder.ins().trapz(r, to_clif(TrapCode::NullReference));
        self.push(r);
    }

    /// `br_on_null depth`: branches (without the reference) if it is null,
    /// otherwise continues with it.
    pub(crate) fn translate_br_on_null(&mut self, depth: u32) {
        let r = self.pop1();
        let (target, args) = self.conditional_branch(depth);
        let next = self.builder.create_block();
        self.builder.ins().brif(r, next, &[], target, &args);
        self.builder.seal_block(next);
        self.builder.switch_to_block(next);
        self.push(r);
    }

    /// `br_on_non_null depth`: branches with the reference if it is not
    /// null, otherwise continues without it.
    pub(crate) fn translate_br_on_non_null(&mut self, depth: u32) {
        // The target takes the reference as its last value.
        let (target, args) = self.conditional_branch(depth);
        let r = self.pop1();
        let next = self.builder.create_block();
        self.builder.ins().brif(r, target, &args, next, &[]);
        self.builder.seal_block(next);
        self.builder.switch_to_block(next);
    }
}
