//! GC instructions that need no heap: `ref.i31`, `i31.get_s/u`, `ref.eq`,
//! and the casts `ref.test`, `ref.cast`, `br_on_cast` and
//! `br_on_cast_fail` (see `kiln_environ::gc_ref` for the encoding).
//!
//! A cast tests the value against its target type only: the value's own
//! static type is already below the target's hierarchy (validated). Null
//! passes exactly when the target is nullable. Non-null values: in the
//! `any` hierarchy every value is an unboxed i31 so far (there are no
//! objects yet), so `any`, `eq` and `i31` admit it and struct and array
//! types do not; a function reference is tested against a concrete
//! function type by its record's type id (one compare for a final type,
//! else the `is_subtype` builtin when the ids differ); the abstract tops
//! admit everything non-null and the bottoms nothing.

use super::FuncTranslator;
use super::control::block_args;
use super::env::{funcref_flags, readonly};
use crate::trap_codes::to_clif;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value, types};
use kiln_environ::vmoffsets::{func_ref, vmctx_header};
use kiln_environ::{BuiltinFunctionIndex, TrapCode, WasmHeapType, WasmRefType, WasmResult};

impl FuncTranslator<'_, '_> {
    /// `ref.i31`: the low 31 bits of an `i32`, tagged.
    pub(crate) fn translate_ref_i31(&mut self) {
        let x = self.pop1();
        let shifted = self.builder.ins().ishl_imm_u(x, 1);
        let tagged = self.builder.ins().bor_imm_u(shifted, 1);
        let r = self.builder.ins().uextend(types::I64, tagged);
        self.push(r);
    }

    /// `i31.get_s` / `i31.get_u`: traps on null.
    pub(crate) fn translate_i31_get(&mut self, signed: bool) {
        let r = self.pop1();
        self.builder.ins().trapz(r, to_clif(TrapCode::NullI31Reference));
        let low = self.builder.ins().ireduce(types::I32, r);
        let v = if signed { self.builder.ins().sshr_imm_u(low, 1) } else { self.builder.ins().ushr_imm_u(low, 1) };
        self.push(v);
    }

    /// `ref.eq`: identity of the encodings (i31 values by value).
    pub(crate) fn translate_ref_eq(&mut self) {
        let (a, b) = self.pop2();
        let eq = self.builder.ins().icmp(IntCC::Equal, a, b);
        let v = self.builder.ins().uextend(types::I32, eq);
        self.push(v);
    }

    /// `ref.test` against `target`: 1 or 0 as an `i32`.
    pub(crate) fn translate_ref_test(&mut self, target: WasmRefType) {
        let r = self.pop1();
        let t = self.ref_matches(r, target);
        let v = self.builder.ins().uextend(types::I32, t);
        self.push(v);
    }

    /// `ref.cast` to `target`: traps `cast failure` unless the value is
    /// one of `target`, and leaves it.
    pub(crate) fn translate_ref_cast(&mut self, target: WasmRefType) {
        let r = self.pop1();
        let t = self.ref_matches(r, target);
        self.builder.ins().trapz(t, to_clif(TrapCode::CastFailure));
        self.push(r);
    }

    /// `br_on_cast depth _ target` (or `br_on_cast_fail` when `on_fail`):
    /// branches with the reference if it is (is not) one of `target`,
    /// otherwise continues with it.
    pub(crate) fn translate_br_on_cast(&mut self, depth: u32, target: WasmRefType, on_fail: bool) {
        let r = *self.stack.last().expect("validated: a reference operand");
        let t = self.ref_matches(r, target);
        // The target takes the reference as its last value.
        let (label, args) = self.conditional_branch(depth);
        let next = self.builder.create_block();
        if on_fail {
            self.builder.ins().brif(t, next, &[], label, &args);
        } else {
            self.builder.ins().brif(t, label, &args, next, &[]);
        }
        self.builder.seal_block(next);
        self.builder.switch_to_block(next);
    }

