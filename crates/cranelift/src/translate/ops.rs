//! The operator dispatch: one arm per wasm operator.

use super::FuncTranslator;
use super::gc;
use super::memory::LoadKind;
use crate::trap_codes::to_clif;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{self, InstBuilder, MemFlagsData, Value, types::*};
use kiln_environ::*;
use wasmparser::Operator;

impl FuncTranslator<'_, '_> {
    fn unop(&mut self, f: impl FnOnce(&mut cranelift_frontend::FunctionBuilder<'_>, Value) -> Value) {
        let a = self.pop1();
        let v = f(&mut self.builder, a);
        self.push(v);
    }

    fn binop(&mut self, f: impl FnOnce(&mut cranelift_frontend::FunctionBuilder<'_>, Value, Value) -> Value) {
        let (a, b) = self.pop2();
        let v = f(&mut self.builder, a, b);
        self.push(v);
    }

    /// `i64.add128`/`i64.sub128`: pops two (low, high) pairs, pushes the
    /// low and high halves of `f` applied to the 128-bit values.
    fn wide_binop(&mut self, f: impl FnOnce(&mut cranelift_frontend::FunctionBuilder<'_>, Value, Value) -> Value) {
        let (y_lo, y_hi) = self.pop2();
        let (x_lo, x_hi) = self.pop2();
        let x = self.builder.ins().iconcat(x_lo, x_hi);
        let y = self.builder.ins().iconcat(y_lo, y_hi);
        let r = f(&mut self.builder, x, y);
        let (lo, hi) = self.builder.ins().isplit(r);
        self.push(lo);
        self.push(hi);
    }

    /// `i64.mul_wide_s`/`_u`: the full 128-bit product of two i64s, pushed
    /// as its low and high halves.
    fn mul_wide(&mut self, signed: bool) {
        let (x, y) = self.pop2();
        let (x, y) = if signed {
            (self.builder.ins().sextend(I128, x), self.builder.ins().sextend(I128, y))
        } else {
            (self.builder.ins().uextend(I128, x), self.builder.ins().uextend(I128, y))
        };
        let product = self.builder.ins().imul(x, y);
        let (lo, hi) = self.builder.ins().isplit(product);
        self.push(lo);
        self.push(hi);
    }

    fn icmp(&mut self, cc: IntCC) {
        let (a, b) = self.pop2();
        let c = self.builder.ins().icmp(cc, a, b);
        let v = self.builder.ins().uextend(I32, c);
        self.push(v);
    }

    fn fcmp(&mut self, cc: FloatCC) {
        let (a, b) = self.pop2();
        let c = self.builder.ins().fcmp(cc, a, b);
        let v = self.builder.ins().uextend(I32, c);
        self.push(v);
    }

    fn eqz(&mut self) {
        let a = self.pop1();
        let c = self.builder.ins().icmp_imm_u(IntCC::Equal, a, 0);
        let v = self.builder.ins().uextend(I32, c);
        self.push(v);
    }

    fn bitcast(&mut self, ty: ir::Type) {
        let a = self.pop1();
        let v = self.builder.ins().bitcast(ty, MemFlagsData::new().with_endianness(ir::Endianness::Little), a);
        self.push(v);
    }

    /// Translates one reachable operator.
    pub(crate) fn translate_operator(&mut self, op: &Operator<'_>, pos: u64) -> WasmResult<()> {
        use Operator as O;
        match op {
            // Control.
            O::Unreachable => {
                self.hook(|i, e| i.before_exit(e));
                self.builder.ins().trap(to_clif(TrapCode::UnreachableCodeReached));
                self.reachable = false;
            }
            O::Nop => {}
            O::Block { blockty } => self.translate_block(*blockty, pos)?,
            O::Loop { blockty } => self.translate_loop(*blockty, pos)?,
            O::If { blockty } => self.translate_if(*blockty, pos)?,
            O::Else => self.translate_else()?,
            O::End => self.translate_end()?,
            O::Br { relative_depth } => self.translate_br(*relative_depth),
            O::BrIf { relative_depth } => self.translate_br_if(*relative_depth, pos),
            O::BrTable { targets } => self.translate_br_table(targets)?,
            O::Return => self.translate_return(),
            O::TryTable { try_table } => self.translate_try_table(try_table, pos)?,
            O::Throw { tag_index } => self.translate_throw(*tag_index),
            O::ThrowRef => self.translate_throw_ref(),
            O::Try { blockty } => self.translate_legacy_try(*blockty, pos)?,
            O::Catch { tag_index } => self.translate_legacy_catch(*tag_index),
            O::CatchAll => self.translate_legacy_catch_all(),
            O::Rethrow { relative_depth } => self.translate_rethrow(*relative_depth),
            O::Delegate { relative_depth } => self.translate_legacy_delegate(*relative_depth)?,
            O::Call { function_index } => self.translate_call(*function_index),
            O::CallIndirect { type_index, table_index } => self.translate_call_indirect(*type_index, *table_index),
            O::ReturnCall { function_index } => self.translate_return_call(*function_index),
            O::ReturnCallIndirect { type_index, table_index } => {
                self.translate_return_call_indirect(*type_index, *table_index)
            }

            // Parametric.
            O::Drop => {
                self.pop1();
            }
            O::Select | O::TypedSelect { .. } | O::TypedSelectMulti { .. } => {
                let (a, b, c) = self.pop3();
                let v = self.builder.ins().select(c, a, b);
                self.push(v);
            }

            // Variables.
            O::LocalGet { local_index } => {
                let v = self.builder.use_var(self.locals[*local_index as usize].0);
                self.push(v);
            }
            O::LocalSet { local_index } => {
                let v = self.pop1();
                self.builder.def_var(self.locals[*local_index as usize].0, v);
            }
            O::LocalTee { local_index } => {
                let v = *self.stack.last().expect("validated");
                self.builder.def_var(self.locals[*local_index as usize].0, v);
            }
            O::GlobalGet { global_index } => self.global_get(*global_index),
            O::GlobalSet { global_index } => self.global_set(*global_index),

            // Tables and references.
            O::TableGet { table } => self.table_get(*table),
            O::TableSet { table } => self.table_set(*table),
            O::TableSize { table } => self.table_size(*table),
            O::TableGrow { table } => self.translate_table_grow(*table),
            O::TableFill { table } => self.translate_table_fill(*table),
            O::TableCopy { dst_table, src_table } => self.translate_table_copy(*dst_table, *src_table),
            O::TableInit { elem_index, table } => self.translate_table_init(*elem_index, *table),
            O::ElemDrop { elem_index } => self.translate_elem_drop(*elem_index),
            O::RefNull { .. } => {
                let v = self.builder.ins().iconst(I64, 0);
                self.push(v);
            }
            O::RefIsNull => self.eqz(),
            O::RefAsNonNull => self.translate_ref_as_non_null(),
            O::CallRef { type_index } => self.translate_call_ref(*type_index),
            O::ReturnCallRef { type_index } => self.translate_return_call_ref(*type_index),
            O::BrOnNull { relative_depth } => self.translate_br_on_null(*relative_depth),
            O::BrOnNonNull { relative_depth } => self.translate_br_on_non_null(*relative_depth),
            O::RefFunc { function_index } => self.translate_ref_func(*function_index),

            // GC without a heap: i31, identity and casts.
            O::RefI31 => self.translate_ref_i31(),
            O::AnyConvertExtern => self.translate_any_convert_extern(),
            O::ExternConvertAny => self.translate_extern_convert_any(),
            O::StructNew { struct_type_index } => self.translate_struct_new(*struct_type_index, false),
            O::StructNewDefault { struct_type_index } => self.translate_struct_new(*struct_type_index, true),
            O::StructGet { struct_type_index, field_index } | O::StructGetU { struct_type_index, field_index } => {
                self.translate_struct_get(*struct_type_index, *field_index, false)
            }
            O::StructGetS { struct_type_index, field_index } => {
                self.translate_struct_get(*struct_type_index, *field_index, true)
            }
            O::StructSet { struct_type_index, field_index } => {
                self.translate_struct_set(*struct_type_index, *field_index)
            }
            O::ArrayNew { array_type_index } => self.translate_array_new(*array_type_index, false),
            O::ArrayNewDefault { array_type_index } => self.translate_array_new(*array_type_index, true),
            O::ArrayNewFixed { array_type_index, array_size } => {
                self.translate_array_new_fixed(*array_type_index, *array_size)
            }
            O::ArrayGet { array_type_index } | O::ArrayGetU { array_type_index } => {
                self.translate_array_get(*array_type_index, false)
            }
            O::ArrayGetS { array_type_index } => self.translate_array_get(*array_type_index, true),
            O::ArraySet { array_type_index } => self.translate_array_set(*array_type_index),
            O::ArrayLen => self.translate_array_len(),
            O::ArrayNewData { array_type_index, array_data_index } => {
                self.translate_array_new_segment(*array_type_index, *array_data_index, false)
            }
            O::ArrayNewElem { array_type_index, array_elem_index } => {
                self.translate_array_new_segment(*array_type_index, *array_elem_index, true)
            }
            O::ArrayInitData { array_type_index, array_data_index } => {
                self.translate_array_init_segment(*array_type_index, *array_data_index, false)
            }
            O::ArrayInitElem { array_type_index, array_elem_index } => {
                self.translate_array_init_segment(*array_type_index, *array_elem_index, true)
            }
            O::ArrayFill { array_type_index } => self.translate_array_fill(*array_type_index),
            O::ArrayCopy { array_type_index_dst, array_type_index_src } => {
                self.translate_array_copy(*array_type_index_dst, *array_type_index_src)
            }
            O::I31GetS => self.translate_i31_get(true),
            O::I31GetU => self.translate_i31_get(false),
            O::RefEq => self.translate_ref_eq(),
            O::RefTestNonNull { hty } | O::RefTestNullable { hty } => {
                let nullable = matches!(op, O::RefTestNullable { .. });
                self.translate_ref_test(gc::cast_target(*hty, nullable, &self.module.types)?)
            }
            O::RefCastNonNull { hty } | O::RefCastNullable { hty } => {
                let nullable = matches!(op, O::RefCastNullable { .. });
                self.translate_ref_cast(gc::cast_target(*hty, nullable, &self.module.types)?)
            }
            O::BrOnCast { relative_depth, to_ref_type, .. } => {
                let target = WasmRefType::from_wasmparser(*to_ref_type, self.module.types.as_slice())?;
                self.translate_br_on_cast(*relative_depth, target, false)
            }
            O::BrOnCastFail { relative_depth, to_ref_type, .. } => {
                let target = WasmRefType::from_wasmparser(*to_ref_type, self.module.types.as_slice())?;
                self.translate_br_on_cast(*relative_depth, target, true)
            }

            // Memory.
            O::I32Load { memarg } => self.translate_load(memarg, LoadKind::Plain(I32)),
            O::I64Load { memarg } => self.translate_load(memarg, LoadKind::Plain(I64)),
            O::F32Load { memarg } => self.translate_load(memarg, LoadKind::Plain(F32)),
            O::F64Load { memarg } => self.translate_load(memarg, LoadKind::Plain(F64)),
            O::I32Load8S { memarg } => self.translate_load(memarg, LoadKind::Sext8(I32)),
            O::I32Load8U { memarg } => self.translate_load(memarg, LoadKind::Zext8(I32)),
            O::I32Load16S { memarg } => self.translate_load(memarg, LoadKind::Sext16(I32)),
            O::I32Load16U { memarg } => self.translate_load(memarg, LoadKind::Zext16(I32)),
            O::I64Load8S { memarg } => self.translate_load(memarg, LoadKind::Sext8(I64)),
            O::I64Load8U { memarg } => self.translate_load(memarg, LoadKind::Zext8(I64)),
            O::I64Load16S { memarg } => self.translate_load(memarg, LoadKind::Sext16(I64)),
            O::I64Load16U { memarg } => self.translate_load(memarg, LoadKind::Zext16(I64)),
            O::I64Load32S { memarg } => self.translate_load(memarg, LoadKind::Sext32),
            O::I64Load32U { memarg } => self.translate_load(memarg, LoadKind::Zext32),
            O::I32Store { memarg } | O::F32Store { memarg } => self.translate_store(memarg, 4),
            O::I64Store { memarg } | O::F64Store { memarg } => self.translate_store(memarg, 8),
            O::I32Store8 { memarg } | O::I64Store8 { memarg } => self.translate_store(memarg, 1),
            O::I32Store16 { memarg } | O::I64Store16 { memarg } => self.translate_store(memarg, 2),
            O::I64Store32 { memarg } => self.translate_store(memarg, 4),
            O::MemorySize { mem } => self.translate_memory_size(*mem),
            O::MemoryGrow { mem } => self.translate_memory_grow(*mem),
            O::MemoryFill { mem } => self.translate_memory_fill(*mem),
            O::MemoryCopy { dst_mem, src_mem } => self.translate_memory_copy(*dst_mem, *src_mem),
            O::MemoryInit { data_index, mem } => self.translate_memory_init(*data_index, *mem),
            O::DataDrop { data_index } => self.translate_data_drop(*data_index),

            // Constants.
            O::I32Const { value } => {
                let v = self.builder.ins().iconst(I32, i64::from(*value));
                self.push(v);
            }
            O::I64Const { value } => {
                let v = self.builder.ins().iconst(I64, *value);
                self.push(v);
            }
            O::F32Const { value } => {
                let v = self.builder.ins().f32const(ir::immediates::Ieee32::with_bits(value.bits()));
                self.push(v);
            }
            O::F64Const { value } => {
                let v = self.builder.ins().f64const(ir::immediates::Ieee64::with_bits(value.bits()));
                self.push(v);
            }

            // Integer comparisons.
            O::I32Eqz | O::I64Eqz => self.eqz(),
            O::I32Eq | O::I64Eq => self.icmp(IntCC::Equal),
            O::I32Ne | O::I64Ne => self.icmp(IntCC::NotEqual),
            O::I32LtS | O::I64LtS => self.icmp(IntCC::SignedLessThan),
            O::I32LtU | O::I64LtU => self.icmp(IntCC::UnsignedLessThan),
            O::I32GtS | O::I64GtS => self.icmp(IntCC::SignedGreaterThan),
            O::I32GtU | O::I64GtU => self.icmp(IntCC::UnsignedGreaterThan),
            O::I32LeS | O::I64LeS => self.icmp(IntCC::SignedLessThanOrEqual),
            O::I32LeU | O::I64LeU => self.icmp(IntCC::UnsignedLessThanOrEqual),
            O::I32GeS | O::I64GeS => self.icmp(IntCC::SignedGreaterThanOrEqual),
            O::I32GeU | O::I64GeU => self.icmp(IntCC::UnsignedGreaterThanOrEqual),

            // Float comparisons.
            O::F32Eq | O::F64Eq => self.fcmp(FloatCC::Equal),
            O::F32Ne | O::F64Ne => self.fcmp(FloatCC::NotEqual),
            O::F32Lt | O::F64Lt => self.fcmp(FloatCC::LessThan),
            O::F32Gt | O::F64Gt => self.fcmp(FloatCC::GreaterThan),
            O::F32Le | O::F64Le => self.fcmp(FloatCC::LessThanOrEqual),
            O::F32Ge | O::F64Ge => self.fcmp(FloatCC::GreaterThanOrEqual),

            // Integer arithmetic.
            O::I32Clz | O::I64Clz => self.unop(|b, a| b.ins().clz(a)),
            O::I32Ctz | O::I64Ctz => self.unop(|b, a| b.ins().ctz(a)),
            O::I32Popcnt | O::I64Popcnt => self.unop(|b, a| b.ins().popcnt(a)),
            O::I32Add | O::I64Add => self.binop(|b, x, y| b.ins().iadd(x, y)),
            O::I32Sub | O::I64Sub => self.binop(|b, x, y| b.ins().isub(x, y)),
            O::I32Mul | O::I64Mul => self.binop(|b, x, y| b.ins().imul(x, y)),
            O::I32DivS | O::I64DivS => self.binop(|b, x, y| b.ins().sdiv(x, y)),
            O::I32DivU | O::I64DivU => self.binop(|b, x, y| b.ins().udiv(x, y)),
            O::I32RemS | O::I64RemS => self.binop(|b, x, y| b.ins().srem(x, y)),
            O::I32RemU | O::I64RemU => self.binop(|b, x, y| b.ins().urem(x, y)),
            O::I32And | O::I64And => self.binop(|b, x, y| b.ins().band(x, y)),
            O::I32Or | O::I64Or => self.binop(|b, x, y| b.ins().bor(x, y)),
            O::I32Xor | O::I64Xor => self.binop(|b, x, y| b.ins().bxor(x, y)),
            O::I32Shl | O::I64Shl => self.binop(|b, x, y| b.ins().ishl(x, y)),
            O::I32ShrS | O::I64ShrS => self.binop(|b, x, y| b.ins().sshr(x, y)),
            O::I32ShrU | O::I64ShrU => self.binop(|b, x, y| b.ins().ushr(x, y)),
            O::I32Rotl | O::I64Rotl => self.binop(|b, x, y| b.ins().rotl(x, y)),
            O::I32Rotr | O::I64Rotr => self.binop(|b, x, y| b.ins().rotr(x, y)),

            // Wide arithmetic: 128-bit values as (low, high) pairs of i64,
            // computed in Cranelift's i128 so each is one native
            // add/adc, sub/sbb or widening multiply.
            O::I64Add128 => self.wide_binop(|b, x, y| b.ins().iadd(x, y)),
            O::I64Sub128 => self.wide_binop(|b, x, y| b.ins().isub(x, y)),
            O::I64MulWideS => self.mul_wide(true),
            O::I64MulWideU => self.mul_wide(false),

            // Float arithmetic.
            O::F32Abs | O::F64Abs => self.unop(|b, a| b.ins().fabs(a)),
            O::F32Neg | O::F64Neg => self.unop(|b, a| b.ins().fneg(a)),
            O::F32Ceil | O::F64Ceil => self.unop(|b, a| b.ins().ceil(a)),
            O::F32Floor | O::F64Floor => self.unop(|b, a| b.ins().floor(a)),
            O::F32Trunc | O::F64Trunc => self.unop(|b, a| b.ins().trunc(a)),
            O::F32Nearest | O::F64Nearest => self.unop(|b, a| b.ins().nearest(a)),
            O::F32Sqrt | O::F64Sqrt => self.unop(|b, a| b.ins().sqrt(a)),
            O::F32Add | O::F64Add => self.binop(|b, x, y| b.ins().fadd(x, y)),
            O::F32Sub | O::F64Sub => self.binop(|b, x, y| b.ins().fsub(x, y)),
            O::F32Mul | O::F64Mul => self.binop(|b, x, y| b.ins().fmul(x, y)),
            O::F32Div | O::F64Div => self.binop(|b, x, y| b.ins().fdiv(x, y)),
            O::F32Min | O::F64Min => self.binop(|b, x, y| b.ins().fmin(x, y)),
            O::F32Max | O::F64Max => self.binop(|b, x, y| b.ins().fmax(x, y)),
            O::F32Copysign | O::F64Copysign => self.binop(|b, x, y| b.ins().fcopysign(x, y)),

            // Conversions.
            O::I32WrapI64 => self.unop(|b, a| b.ins().ireduce(I32, a)),
            O::I64ExtendI32S => self.unop(|b, a| b.ins().sextend(I64, a)),
            O::I64ExtendI32U => self.unop(|b, a| b.ins().uextend(I64, a)),
            O::I32TruncF32S | O::I32TruncF64S => self.unop(|b, a| b.ins().fcvt_to_sint(I32, a)),
            O::I32TruncF32U | O::I32TruncF64U => self.unop(|b, a| b.ins().fcvt_to_uint(I32, a)),
            O::I64TruncF32S | O::I64TruncF64S => self.unop(|b, a| b.ins().fcvt_to_sint(I64, a)),
            O::I64TruncF32U | O::I64TruncF64U => self.unop(|b, a| b.ins().fcvt_to_uint(I64, a)),
            O::I32TruncSatF32S | O::I32TruncSatF64S => self.unop(|b, a| b.ins().fcvt_to_sint_sat(I32, a)),
            O::I32TruncSatF32U | O::I32TruncSatF64U => self.unop(|b, a| b.ins().fcvt_to_uint_sat(I32, a)),
            O::I64TruncSatF32S | O::I64TruncSatF64S => self.unop(|b, a| b.ins().fcvt_to_sint_sat(I64, a)),
            O::I64TruncSatF32U | O::I64TruncSatF64U => self.unop(|b, a| b.ins().fcvt_to_uint_sat(I64, a)),
            O::F32ConvertI32S | O::F32ConvertI64S => self.unop(|b, a| b.ins().fcvt_from_sint(F32, a)),
            O::F32ConvertI32U | O::F32ConvertI64U => self.unop(|b, a| b.ins().fcvt_from_uint(F32, a)),
            O::F64ConvertI32S | O::F64ConvertI64S => self.unop(|b, a| b.ins().fcvt_from_sint(F64, a)),
            O::F64ConvertI32U | O::F64ConvertI64U => self.unop(|b, a| b.ins().fcvt_from_uint(F64, a)),
            O::F32DemoteF64 => self.unop(|b, a| b.ins().fdemote(F32, a)),
            O::F64PromoteF32 => self.unop(|b, a| b.ins().fpromote(F64, a)),
            O::I32ReinterpretF32 => self.bitcast(I32),
            O::I64ReinterpretF64 => self.bitcast(I64),
            O::F32ReinterpretI32 => self.bitcast(F32),
            O::F64ReinterpretI64 => self.bitcast(F64),

            // Sign extension.
            O::I32Extend8S => self.unop(|b, a| {
                let n = b.ins().ireduce(I8, a);
                b.ins().sextend(I32, n)
            }),
            O::I32Extend16S => self.unop(|b, a| {
                let n = b.ins().ireduce(I16, a);
                b.ins().sextend(I32, n)
            }),
            O::I64Extend8S => self.unop(|b, a| {
                let n = b.ins().ireduce(I8, a);
                b.ins().sextend(I64, n)
            }),
            O::I64Extend16S => self.unop(|b, a| {
                let n = b.ins().ireduce(I16, a);
                b.ins().sextend(I64, n)
            }),
            O::I64Extend32S => self.unop(|b, a| {
                let n = b.ins().ireduce(I32, a);
                b.ins().sextend(I64, n)
            }),

            other => {
                if let Some(r) = self.translate_simd_operator(other) {
                    return r;
                }
                if let Some(r) = self.translate_atomic_operator(other) {
                    return r;
                }
                return Err(WasmError::Unsupported(format!("operator {other:?} (at offset {pos:#x})")));
            }
        }
        Ok(())
    }
}
