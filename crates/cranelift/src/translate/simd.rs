//! The fixed-width SIMD operators (`v128`).
//!
//! A `v128` travels through locals, block parameters and the value stack as
//! `i8x16`; each operator bitcasts its operands to the lane shape it works
//! on and bitcasts its result back.
//!
//! Several operators are built from the same instruction shapes Cranelift's
//! backends pattern-match into single machine instructions (for example
//! `iadd_pairwise` of widened halves, or `snarrow` of a saturating
//! conversion with a zero vector), so the shapes below are deliberate.

use super::FuncTranslator;
use super::memory::{LoadKind, heap_flags};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{self, ConstantData, InstBuilder, MemFlagsData, Type, Value, types::*};
use cranelift_frontend::FunctionBuilder;
use kiln_environ::WasmResult;
use wasmparser::{MemArg, Operator};

/// Flags for bitcasts between vector shapes: lane order is little-endian,
/// as in wasm.
fn lane_flags() -> MemFlagsData {
    MemFlagsData::new().with_endianness(ir::Endianness::Little)
}

/// Which half of a vector a widening operator reads.
#[derive(Clone, Copy)]
enum Half {
    Low,
    High,
}

/// Widens the `half` of `v` to lanes of twice the width, sign- or
/// zero-extending.
fn widen(b: &mut FunctionBuilder<'_>, v: Value, half: Half, signed: bool) -> Value {
    match (half, signed) {
        (Half::Low, true) => b.ins().swiden_low(v),
        (Half::High, true) => b.ins().swiden_high(v),
        (Half::Low, false) => b.ins().uwiden_low(v),
        (Half::High, false) => b.ins().uwiden_high(v),
    }
}