    /// An `I8`: whether reference `r` is a value of `target` (in module
    /// form; `r` is of a type in `target`'s hierarchy).
    fn ref_matches(&mut self, r: Value, target: WasmRefType) -> Value {
        use WasmHeapType as H;
        match target.heap {
            // Every value of the hierarchy (null only if nullable).
            H::Any | H::Eq | H::Func | H::Extern | H::Exn => {
                if target.nullable {
                    self.builder.ins().iconst(types::I8, 1)
                } else {
                    self.builder.ins().icmp_imm_u(IntCC::NotEqual, r, 0)
                }
            }
            H::I31 => {
                let bit = self.builder.ins().band_imm_u(r, 1);
                let i31 = self.builder.ins().icmp_imm_u(IntCC::NotEqual, bit, 0);
                if target.nullable {
                    let null = self.builder.ins().icmp_imm_u(IntCC::Equal, r, 0);
                    self.builder.ins().bor(i31, null)
                } else {
                    i31
                }
            }
            // Only null: the bottoms, and (no objects exist yet) struct
            // and array types.
            H::None
            | H::NoFunc
            | H::NoExtern
            | H::NoExn
            | H::Struct
            | H::Array
            | H::ConcreteStruct(_)
            | H::ConcreteArray(_) => {
                if target.nullable {
                    self.builder.ins().icmp_imm_u(IntCC::Equal, r, 0)
                } else {
                    self.builder.ins().iconst(types::I8, 0)
                }
            }
            H::ConcreteFunc(t) => self.func_ref_matches(r, t.as_u32(), target.nullable),
            // Never in a module's code.
            H::EngineFunc(_) | H::EngineStruct(_) | H::EngineArray(_) | H::RecLocal(_) => {
                self.builder.ins().iconst(types::I8, 0)
            }
        }
    }

    /// An `I8`: whether function reference `r` is null (and `nullable`) or
    /// a function whose type is module type `type_index` or below it.
    fn func_ref_matches(&mut self, r: Value, type_index: u32, nullable: bool) -> Value {
        let done = self.builder.create_block();
        let result = self.builder.append_block_param(done, types::I8);
        let non_null = self.builder.create_block();
        let if_null = self.builder.ins().iconst(types::I8, i64::from(nullable));
        self.builder.ins().brif(r, non_null, &[], done, &block_args(&[if_null]));
        self.builder.switch_to_block(non_null);
        self.builder.seal_block(non_null);
        let actual = self.builder.ins().load(types::I32, funcref_flags(), r, func_ref::TYPE_ID as i32);
        let expected = self.engine_type_id(type_index);
        let eq = self.builder.ins().icmp(IntCC::Equal, actual, expected);
        if self.module.types[type_index as usize].is_final {
            self.builder.ins().jump(done, &block_args(&[eq]));
        } else {
            let slow = self.builder.create_block();
            self.builder.set_cold_block(slow);
            self.builder.ins().brif(eq, done, &block_args(&[eq]), slow, &[]);
            self.builder.switch_to_block(slow);
            self.builder.seal_block(slow);
            let sub = self.call_builtin(BuiltinFunctionIndex::is_subtype, &[actual, expected]).expect("returns");
            let sub = self.builder.ins().icmp_imm_u(IntCC::NotEqual, sub, 0);
            self.builder.ins().jump(done, &block_args(&[sub]));
        }
        self.builder.switch_to_block(done);
        self.builder.seal_block(done);
        result
    }

    /// The engine type id of module type `type_index`, from the
    /// VMContext's type-id array (a hoistable read-only load).
    pub(crate) fn engine_type_id(&mut self, type_index: u32) -> Value {
        let ids = self.builder.ins().load(types::I64, readonly(), self.vmctx, vmctx_header::TYPE_IDS as i32);
        self.builder.ins().load(types::I32, readonly(), ids, (type_index * 4) as i32)
    }
}

/// The target of a cast instruction, in module form.
///
/// # Errors
///
/// As [`WasmRefType::from_wasmparser`].
pub(crate) fn cast_target(
    heap: wasmparser::HeapType,
    nullable: bool,
    types: &[kiln_environ::WasmSubType],
) -> WasmResult<WasmRefType> {
    let r = wasmparser::RefType::new(nullable, heap)
        .ok_or_else(|| kiln_environ::WasmError::Unsupported(format!("reference type {heap:?}")))?;
    Ok(WasmRefType::from_wasmparser(r, types)?)
}