impl FuncTranslator<'_, '_> {
    /// Translates `op` if it is a SIMD operator; `None` otherwise.
    pub(crate) fn translate_simd_operator(&mut self, op: &Operator<'_>) -> Option<WasmResult<()>> {
        use Operator as O;
        match op {
            // Memory.
            O::V128Load { memarg } => self.translate_load(memarg, LoadKind::Plain(I8X16)),
            O::V128Store { memarg } => self.translate_store(memarg, 16),
            O::V128Load8x8S { memarg } => self.load_extend(memarg, |b, f, a, o| b.ins().sload8x8(f, a, o)),
            O::V128Load8x8U { memarg } => self.load_extend(memarg, |b, f, a, o| b.ins().uload8x8(f, a, o)),
            O::V128Load16x4S { memarg } => self.load_extend(memarg, |b, f, a, o| b.ins().sload16x4(f, a, o)),
            O::V128Load16x4U { memarg } => self.load_extend(memarg, |b, f, a, o| b.ins().uload16x4(f, a, o)),
            O::V128Load32x2S { memarg } => self.load_extend(memarg, |b, f, a, o| b.ins().sload32x2(f, a, o)),
            O::V128Load32x2U { memarg } => self.load_extend(memarg, |b, f, a, o| b.ins().uload32x2(f, a, o)),
            O::V128Load8Splat { memarg } => self.load_splat(memarg, I8X16),
            O::V128Load16Splat { memarg } => self.load_splat(memarg, I16X8),
            O::V128Load32Splat { memarg } => self.load_splat(memarg, I32X4),
            O::V128Load64Splat { memarg } => self.load_splat(memarg, I64X2),
            O::V128Load32Zero { memarg } => self.load_zero(memarg, I32X4),
            O::V128Load64Zero { memarg } => self.load_zero(memarg, I64X2),
            O::V128Load8Lane { memarg, lane } => self.load_lane(memarg, I8X16, *lane),
            O::V128Load16Lane { memarg, lane } => self.load_lane(memarg, I16X8, *lane),
            O::V128Load32Lane { memarg, lane } => self.load_lane(memarg, I32X4, *lane),
            O::V128Load64Lane { memarg, lane } => self.load_lane(memarg, I64X2, *lane),
            O::V128Store8Lane { memarg, lane } => self.store_lane(memarg, I8X16, *lane),
            O::V128Store16Lane { memarg, lane } => self.store_lane(memarg, I16X8, *lane),
            O::V128Store32Lane { memarg, lane } => self.store_lane(memarg, I32X4, *lane),
            O::V128Store64Lane { memarg, lane } => self.store_lane(memarg, I64X2, *lane),

            // Constants and lane shuffling.
            O::V128Const { value } => {
                let v = self.vconst(I8X16, value.bytes());
                self.push(v);
            }
            O::I8x16Shuffle { lanes } => {
                let (a, b) = self.pop2_as(I8X16);
                let mask = self.builder.func.dfg.immediates.push(ConstantData::from(&lanes[..]));
                let v = self.builder.ins().shuffle(a, b, mask);
                self.push(v);
            }
            O::I8x16Swizzle => self.v_binop(I8X16, |b, x, y| b.ins().swizzle(x, y)),

            // Lane access.
            O::I8x16ExtractLaneS { lane } => self.extract_lane(I8X16, *lane, Some(true)),
            O::I8x16ExtractLaneU { lane } => self.extract_lane(I8X16, *lane, Some(false)),
            O::I16x8ExtractLaneS { lane } => self.extract_lane(I16X8, *lane, Some(true)),
            O::I16x8ExtractLaneU { lane } => self.extract_lane(I16X8, *lane, Some(false)),
            O::I32x4ExtractLane { lane } => self.extract_lane(I32X4, *lane, None),
            O::I64x2ExtractLane { lane } => self.extract_lane(I64X2, *lane, None),
            O::F32x4ExtractLane { lane } => self.extract_lane(F32X4, *lane, None),
            O::F64x2ExtractLane { lane } => self.extract_lane(F64X2, *lane, None),
            O::I8x16ReplaceLane { lane } => self.replace_lane(I8X16, *lane),
            O::I16x8ReplaceLane { lane } => self.replace_lane(I16X8, *lane),
            O::I32x4ReplaceLane { lane } => self.replace_lane(I32X4, *lane),
            O::I64x2ReplaceLane { lane } => self.replace_lane(I64X2, *lane),
            O::F32x4ReplaceLane { lane } => self.replace_lane(F32X4, *lane),
            O::F64x2ReplaceLane { lane } => self.replace_lane(F64X2, *lane),
            O::I8x16Splat => self.splat(I8X16),
            O::I16x8Splat => self.splat(I16X8),
            O::I32x4Splat => self.splat(I32X4),
            O::I64x2Splat => self.splat(I64X2),
            O::F32x4Splat => self.splat(F32X4),
            O::F64x2Splat => self.splat(F64X2),

            // Integer comparisons.
            O::I8x16Eq => self.v_icmp(I8X16, IntCC::Equal),
            O::I8x16Ne => self.v_icmp(I8X16, IntCC::NotEqual),
            O::I8x16LtS => self.v_icmp(I8X16, IntCC::SignedLessThan),
            O::I8x16LtU => self.v_icmp(I8X16, IntCC::UnsignedLessThan),
            O::I8x16GtS => self.v_icmp(I8X16, IntCC::SignedGreaterThan),
            O::I8x16GtU => self.v_icmp(I8X16, IntCC::UnsignedGreaterThan),
            O::I8x16LeS => self.v_icmp(I8X16, IntCC::SignedLessThanOrEqual),
            O::I8x16LeU => self.v_icmp(I8X16, IntCC::UnsignedLessThanOrEqual),
            O::I8x16GeS => self.v_icmp(I8X16, IntCC::SignedGreaterThanOrEqual),
            O::I8x16GeU => self.v_icmp(I8X16, IntCC::UnsignedGreaterThanOrEqual),
            O::I16x8Eq => self.v_icmp(I16X8, IntCC::Equal),
            O::I16x8Ne => self.v_icmp(I16X8, IntCC::NotEqual),
            O::I16x8LtS => self.v_icmp(I16X8, IntCC::SignedLessThan),
            O::I16x8LtU => self.v_icmp(I16X8, IntCC::UnsignedLessThan),
            O::I16x8GtS => self.v_icmp(I16X8, IntCC::SignedGreaterThan),
            O::I16x8GtU => self.v_icmp(I16X8, IntCC::UnsignedGreaterThan),
            O::I16x8LeS => self.v_icmp(I16X8, IntCC::SignedLessThanOrEqual),
            O::I16x8LeU => self.v_icmp(I16X8, IntCC::UnsignedLessThanOrEqual),
            O::I16x8GeS => self.v_icmp(I16X8, IntCC::SignedGreaterThanOrEqual),
            O::I16x8GeU => self.v_icmp(I16X8, IntCC::UnsignedGreaterThanOrEqual),
            O::I32x4Eq => self.v_icmp(I32X4, IntCC::Equal),
            O::I32x4Ne => self.v_icmp(I32X4, IntCC::NotEqual),
            O::I32x4LtS => self.v_icmp(I32X4, IntCC::SignedLessThan),
            O::I32x4LtU => self.v_icmp(I32X4, IntCC::UnsignedLessThan),
            O::I32x4GtS => self.v_icmp(I32X4, IntCC::SignedGreaterThan),
            O::I32x4GtU => self.v_icmp(I32X4, IntCC::UnsignedGreaterThan),
            O::I32x4LeS => self.v_icmp(I32X4, IntCC::SignedLessThanOrEqual),
            O::I32x4LeU => self.v_icmp(I32X4, IntCC::UnsignedLessThanOrEqual),
            O::I32x4GeS => self.v_icmp(I32X4, IntCC::SignedGreaterThanOrEqual),
            O::I32x4GeU => self.v_icmp(I32X4, IntCC::UnsignedGreaterThanOrEqual),
            O::I64x2Eq => self.v_icmp(I64X2, IntCC::Equal),
            O::I64x2Ne => self.v_icmp(I64X2, IntCC::NotEqual),
            O::I64x2LtS => self.v_icmp(I64X2, IntCC::SignedLessThan),
            O::I64x2GtS => self.v_icmp(I64X2, IntCC::SignedGreaterThan),
            O::I64x2LeS => self.v_icmp(I64X2, IntCC::SignedLessThanOrEqual),
            O::I64x2GeS => self.v_icmp(I64X2, IntCC::SignedGreaterThanOrEqual),

            // Float comparisons (`ne` is true for unordered operands).
            O::F32x4Eq => self.v_fcmp(F32X4, FloatCC::Equal),
            O::F32x4Ne => self.v_fcmp(F32X4, FloatCC::NotEqual),
            O::F32x4Lt => self.v_fcmp(F32X4, FloatCC::LessThan),
            O::F32x4Gt => self.v_fcmp(F32X4, FloatCC::GreaterThan),
            O::F32x4Le => self.v_fcmp(F32X4, FloatCC::LessThanOrEqual),
            O::F32x4Ge => self.v_fcmp(F32X4, FloatCC::GreaterThanOrEqual),
            O::F64x2Eq => self.v_fcmp(F64X2, FloatCC::Equal),
            O::F64x2Ne => self.v_fcmp(F64X2, FloatCC::NotEqual),
            O::F64x2Lt => self.v_fcmp(F64X2, FloatCC::LessThan),
            O::F64x2Gt => self.v_fcmp(F64X2, FloatCC::GreaterThan),
            O::F64x2Le => self.v_fcmp(F64X2, FloatCC::LessThanOrEqual),
            O::F64x2Ge => self.v_fcmp(F64X2, FloatCC::GreaterThanOrEqual),

            // Bitwise.
            O::V128Not => self.v_unop(I8X16, |b, x| b.ins().bnot(x)),
            O::V128And => self.v_binop(I8X16, |b, x, y| b.ins().band(x, y)),
            O::V128AndNot => self.v_binop(I8X16, |b, x, y| b.ins().band_not(x, y)),
            O::V128Or => self.v_binop(I8X16, |b, x, y| b.ins().bor(x, y)),
            O::V128Xor => self.v_binop(I8X16, |b, x, y| b.ins().bxor(x, y)),
            O::V128Bitselect => {
                let c = self.pop_as(I8X16);
                let (x, y) = self.pop2_as(I8X16);
                let v = self.builder.ins().bitselect(c, x, y);
                self.push(v);
            }
            O::V128AnyTrue => self.v_reduce(I8X16, |b, x| b.ins().vany_true(x)),

            // Lane-wise integer reductions.
            O::I8x16AllTrue => self.v_reduce(I8X16, |b, x| b.ins().vall_true(x)),
            O::I16x8AllTrue => self.v_reduce(I16X8, |b, x| b.ins().vall_true(x)),
            O::I32x4AllTrue => self.v_reduce(I32X4, |b, x| b.ins().vall_true(x)),
            O::I64x2AllTrue => self.v_reduce(I64X2, |b, x| b.ins().vall_true(x)),
            O::I8x16Bitmask => self.v_reduce(I8X16, |b, x| b.ins().vhigh_bits(I32, x)),
            O::I16x8Bitmask => self.v_reduce(I16X8, |b, x| b.ins().vhigh_bits(I32, x)),
            O::I32x4Bitmask => self.v_reduce(I32X4, |b, x| b.ins().vhigh_bits(I32, x)),
            O::I64x2Bitmask => self.v_reduce(I64X2, |b, x| b.ins().vhigh_bits(I32, x)),

            // Integer unary arithmetic.
            O::I8x16Abs => self.v_unop(I8X16, |b, x| b.ins().iabs(x)),
            O::I16x8Abs => self.v_unop(I16X8, |b, x| b.ins().iabs(x)),
            O::I32x4Abs => self.v_unop(I32X4, |b, x| b.ins().iabs(x)),
            O::I64x2Abs => self.v_unop(I64X2, |b, x| b.ins().iabs(x)),
            O::I8x16Neg => self.v_unop(I8X16, |b, x| b.ins().ineg(x)),
            O::I16x8Neg => self.v_unop(I16X8, |b, x| b.ins().ineg(x)),
            O::I32x4Neg => self.v_unop(I32X4, |b, x| b.ins().ineg(x)),
            O::I64x2Neg => self.v_unop(I64X2, |b, x| b.ins().ineg(x)),
            O::I8x16Popcnt => self.v_unop(I8X16, |b, x| b.ins().popcnt(x)),

            // Shifts: Cranelift takes a vector shift amount modulo the lane
            // width, as wasm does.
            O::I8x16Shl => self.v_shift(I8X16, |b, x, s| b.ins().ishl(x, s)),
            O::I16x8Shl => self.v_shift(I16X8, |b, x, s| b.ins().ishl(x, s)),
            O::I32x4Shl => self.v_shift(I32X4, |b, x, s| b.ins().ishl(x, s)),
            O::I64x2Shl => self.v_shift(I64X2, |b, x, s| b.ins().ishl(x, s)),
            O::I8x16ShrS => self.v_shift(I8X16, |b, x, s| b.ins().sshr(x, s)),
            O::I16x8ShrS => self.v_shift(I16X8, |b, x, s| b.ins().sshr(x, s)),
            O::I32x4ShrS => self.v_shift(I32X4, |b, x, s| b.ins().sshr(x, s)),
            O::I64x2ShrS => self.v_shift(I64X2, |b, x, s| b.ins().sshr(x, s)),
            O::I8x16ShrU => self.v_shift(I8X16, |b, x, s| b.ins().ushr(x, s)),
            O::I16x8ShrU => self.v_shift(I16X8, |b, x, s| b.ins().ushr(x, s)),
            O::I32x4ShrU => self.v_shift(I32X4, |b, x, s| b.ins().ushr(x, s)),
            O::I64x2ShrU => self.v_shift(I64X2, |b, x, s| b.ins().ushr(x, s)),

            // Integer binary arithmetic.
            O::I8x16Add => self.v_binop(I8X16, |b, x, y| b.ins().iadd(x, y)),
            O::I16x8Add => self.v_binop(I16X8, |b, x, y| b.ins().iadd(x, y)),
            O::I32x4Add => self.v_binop(I32X4, |b, x, y| b.ins().iadd(x, y)),
            O::I64x2Add => self.v_binop(I64X2, |b, x, y| b.ins().iadd(x, y)),
            O::I8x16Sub => self.v_binop(I8X16, |b, x, y| b.ins().isub(x, y)),
            O::I16x8Sub => self.v_binop(I16X8, |b, x, y| b.ins().isub(x, y)),
            O::I32x4Sub => self.v_binop(I32X4, |b, x, y| b.ins().isub(x, y)),
            O::I64x2Sub => self.v_binop(I64X2, |b, x, y| b.ins().isub(x, y)),
            O::I16x8Mul => self.v_binop(I16X8, |b, x, y| b.ins().imul(x, y)),
            O::I32x4Mul => self.v_binop(I32X4, |b, x, y| b.ins().imul(x, y)),
            O::I64x2Mul => self.v_binop(I64X2, |b, x, y| b.ins().imul(x, y)),
            O::I8x16AddSatS => self.v_binop(I8X16, |b, x, y| b.ins().sadd_sat(x, y)),
            O::I16x8AddSatS => self.v_binop(I16X8, |b, x, y| b.ins().sadd_sat(x, y)),
            O::I8x16AddSatU => self.v_binop(I8X16, |b, x, y| b.ins().uadd_sat(x, y)),
            O::I16x8AddSatU => self.v_binop(I16X8, |b, x, y| b.ins().uadd_sat(x, y)),
            O::I8x16SubSatS => self.v_binop(I8X16, |b, x, y| b.ins().ssub_sat(x, y)),
            O::I16x8SubSatS => self.v_binop(I16X8, |b, x, y| b.ins().ssub_sat(x, y)),
            O::I8x16SubSatU => self.v_binop(I8X16, |b, x, y| b.ins().usub_sat(x, y)),
            O::I16x8SubSatU => self.v_binop(I16X8, |b, x, y| b.ins().usub_sat(x, y)),
            O::I8x16MinS => self.v_binop(I8X16, |b, x, y| b.ins().smin(x, y)),
            O::I16x8MinS => self.v_binop(I16X8, |b, x, y| b.ins().smin(x, y)),
            O::I32x4MinS => self.v_binop(I32X4, |b, x, y| b.ins().smin(x, y)),
            O::I8x16MinU => self.v_binop(I8X16, |b, x, y| b.ins().umin(x, y)),
            O::I16x8MinU => self.v_binop(I16X8, |b, x, y| b.ins().umin(x, y)),
            O::I32x4MinU => self.v_binop(I32X4, |b, x, y| b.ins().umin(x, y)),
            O::I8x16MaxS => self.v_binop(I8X16, |b, x, y| b.ins().smax(x, y)),
            O::I16x8MaxS => self.v_binop(I16X8, |b, x, y| b.ins().smax(x, y)),
            O::I32x4MaxS => self.v_binop(I32X4, |b, x, y| b.ins().smax(x, y)),
            O::I8x16MaxU => self.v_binop(I8X16, |b, x, y| b.ins().umax(x, y)),
            O::I16x8MaxU => self.v_binop(I16X8, |b, x, y| b.ins().umax(x, y)),
            O::I32x4MaxU => self.v_binop(I32X4, |b, x, y| b.ins().umax(x, y)),
            O::I8x16AvgrU => self.v_binop(I8X16, |b, x, y| b.ins().avg_round(x, y)),
            O::I16x8AvgrU => self.v_binop(I16X8, |b, x, y| b.ins().avg_round(x, y)),
            O::I16x8Q15MulrSatS => self.v_binop(I16X8, |b, x, y| b.ins().sqmul_round_sat(x, y)),

            // Narrowing and widening.
            O::I8x16NarrowI16x8S => self.v_binop(I16X8, |b, x, y| b.ins().snarrow(x, y)),
            O::I8x16NarrowI16x8U => self.v_binop(I16X8, |b, x, y| b.ins().unarrow(x, y)),
            O::I16x8NarrowI32x4S => self.v_binop(I32X4, |b, x, y| b.ins().snarrow(x, y)),
            O::I16x8NarrowI32x4U => self.v_binop(I32X4, |b, x, y| b.ins().unarrow(x, y)),
            O::I16x8ExtendLowI8x16S => self.v_unop(I8X16, |b, x| widen(b, x, Half::Low, true)),
            O::I16x8ExtendHighI8x16S => self.v_unop(I8X16, |b, x| widen(b, x, Half::High, true)),
            O::I16x8ExtendLowI8x16U => self.v_unop(I8X16, |b, x| widen(b, x, Half::Low, false)),
            O::I16x8ExtendHighI8x16U => self.v_unop(I8X16, |b, x| widen(b, x, Half::High, false)),
            O::I32x4ExtendLowI16x8S => self.v_unop(I16X8, |b, x| widen(b, x, Half::Low, true)),
            O::I32x4ExtendHighI16x8S => self.v_unop(I16X8, |b, x| widen(b, x, Half::High, true)),
            O::I32x4ExtendLowI16x8U => self.v_unop(I16X8, |b, x| widen(b, x, Half::Low, false)),
            O::I32x4ExtendHighI16x8U => self.v_unop(I16X8, |b, x| widen(b, x, Half::High, false)),
            O::I64x2ExtendLowI32x4S => self.v_unop(I32X4, |b, x| widen(b, x, Half::Low, true)),
            O::I64x2ExtendHighI32x4S => self.v_unop(I32X4, |b, x| widen(b, x, Half::High, true)),
            O::I64x2ExtendLowI32x4U => self.v_unop(I32X4, |b, x| widen(b, x, Half::Low, false)),
            O::I64x2ExtendHighI32x4U => self.v_unop(I32X4, |b, x| widen(b, x, Half::High, false)),

            // Extended (widening) multiplication and pairwise addition.
            O::I16x8ExtMulLowI8x16S => self.ext_mul(I8X16, Half::Low, true),
            O::I16x8ExtMulHighI8x16S => self.ext_mul(I8X16, Half::High, true),
            O::I16x8ExtMulLowI8x16U => self.ext_mul(I8X16, Half::Low, false),
            O::I16x8ExtMulHighI8x16U => self.ext_mul(I8X16, Half::High, false),
            O::I32x4ExtMulLowI16x8S => self.ext_mul(I16X8, Half::Low, true),
            O::I32x4ExtMulHighI16x8S => self.ext_mul(I16X8, Half::High, true),
            O::I32x4ExtMulLowI16x8U => self.ext_mul(I16X8, Half::Low, false),
            O::I32x4ExtMulHighI16x8U => self.ext_mul(I16X8, Half::High, false),
            O::I64x2ExtMulLowI32x4S => self.ext_mul(I32X4, Half::Low, true),
            O::I64x2ExtMulHighI32x4S => self.ext_mul(I32X4, Half::High, true),
            O::I64x2ExtMulLowI32x4U => self.ext_mul(I32X4, Half::Low, false),
            O::I64x2ExtMulHighI32x4U => self.ext_mul(I32X4, Half::High, false),
            O::I16x8ExtAddPairwiseI8x16S => self.ext_add_pairwise(I8X16, true),
            O::I16x8ExtAddPairwiseI8x16U => self.ext_add_pairwise(I8X16, false),
            O::I32x4ExtAddPairwiseI16x8S => self.ext_add_pairwise(I16X8, true),
            O::I32x4ExtAddPairwiseI16x8U => self.ext_add_pairwise(I16X8, false),
            O::I32x4DotI16x8S => self.v_binop(I16X8, |b, x, y| {
                // Sum of adjacent products of the sign-extended lanes.
                let lo = {
                    let (xl, yl) = (b.ins().swiden_low(x), b.ins().swiden_low(y));
                    b.ins().imul(xl, yl)
                };
                let hi = {
                    let (xh, yh) = (b.ins().swiden_high(x), b.ins().swiden_high(y));
                    b.ins().imul(xh, yh)
                };
                b.ins().iadd_pairwise(lo, hi)
            }),

            // Float arithmetic.
            O::F32x4Ceil => self.v_unop(F32X4, |b, x| b.ins().ceil(x)),
            O::F64x2Ceil => self.v_unop(F64X2, |b, x| b.ins().ceil(x)),
            O::F32x4Floor => self.v_unop(F32X4, |b, x| b.ins().floor(x)),
            O::F64x2Floor => self.v_unop(F64X2, |b, x| b.ins().floor(x)),
            O::F32x4Trunc => self.v_unop(F32X4, |b, x| b.ins().trunc(x)),
            O::F64x2Trunc => self.v_unop(F64X2, |b, x| b.ins().trunc(x)),
            O::F32x4Nearest => self.v_unop(F32X4, |b, x| b.ins().nearest(x)),
            O::F64x2Nearest => self.v_unop(F64X2, |b, x| b.ins().nearest(x)),
            O::F32x4Abs => self.v_unop(F32X4, |b, x| b.ins().fabs(x)),
            O::F64x2Abs => self.v_unop(F64X2, |b, x| b.ins().fabs(x)),
            O::F32x4Neg => self.v_unop(F32X4, |b, x| b.ins().fneg(x)),
            O::F64x2Neg => self.v_unop(F64X2, |b, x| b.ins().fneg(x)),
            O::F32x4Sqrt => self.v_unop(F32X4, |b, x| b.ins().sqrt(x)),
            O::F64x2Sqrt => self.v_unop(F64X2, |b, x| b.ins().sqrt(x)),
            O::F32x4Add => self.v_binop(F32X4, |b, x, y| b.ins().fadd(x, y)),
            O::F64x2Add => self.v_binop(F64X2, |b, x, y| b.ins().fadd(x, y)),
            O::F32x4Sub => self.v_binop(F32X4, |b, x, y| b.ins().fsub(x, y)),
            O::F64x2Sub => self.v_binop(F64X2, |b, x, y| b.ins().fsub(x, y)),
            O::F32x4Mul => self.v_binop(F32X4, |b, x, y| b.ins().fmul(x, y)),
            O::F64x2Mul => self.v_binop(F64X2, |b, x, y| b.ins().fmul(x, y)),
            O::F32x4Div => self.v_binop(F32X4, |b, x, y| b.ins().fdiv(x, y)),
            O::F64x2Div => self.v_binop(F64X2, |b, x, y| b.ins().fdiv(x, y)),
            O::F32x4Min => self.v_binop(F32X4, |b, x, y| b.ins().fmin(x, y)),
            O::F64x2Min => self.v_binop(F64X2, |b, x, y| b.ins().fmin(x, y)),
            O::F32x4Max => self.v_binop(F32X4, |b, x, y| b.ins().fmax(x, y)),
            O::F64x2Max => self.v_binop(F64X2, |b, x, y| b.ins().fmax(x, y)),
            O::F32x4PMin => self.pseudo_min_max(F32X4, false),
            O::F64x2PMin => self.pseudo_min_max(F64X2, false),
            O::F32x4PMax => self.pseudo_min_max(F32X4, true),
            O::F64x2PMax => self.pseudo_min_max(F64X2, true),

            // Conversions.
            O::I32x4TruncSatF32x4S => self.v_unop(F32X4, |b, x| b.ins().fcvt_to_sint_sat(I32X4, x)),
            O::I32x4TruncSatF32x4U => self.v_unop(F32X4, |b, x| b.ins().fcvt_to_uint_sat(I32X4, x)),
            O::F32x4ConvertI32x4S => self.v_unop(I32X4, |b, x| b.ins().fcvt_from_sint(F32X4, x)),
            O::F32x4ConvertI32x4U => self.v_unop(I32X4, |b, x| b.ins().fcvt_from_uint(F32X4, x)),
            O::I32x4TruncSatF64x2SZero => self.trunc_sat_f64x2_zero(true),
            O::I32x4TruncSatF64x2UZero => self.trunc_sat_f64x2_zero(false),
            O::F64x2ConvertLowI32x4S => self.v_unop(I32X4, |b, x| {
                let wide = b.ins().swiden_low(x);
                b.ins().fcvt_from_sint(F64X2, wide)
            }),
            O::F64x2ConvertLowI32x4U => self.v_unop(I32X4, |b, x| {
                let wide = b.ins().uwiden_low(x);
                b.ins().fcvt_from_uint(F64X2, wide)
            }),
            O::F32x4DemoteF64x2Zero => self.v_unop(F64X2, |b, x| b.ins().fvdemote(x)),
            O::F64x2PromoteLowF32x4 => self.v_unop(F32X4, |b, x| b.ins().fvpromote_low(x)),

            // Relaxed SIMD: each operator lowers to one of the results the
            // proposal allows, the same on every host (the deterministic
            // choice), except fused multiply-add, which uses the host's FMA
            // unless determinism was asked for.
            O::I8x16RelaxedSwizzle => self.v_binop(I8X16, |b, x, y| b.ins().swizzle(x, y)),
            O::I32x4RelaxedTruncF32x4S => self.v_unop(F32X4, |b, x| b.ins().fcvt_to_sint_sat(I32X4, x)),
            O::I32x4RelaxedTruncF32x4U => self.v_unop(F32X4, |b, x| b.ins().fcvt_to_uint_sat(I32X4, x)),
            O::I32x4RelaxedTruncF64x2SZero => self.trunc_sat_f64x2_zero(true),
            O::I32x4RelaxedTruncF64x2UZero => self.trunc_sat_f64x2_zero(false),
            O::F32x4RelaxedMadd => self.relaxed_madd(F32X4, false),
            O::F32x4RelaxedNmadd => self.relaxed_madd(F32X4, true),
            O::F64x2RelaxedMadd => self.relaxed_madd(F64X2, false),
            O::F64x2RelaxedNmadd => self.relaxed_madd(F64X2, true),
            O::I8x16RelaxedLaneselect
            | O::I16x8RelaxedLaneselect
            | O::I32x4RelaxedLaneselect
            | O::I64x2RelaxedLaneselect => {
                let c = self.pop_as(I8X16);
                let (x, y) = self.pop2_as(I8X16);
                let v = self.builder.ins().bitselect(c, x, y);
                self.push(v);
            }
            O::F32x4RelaxedMin => self.v_binop(F32X4, |b, x, y| b.ins().fmin(x, y)),
            O::F32x4RelaxedMax => self.v_binop(F32X4, |b, x, y| b.ins().fmax(x, y)),
            O::F64x2RelaxedMin => self.v_binop(F64X2, |b, x, y| b.ins().fmin(x, y)),
            O::F64x2RelaxedMax => self.v_binop(F64X2, |b, x, y| b.ins().fmax(x, y)),
            O::I16x8RelaxedQ15mulrS => self.v_binop(I16X8, |b, x, y| b.ins().sqmul_round_sat(x, y)),
            O::I16x8RelaxedDotI8x16I7x16S => {
                let (x, y) = self.pop2_as(I8X16);
                let v = self.relaxed_dot_i16(x, y);
                self.push_v128(v);
            }
            O::I32x4RelaxedDotI8x16I7x16AddS => {
                let acc = self.pop_as(I32X4);
                let (x, y) = self.pop2_as(I8X16);
                let d = self.relaxed_dot_i16(x, y);
                let lo = self.builder.ins().swiden_low(d);
                let hi = self.builder.ins().swiden_high(d);
                let sum = self.builder.ins().iadd_pairwise(lo, hi);
                let v = self.builder.ins().iadd(sum, acc);
                self.push_v128(v);
            }

            _ => return None,
        }
        Some(Ok(()))
    }

    // Stack and shape helpers.

    /// `v` reinterpreted as vector type `ty` (a no-op if it already is).
    fn as_shape(&mut self, ty: Type, v: Value) -> Value {
        if self.builder.func.dfg.value_type(v) == ty { v } else { self.builder.ins().bitcast(ty, lane_flags(), v) }
    }

    /// Pops a `v128` viewed as `ty`.
    fn pop_as(&mut self, ty: Type) -> Value {
        let v = self.pop1();
        self.as_shape(ty, v)
    }

    /// Pops two `v128`s viewed as `ty`, in operand order.
    fn pop2_as(&mut self, ty: Type) -> (Value, Value) {
        let (a, b) = self.pop2();
        (self.as_shape(ty, a), self.as_shape(ty, b))
    }

    /// Pushes vector `v` as a `v128` (`i8x16`).
    fn push_v128(&mut self, v: Value) {
        let v = self.as_shape(I8X16, v);
        self.push(v);
    }

    /// A vector constant of type `ty` with the little-endian `bytes`.
    fn vconst(&mut self, ty: Type, bytes: &[u8]) -> Value {
        let c = self.builder.func.dfg.constants.insert(ConstantData::from(bytes));
        self.builder.ins().vconst(ty, c)
    }

    /// A lane-wise unary operator on `v128` viewed as `ty`.
    fn v_unop(&mut self, ty: Type, f: impl FnOnce(&mut FunctionBuilder<'_>, Value) -> Value) {
        let a = self.pop_as(ty);
        let v = f(&mut self.builder, a);
        self.push_v128(v);
    }

    /// A lane-wise binary operator on two `v128`s viewed as `ty`.
    fn v_binop(&mut self, ty: Type, f: impl FnOnce(&mut FunctionBuilder<'_>, Value, Value) -> Value) {
        let (a, b) = self.pop2_as(ty);
        let v = f(&mut self.builder, a, b);
        self.push_v128(v);
    }

    /// A shift of a `v128` viewed as `ty` by a popped `i32` amount.
    fn v_shift(&mut self, ty: Type, f: impl FnOnce(&mut FunctionBuilder<'_>, Value, Value) -> Value) {
        let amount = self.pop1();
        let a = self.pop_as(ty);
        let v = f(&mut self.builder, a, amount);
        self.push_v128(v);
    }

    /// A reduction of a `v128` viewed as `ty` to an `i32` (boolean tests
    /// and bitmasks).
    fn v_reduce(&mut self, ty: Type, f: impl FnOnce(&mut FunctionBuilder<'_>, Value) -> Value) {
        let a = self.pop_as(ty);
        let r = f(&mut self.builder, a);
        let r = if self.builder.func.dfg.value_type(r) == I32 { r } else { self.builder.ins().uextend(I32, r) };
        self.push(r);
    }

    // Comparisons.

    /// Lane-wise integer comparison: all-ones lanes where `cc` holds.
    fn v_icmp(&mut self, ty: Type, cc: IntCC) {
        self.v_binop(ty, |b, x, y| b.ins().icmp(cc, x, y));
    }

    /// Lane-wise float comparison: all-ones lanes where `cc` holds.
    fn v_fcmp(&mut self, ty: Type, cc: FloatCC) {
        self.v_binop(ty, |b, x, y| b.ins().fcmp(cc, x, y));
    }

    /// `pmin(a, b) = b < a ? b : a` and `pmax(a, b) = a < b ? b : a`,
    /// lane-wise and bit-exact (no NaN handling beyond the comparison).
    fn pseudo_min_max(&mut self, ty: Type, max: bool) {
        let (a, b) = self.pop2_as(ty);
        let cmp = if max {
            self.builder.ins().fcmp(FloatCC::LessThan, a, b)
        } else {
            self.builder.ins().fcmp(FloatCC::LessThan, b, a)
        };
        let mask = self.as_shape(ty, cmp);
        let v = self.builder.ins().bitselect(mask, b, a);
        self.push_v128(v);
    }

    // Lanes.

    /// `extract_lane`: `extend` says whether an `i8`/`i16` lane is sign-
    /// (`Some(true)`) or zero-extended (`Some(false)`) to `i32`.
    fn extract_lane(&mut self, ty: Type, lane: u8, extend: Option<bool>) {
        let a = self.pop_as(ty);
        let x = self.builder.ins().extractlane(a, lane);
        let x = match extend {
            Some(true) => self.builder.ins().sextend(I32, x),
            Some(false) => self.builder.ins().uextend(I32, x),
            None => x,
        };
        self.push(x);
    }

    /// `replace_lane`: operands are (vector, scalar); `i8`/`i16` lanes take
    /// the low bits of an `i32`.
    fn replace_lane(&mut self, ty: Type, lane: u8) {
        let x = self.pop1();
        let a = self.pop_as(ty);
        let x = self.narrow_to_lane(ty, x);
        let v = self.builder.ins().insertlane(a, x, lane);
        self.push_v128(v);
    }

    /// `splat` of a popped scalar to every lane of `ty`.
    fn splat(&mut self, ty: Type) {
        let x = self.pop1();
        let x = self.narrow_to_lane(ty, x);
        let v = self.builder.ins().splat(ty, x);
        self.push_v128(v);
    }

    /// Truncates the `i32` operand of an `i8x16`/`i16x8` lane operator to
    /// the lane type; other scalars already have the lane type.
    fn narrow_to_lane(&mut self, ty: Type, x: Value) -> Value {
        let lane = ty.lane_type();
        if self.builder.func.dfg.value_type(x) == lane { x } else { self.builder.ins().ireduce(lane, x) }
    }

    // Widening arithmetic.

    /// `extmul_{low,high}`: multiplies the widened halves of two vectors of
    /// shape `ty`.
    fn ext_mul(&mut self, ty: Type, half: Half, signed: bool) {
        self.v_binop(ty, |b, x, y| {
            let x = widen(b, x, half, signed);
            let y = widen(b, y, half, signed);
            b.ins().imul(x, y)
        });
    }

    /// `extadd_pairwise`: sums adjacent lanes of shape `ty` into lanes of
    /// twice the width.
    fn ext_add_pairwise(&mut self, ty: Type, signed: bool) {
        self.v_unop(ty, |b, x| {
            let lo = widen(b, x, Half::Low, signed);
            let hi = widen(b, x, Half::High, signed);
            b.ins().iadd_pairwise(lo, hi)
        });
    }

    /// `i32x4.trunc_sat_f64x2_{s,u}_zero`: saturating conversion of both
    /// lanes into the low two `i32` lanes, upper lanes zero.
    /// `relaxed_madd` (`a * b + c`) or `relaxed_nmadd` (`-(a * b) + c`).
    fn relaxed_madd(&mut self, ty: Type, negate: bool) {
        let c = self.pop_as(ty);
        let (a, b) = self.pop2_as(ty);
        let a = if negate { self.builder.ins().fneg(a) } else { a };
        let has_fma = self.isa.isa_flags().iter().any(|f| f.name == "has_fma" && f.as_bool() == Some(true))
            || self.isa.triple().architecture
                == target_lexicon::Architecture::Aarch64(target_lexicon::Aarch64Architecture::Aarch64);
        let v = if has_fma && !self.tunables.relaxed_simd_deterministic {
            self.builder.ins().fma(a, b, c)
        } else {
            let m = self.builder.ins().fmul(a, b);
            self.builder.ins().fadd(m, c)
        };
        self.push_v128(v);
    }

    /// Pairwise dot product of signed bytes: lane i of the `i16x8` result is
    /// `x[2i] * y[2i] + x[2i+1] * y[2i+1]` (wrapping).
    fn relaxed_dot_i16(&mut self, x: Value, y: Value) -> Value {
        let b = &mut self.builder;
        let xl = b.ins().swiden_low(x);
        let xh = b.ins().swiden_high(x);
        let yl = b.ins().swiden_low(y);
        let yh = b.ins().swiden_high(y);
        let pl = b.ins().imul(xl, yl);
        let ph = b.ins().imul(xh, yh);
        b.ins().iadd_pairwise(pl, ph)
    }

    fn trunc_sat_f64x2_zero(&mut self, signed: bool) {
        let a = self.pop_as(F64X2);
        let zero = self.vconst(I64X2, &[0; 16]);
        let v = if signed {
            let wide = self.builder.ins().fcvt_to_sint_sat(I64X2, a);
            self.builder.ins().snarrow(wide, zero)
        } else {
            let wide = self.builder.ins().fcvt_to_uint_sat(I64X2, a);
            self.builder.ins().uunarrow(wide, zero)
        };
        self.push_v128(v);
    }

    // Memory.

    /// `v128.loadNxM_{s,u}`: an 8-byte load widened to a full vector by
    /// `load`.
    fn load_extend(
        &mut self,
        memarg: &MemArg,
        load: impl FnOnce(&mut FunctionBuilder<'_>, MemFlagsData, Value, i32) -> Value,
    ) {
        let (addr, off) = self.prepare_addr(memarg, 8);
        let v = load(&mut self.builder, heap_flags(self.regions), addr, off);
        self.push_v128(v);
    }

    /// Loads one lane-sized scalar of vector type `ty` from the popped
    /// address.
    fn load_lane_scalar(&mut self, memarg: &MemArg, ty: Type) -> Value {
        let lane = ty.lane_type();
        let (addr, off) = self.prepare_addr(memarg, lane.bytes());
        self.builder.ins().load(lane, heap_flags(self.regions), addr, off)
    }

    /// `v128.loadN_splat`.
    fn load_splat(&mut self, memarg: &MemArg, ty: Type) {
        let x = self.load_lane_scalar(memarg, ty);
        let v = self.builder.ins().splat(ty, x);
        self.push_v128(v);
    }

    /// `v128.loadN_zero`: the scalar in lane 0, other lanes zero.
    fn load_zero(&mut self, memarg: &MemArg, ty: Type) {
        let x = self.load_lane_scalar(memarg, ty);
        let v = self.builder.ins().scalar_to_vector(ty, x);
        self.push_v128(v);
    }

    /// `v128.loadN_lane`: operands are (address, vector).
    fn load_lane(&mut self, memarg: &MemArg, ty: Type, lane: u8) {
        let vector = self.pop_as(ty);
        let x = self.load_lane_scalar(memarg, ty);
        let v = self.builder.ins().insertlane(vector, x, lane);
        self.push_v128(v);
    }

    /// `v128.storeN_lane`: operands are (address, vector).
    fn store_lane(&mut self, memarg: &MemArg, ty: Type, lane: u8) {
        let vector = self.pop_as(ty);
        let x = self.builder.ins().extractlane(vector, lane);
        let (addr, off) = self.prepare_addr(memarg, ty.lane_type().bytes());
        self.builder.ins().store(heap_flags(self.regions), x, addr, off);
    }
}
