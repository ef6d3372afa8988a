//! Numeric operators (and the dispatch of memory operators): each loads
//! its operands into rax/rcx or xmm0/xmm1, computes, and stores its
//! result into the slot it lands at; integer operators take operands
//! from, and leave their result in, `RESULT_REGS` when they can
//! (`Codegen::pop_src`, `Codegen::push_reg`).

use crate::compiler::{Codegen, Declined, Deferred, Src, decline};
use crate::frame::ValType;
use crate::memory::Load;
use crate::x64::asm::{Alu, Cond, FSize, Reg, Shift, Size, SseOp, Xmm};
use kiln_environ::TrapCode;
use wasmparser::Operator;

use ValType::{F32, F64, I32, I64};

const X0: Xmm = Xmm(0);
const X1: Xmm = Xmm(1);

/// Integer binary operators.
#[derive(Clone, Copy)]
enum IntOp {
    Alu(Alu),
    Mul,
    Shift(Shift),
    Div { signed: bool, rem: bool },
}

/// What a comparison's flags must show for true, for integers (`cmp a, b`).
fn int_cmp(op: &Operator<'_>) -> Option<(ValType, Cond)> {
    use Operator as O;
    Some(match op {
        O::I32Eq => (I32, Cond::E),
        O::I32Ne => (I32, Cond::Ne),
        O::I32LtS => (I32, Cond::L),
        O::I32LtU => (I32, Cond::B),
        O::I32GtS => (I32, Cond::G),
        O::I32GtU => (I32, Cond::A),
        O::I32LeS => (I32, Cond::Le),
        O::I32LeU => (I32, Cond::Be),
        O::I32GeS => (I32, Cond::Ge),
        O::I32GeU => (I32, Cond::Ae),
        O::I64Eq => (I64, Cond::E),
        O::I64Ne => (I64, Cond::Ne),
        O::I64LtS => (I64, Cond::L),
        O::I64LtU => (I64, Cond::B),
        O::I64GtS => (I64, Cond::G),
        O::I64GtU => (I64, Cond::A),
        O::I64LeS => (I64, Cond::Le),
        O::I64LeU => (I64, Cond::Be),
        O::I64GeS => (I64, Cond::Ge),
        O::I64GeU => (I64, Cond::Ae),
        _ => return None,
    })
}

/// Float comparisons.
#[derive(Clone, Copy)]
enum FCmp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

fn size_of(t: ValType) -> Size {
    crate::memory::width(t)
}

fn fsize(t: ValType) -> FSize {
    if t == F32 { FSize::F32 } else { FSize::F64 }
}

impl Codegen<'_> {
    /// Numeric and memory operators; anything else declines.
    pub(crate) fn numeric_or_memory(&mut self, op: Operator<'_>) -> Result<(), Declined> {
        use Operator as O;
        if let Some((t, c)) = int_cmp(&op) {
            return self.int_compare(t, c);
        }
        match op {
            O::I32Const { value } => self.constant(I32, i64::from(value)),
            O::I64Const { value } => self.constant(I64, value),
            O::F32Const { value } => self.constant(F32, i64::from(value.bits())),
            O::F64Const { value } => self.constant(F64, value.bits() as i64),

            O::I32Eqz => self.eqz(I32),
            O::I64Eqz => self.eqz(I64),

            O::I32Add => self.int_binary(I32, IntOp::Alu(Alu::Add)),
            O::I32Sub => self.int_binary(I32, IntOp::Alu(Alu::Sub)),
            O::I32And => self.int_binary(I32, IntOp::Alu(Alu::And)),
            O::I32Or => self.int_binary(I32, IntOp::Alu(Alu::Or)),
            O::I32Xor => self.int_binary(I32, IntOp::Alu(Alu::Xor)),
            O::I32Mul => self.int_binary(I32, IntOp::Mul),
            O::I32Shl => self.int_binary(I32, IntOp::Shift(Shift::Shl)),
            O::I32ShrS => self.int_binary(I32, IntOp::Shift(Shift::Sar)),
            O::I32ShrU => self.int_binary(I32, IntOp::Shift(Shift::Shr)),
            O::I32Rotl => self.int_binary(I32, IntOp::Shift(Shift::Rol)),
            O::I32Rotr => self.int_binary(I32, IntOp::Shift(Shift::Ror)),
            O::I32DivS => self.int_binary(I32, IntOp::Div { signed: true, rem: false }),
            O::I32DivU => self.int_binary(I32, IntOp::Div { signed: false, rem: false }),
            O::I32RemS => self.int_binary(I32, IntOp::Div { signed: true, rem: true }),
            O::I32RemU => self.int_binary(I32, IntOp::Div { signed: false, rem: true }),
            O::I64Add => self.int_binary(I64, IntOp::Alu(Alu::Add)),
            O::I64Sub => self.int_binary(I64, IntOp::Alu(Alu::Sub)),
            O::I64And => self.int_binary(I64, IntOp::Alu(Alu::And)),
            O::I64Or => self.int_binary(I64, IntOp::Alu(Alu::Or)),
            O::I64Xor => self.int_binary(I64, IntOp::Alu(Alu::Xor)),
            O::I64Mul => self.int_binary(I64, IntOp::Mul),
            O::I64Shl => self.int_binary(I64, IntOp::Shift(Shift::Shl)),
            O::I64ShrS => self.int_binary(I64, IntOp::Shift(Shift::Sar)),
            O::I64ShrU => self.int_binary(I64, IntOp::Shift(Shift::Shr)),
            O::I64Rotl => self.int_binary(I64, IntOp::Shift(Shift::Rol)),
            O::I64Rotr => self.int_binary(I64, IntOp::Shift(Shift::Ror)),
            O::I64DivS => self.int_binary(I64, IntOp::Div { signed: true, rem: false }),
            O::I64DivU => self.int_binary(I64, IntOp::Div { signed: false, rem: false }),
            O::I64RemS => self.int_binary(I64, IntOp::Div { signed: true, rem: true }),
            O::I64RemU => self.int_binary(I64, IntOp::Div { signed: false, rem: true }),

            O::I32Clz if self.cpu.lzcnt => self.count(I32, 0),
            O::I32Ctz if self.cpu.bmi1 => self.count(I32, 1),
            O::I32Popcnt if self.cpu.popcnt => self.count(I32, 2),
            O::I64Clz if self.cpu.lzcnt => self.count(I64, 0),
            O::I64Ctz if self.cpu.bmi1 => self.count(I64, 1),
            O::I64Popcnt if self.cpu.popcnt => self.count(I64, 2),

            O::I32WrapI64 => self.extend(I64, I32, Extend::Low32),
            O::I64ExtendI32U => self.extend(I32, I64, Extend::Low32),
            O::I64ExtendI32S => self.extend(I32, I64, Extend::Signed32),
            O::I32Extend8S => self.extend(I32, I32, Extend::Signed8(Size::S32)),
            O::I32Extend16S => self.extend(I32, I32, Extend::Signed16(Size::S32)),
            O::I64Extend8S => self.extend(I64, I64, Extend::Signed8(Size::S64)),
            O::I64Extend16S => self.extend(I64, I64, Extend::Signed16(Size::S64)),
            O::I64Extend32S => self.extend(I64, I64, Extend::Signed32),
            O::I32ReinterpretF32 => self.retype(F32, I32),
            O::I64ReinterpretF64 => self.retype(F64, I64),
            O::F32ReinterpretI32 => self.retype(I32, F32),
            O::F64ReinterpretI64 => self.retype(I64, F64),

            O::F32Add => self.float_binary(F32, SseOp::Add),
            O::F32Sub => self.float_binary(F32, SseOp::Sub),
            O::F32Mul => self.float_binary(F32, SseOp::Mul),
            O::F32Div => self.float_binary(F32, SseOp::Div),
            O::F64Add => self.float_binary(F64, SseOp::Add),
            O::F64Sub => self.float_binary(F64, SseOp::Sub),
            O::F64Mul => self.float_binary(F64, SseOp::Mul),
            O::F64Div => self.float_binary(F64, SseOp::Div),
            O::F32Min => self.min_max(F32, true),
            O::F32Max => self.min_max(F32, false),
            O::F64Min => self.min_max(F64, true),
            O::F64Max => self.min_max(F64, false),
            O::F32Sqrt => self.float_unary(F32, |a, f| a.sse_op(SseOp::Sqrt, f, X0, X0)),
            O::F64Sqrt => self.float_unary(F64, |a, f| a.sse_op(SseOp::Sqrt, f, X0, X0)),
            O::F32Ceil if self.cpu.sse41 => self.float_unary(F32, |a, f| a.rounds(f, X0, X0, 2)),
            O::F32Floor if self.cpu.sse41 => self.float_unary(F32, |a, f| a.rounds(f, X0, X0, 1)),
            O::F32Trunc if self.cpu.sse41 => self.float_unary(F32, |a, f| a.rounds(f, X0, X0, 3)),
            O::F32Nearest if self.cpu.sse41 => self.float_unary(F32, |a, f| a.rounds(f, X0, X0, 0)),
            O::F64Ceil if self.cpu.sse41 => self.float_unary(F64, |a, f| a.rounds(f, X0, X0, 2)),
            O::F64Floor if self.cpu.sse41 => self.float_unary(F64, |a, f| a.rounds(f, X0, X0, 1)),
            O::F64Trunc if self.cpu.sse41 => self.float_unary(F64, |a, f| a.rounds(f, X0, X0, 3)),
            O::F64Nearest if self.cpu.sse41 => self.float_unary(F64, |a, f| a.rounds(f, X0, X0, 0)),
            O::F32Neg => self.sign_bits(F32, SignOp::Neg),
            O::F32Abs => self.sign_bits(F32, SignOp::Abs),
            O::F64Neg => self.sign_bits(F64, SignOp::Neg),
            O::F64Abs => self.sign_bits(F64, SignOp::Abs),
            O::F32Copysign => self.copysign(F32),
            O::F64Copysign => self.copysign(F64),

            O::F32Eq => self.float_compare(F32, FCmp::Eq),
            O::F32Ne => self.float_compare(F32, FCmp::Ne),
            O::F32Lt => self.float_compare(F32, FCmp::Lt),
            O::F32Gt => self.float_compare(F32, FCmp::Gt),
            O::F32Le => self.float_compare(F32, FCmp::Le),
            O::F32Ge => self.float_compare(F32, FCmp::Ge),
            O::F64Eq => self.float_compare(F64, FCmp::Eq),
            O::F64Ne => self.float_compare(F64, FCmp::Ne),
            O::F64Lt => self.float_compare(F64, FCmp::Lt),
            O::F64Gt => self.float_compare(F64, FCmp::Gt),
            O::F64Le => self.float_compare(F64, FCmp::Le),
            O::F64Ge => self.float_compare(F64, FCmp::Ge),

            O::F32ConvertI32S => self.int_to_float(I32, F32, true),
            O::F32ConvertI32U => self.int_to_float(I32, F32, false),
            O::F32ConvertI64S => self.int_to_float(I64, F32, true),
            O::F32ConvertI64U => self.int_to_float(I64, F32, false),
            O::F64ConvertI32S => self.int_to_float(I32, F64, true),
            O::F64ConvertI32U => self.int_to_float(I32, F64, false),
            O::F64ConvertI64S => self.int_to_float(I64, F64, true),
            O::F64ConvertI64U => self.int_to_float(I64, F64, false),
            O::F64PromoteF32 => self.float_convert(F32, F64),
            O::F32DemoteF64 => self.float_convert(F64, F32),
            O::I32TruncF32S => self.float_to_int(F32, I32, true),
            O::I32TruncF32U => self.float_to_int(F32, I32, false),
            O::I32TruncF64S => self.float_to_int(F64, I32, true),
            O::I32TruncF64U => self.float_to_int(F64, I32, false),
            O::I64TruncF32S => self.float_to_int(F32, I64, true),
            O::I64TruncF32U => self.float_to_int(F32, I64, false),
            O::I64TruncF64S => self.float_to_int(F64, I64, true),
            O::I64TruncF64U => self.float_to_int(F64, I64, false),

            O::I32Load { memarg } => self.load(&memarg, Load::B32, I32),
            O::I64Load { memarg } => self.load(&memarg, Load::B64, I64),
            O::F32Load { memarg } => self.load(&memarg, Load::B32, F32),
            O::F64Load { memarg } => self.load(&memarg, Load::B64, F64),
            O::I32Load8S { memarg } => self.load(&memarg, Load::B8 { signed: true, to: Size::S32 }, I32),
            O::I32Load8U { memarg } => self.load(&memarg, Load::B8 { signed: false, to: Size::S32 }, I32),
            O::I32Load16S { memarg } => self.load(&memarg, Load::B16 { signed: true, to: Size::S32 }, I32),
            O::I32Load16U { memarg } => self.load(&memarg, Load::B16 { signed: false, to: Size::S32 }, I32),
            O::I64Load8S { memarg } => self.load(&memarg, Load::B8 { signed: true, to: Size::S64 }, I64),
            O::I64Load8U { memarg } => self.load(&memarg, Load::B8 { signed: false, to: Size::S64 }, I64),
            O::I64Load16S { memarg } => self.load(&memarg, Load::B16 { signed: true, to: Size::S64 }, I64),
            O::I64Load16U { memarg } => self.load(&memarg, Load::B16 { signed: false, to: Size::S64 }, I64),
            O::I64Load32S { memarg } => self.load(&memarg, Load::B32To64 { signed: true }, I64),
            O::I64Load32U { memarg } => self.load(&memarg, Load::B32To64 { signed: false }, I64),
            O::I32Store { memarg } => self.store(&memarg, 4, I32),
            O::I64Store { memarg } => self.store(&memarg, 8, I64),
            O::F32Store { memarg } => self.store(&memarg, 4, F32),
            O::F64Store { memarg } => self.store(&memarg, 8, F64),
            O::I32Store8 { memarg } => self.store(&memarg, 1, I32),
            O::I32Store16 { memarg } => self.store(&memarg, 2, I32),
            O::I64Store8 { memarg } => self.store(&memarg, 1, I64),
            O::I64Store16 { memarg } => self.store(&memarg, 2, I64),
            O::I64Store32 { memarg } => self.store(&memarg, 4, I64),
            O::MemorySize { mem } => self.memory_size(mem),

            op => decline(format!("operator {op:?}")),
        }
    }

    /// Pushes a constant without code (see [`Codegen::deferred`]).
    fn constant(&mut self, t: ValType, bits: i64) -> Result<(), Declined> {
        let depth = self.stack.len();
        self.push(t);
        self.deferred.push((depth, Deferred::Const(bits)));
        Ok(())
    }

    /// A value that keeps its bits and changes type.
    fn retype(&mut self, from: ValType, to: ValType) -> Result<(), Declined> {
        let a = self.pop(from)?;
        let out = self.push(to);
        if a != out {
            self.asm.load(Size::S64, Reg::Rax, a);
            self.asm.store(Size::S64, out, Reg::Rax);
        }
        Ok(())
    }

    /// An integer conversion (`extend`, or `wrap`, which keeps the low 32
    /// bits as `Extend::Low32` does), from where the operand is into the
    /// result register.
    fn extend(&mut self, from: ValType, to: ValType, how: Extend) -> Result<(), Declined> {
        let a = self.pop_src(from)?;
        // In place in a result register; else into a free one (the only
        // operand is popped).
        let dst = match Self::result_reg_of(a) {
            Some(r) => r,
            None => self.free_result_reg(),
        };
        let asm = &mut self.asm;
        match (how, a) {
            (Extend::Low32, Src::Reg(r)) => asm.mov_rr(Size::S32, dst, r),
            (Extend::Low32, Src::Mem(m)) => asm.load(Size::S32, dst, m),
            (Extend::Signed32, Src::Reg(r)) => asm.movsxd_rr(dst, r),
            (Extend::Signed32, Src::Mem(m)) => asm.load_sx32(dst, m),
            (Extend::Signed8(s), Src::Reg(r)) => asm.movsx8_rr(s, dst, r),
            (Extend::Signed8(s), Src::Mem(m)) => asm.load_sx8(s, dst, m),
            (Extend::Signed16(s), Src::Reg(r)) => asm.movsx16_rr(s, dst, r),
            (Extend::Signed16(s), Src::Mem(m)) => asm.load_sx16(s, dst, m),
        }
        self.push_reg(to, dst);
        Ok(())
    }

    fn eqz(&mut self, t: ValType) -> Result<(), Declined> {
        if t == I32
            && let Some(c) = self.pop_flags()
        {
            self.push_flags(c.invert());
            return Ok(());
        }
        self.materialize_flags();
        let a = self.pop_src(t)?;
        let s = size_of(t);
        let a = self.in_reg(s, Reg::Rcx, a);
        self.asm.test_rr(s, a, a);
        self.push_flags(Cond::E);
        Ok(())
    }

    fn int_compare(&mut self, t: ValType, c: Cond) -> Result<(), Declined> {
        let imm = self.pop_imm(t);
        let b = if imm.is_none() { Some(self.pop_src(t)?) } else { None };
        let a = self.pop_src(t)?;
        let s = size_of(t);
        let a = self.in_reg(s, Reg::Rcx, a);
        match b {
            Some(b) => self.alu_src(Alu::Cmp, s, a, b),
            None => self.asm.alu_ri(Alu::Cmp, s, a, imm.unwrap_or_default()),
        }
        // Left in the flags for a branch (see `Deferred::Flags`).
        self.push_flags(c);
        Ok(())
    }

    fn int_binary(&mut self, t: ValType, op: IntOp) -> Result<(), Declined> {
        if !matches!(op, IntOp::Div { .. })
            && let Some(imm) = self.pop_imm(t)
        {
            let a = self.pop_src(t)?;
            let s = size_of(t);
            // In place in a result register; else in a free one (the
            // other operand is an immediate).
            let dst = match Self::result_reg_of(a) {
                Some(r) => r,
                None => {
                    let dst = self.free_result_reg();
                    self.load_src(s, dst, a);
                    dst
                }
            };
            match op {
                IntOp::Alu(alu) => self.asm.alu_ri(alu, s, dst, imm),
                IntOp::Mul => self.asm.imul_rri(s, dst, dst, imm),
                // The count is taken modulo the width, as wasm says.
                IntOp::Shift(sh) => {
                    let bits = if t == I64 { 64 } else { 32 };
                    self.asm.shift_ri(sh, s, dst, (imm & (bits - 1)) as u8);
                }
                IntOp::Div { .. } => return decline("internal: a division by an immediate"),
            }
            self.push_reg(t, dst);
            return Ok(());
        }
        // A constant too wide for an immediate goes into rcx, which is
        // where the product, shift and division take it anyway.
        let b = self.pop_src_or_const(t, Reg::Rcx)?;
        let a = self.pop_src(t)?;
        let s = size_of(t);
        // An `Alu` result goes in place where `a` is in a result register
        // (`b` is in another, or elsewhere), or for a commutative one where
        // `b` is.
        let mut result = if matches!(op, IntOp::Div { rem: true, .. }) { Reg::Rdx } else { Reg::Rax };
        match op {
            IntOp::Alu(alu) => {
                let commutative = matches!(alu, Alu::Add | Alu::And | Alu::Or | Alu::Xor);
                match (Self::result_reg_of(a), Self::result_reg_of(b)) {
                    (Some(r), _) => {
                        result = r;
                        self.alu_src(alu, s, r, b);
                    }
                    // `b` in place, `a` from its slot or register.
                    (None, Some(r)) if commutative => {
                        result = r;
                        self.alu_src(alu, s, r, a);
                    }
                    _ => {
                        self.load_src(s, Reg::Rax, a);
                        self.alu_src(alu, s, Reg::Rax, b);
                    }
                }
            }
            IntOp::Mul => {
                self.load_src(s, Reg::Rax, a);
                self.load_src(s, Reg::Rcx, b);
                self.asm.imul_rr(s, Reg::Rax, Reg::Rcx);
            }
            IntOp::Shift(sh) => {
                self.load_src(s, Reg::Rax, a);
                self.load_src(s, Reg::Rcx, b);
                self.asm.shift_cl(sh, s, Reg::Rax);
            }
            IntOp::Div { signed, rem } => self.divide(s, signed, rem, a, b),
        }
        self.push_reg(t, result);
        Ok(())
    }

    /// Division and remainder, leaving the quotient in rax or the
    /// remainder in rdx, with wasm's traps: division by zero, and signed
    /// division overflow (`MIN / -1`; the remainder is then 0).
    fn divide(&mut self, s: Size, signed: bool, rem: bool, a: Src, b: Src) {
        self.load_src(s, Reg::Rax, a);
        self.load_src(s, Reg::Rcx, b);
        self.asm.test_rr(s, Reg::Rcx, Reg::Rcx);
        let zero = self.trap_label(TrapCode::IntegerDivisionByZero);
        self.asm.jcc(Cond::E, zero);
        let done = self.asm.new_label();
        if signed {
            let normal = self.asm.new_label();
            self.asm.alu_ri(Alu::Cmp, s, Reg::Rcx, -1);
            self.asm.jcc(Cond::Ne, normal);
            if rem {
                self.asm.alu_rr(Alu::Xor, Size::S32, Reg::Rdx, Reg::Rdx);
                self.asm.jmp(done);
            } else {
                // MIN / -1 overflows; anything else divided by -1 is its negation.
                self.asm.neg(s, Reg::Rax);
                let overflow = self.trap_label(TrapCode::IntegerOverflow);
                self.asm.jcc(Cond::O, overflow);
                self.asm.jmp(done);
            }
            self.asm.bind(normal);
            self.asm.cdq_cqo(s);
            self.asm.div(s, true, Reg::Rcx);
        } else {
            self.asm.alu_rr(Alu::Xor, Size::S32, Reg::Rdx, Reg::Rdx);
            self.asm.div(s, false, Reg::Rcx);
        }
        self.asm.bind(done);
    }

    /// `clz` (0), `ctz` (1) and `popcnt` (2).
    fn count(&mut self, t: ValType, which: u8) -> Result<(), Declined> {
        let a = self.pop(t)?;
        let out = self.push(t);
        let s = size_of(t);
        self.asm.load(s, Reg::Rcx, a);
        match which {
            0 => self.asm.lzcnt(s, Reg::Rax, Reg::Rcx),
            1 => self.asm.tzcnt(s, Reg::Rax, Reg::Rcx),
            _ => self.asm.popcnt(s, Reg::Rax, Reg::Rcx),
        }
        self.asm.store(Size::S64, out, Reg::Rax);
        Ok(())
    }

    fn float_binary(&mut self, t: ValType, op: SseOp) -> Result<(), Declined> {
        let b = self.pop(t)?;
        let a = self.pop(t)?;
        let out = self.push(t);
        let f = fsize(t);
        self.asm.movs_load(f, X0, a);
        self.asm.movs_load(f, X1, b);
        self.asm.sse_op(op, f, X0, X1);
        self.asm.movs_store(f, out, X0);
        Ok(())
    }

    fn float_unary(&mut self, t: ValType, op: fn(&mut crate::x64::asm::Assembler, FSize)) -> Result<(), Declined> {
        let a = self.pop(t)?;
        let out = self.push(t);
        let f = fsize(t);
        self.asm.movs_load(f, X0, a);
        op(&mut self.asm, f);
        self.asm.movs_store(f, out, X0);
        Ok(())
    }

    /// `min` and `max`: a NaN operand gives NaN, and `min(-0, +0)` is
    /// `-0` (`max`, `+0`), where `minss`/`maxss` alone would return their
    /// second operand.
    fn min_max(&mut self, t: ValType, min: bool) -> Result<(), Declined> {
        let b = self.pop(t)?;
        let a = self.pop(t)?;
        let out = self.push(t);
        let f = fsize(t);
        let (nan, normal, done) = (self.asm.new_label(), self.asm.new_label(), self.asm.new_label());
        self.asm.movs_load(f, X0, a);
        self.asm.movs_load(f, X1, b);
        self.asm.ucomis(f, X0, X1);
        self.asm.jcc(Cond::P, nan);
        self.asm.jcc(Cond::Ne, normal);
        // Equal: the same value, or zeros of either sign.
        if min {
            self.asm.orp(f, X0, X1);
        } else {
            self.asm.andp(f, X0, X1);
        }
        self.asm.jmp(done);
        self.asm.bind(nan);
        self.asm.sse_op(SseOp::Add, f, X0, X1);
        self.asm.jmp(done);
        self.asm.bind(normal);
        self.asm.sse_op(if min { SseOp::Min } else { SseOp::Max }, f, X0, X1);
        self.asm.bind(done);
        self.asm.movs_store(f, out, X0);
        Ok(())
    }

    fn sign_bits(&mut self, t: ValType, op: SignOp) -> Result<(), Declined> {
        let a = self.pop(t)?;
        let out = self.push(t);
        let s = size_of(t);
        self.asm.load(s, Reg::Rax, a);
        match (t, op) {
            (F32, SignOp::Neg) => self.asm.alu_ri(Alu::Xor, Size::S32, Reg::Rax, i32::MIN),
            (F32, SignOp::Abs) => self.asm.alu_ri(Alu::And, Size::S32, Reg::Rax, i32::MAX),
            (_, SignOp::Neg) => {
                self.asm.mov_ri(Size::S64, Reg::Rcx, i64::MIN);
                self.asm.alu_rr(Alu::Xor, Size::S64, Reg::Rax, Reg::Rcx);
            }
            (_, SignOp::Abs) => {
                self.asm.mov_ri(Size::S64, Reg::Rcx, i64::MAX);
                self.asm.alu_rr(Alu::And, Size::S64, Reg::Rax, Reg::Rcx);
            }
        }
        self.asm.store(s, out, Reg::Rax);
        Ok(())
    }

    fn copysign(&mut self, t: ValType) -> Result<(), Declined> {
        let b = self.pop(t)?;
        let a = self.pop(t)?;
        let out = self.push(t);
        let s = size_of(t);
        self.asm.load(s, Reg::Rax, a);
        self.asm.load(s, Reg::Rcx, b);
        let sign = if t == F32 { i64::from(i32::MIN as u32) } else { i64::MIN };
        self.asm.mov_ri(s, Reg::Rdx, sign);
        self.asm.alu_rr(Alu::And, s, Reg::Rcx, Reg::Rdx);
        self.asm.not(s, Reg::Rdx);
        self.asm.alu_rr(Alu::And, s, Reg::Rax, Reg::Rdx);
        self.asm.alu_rr(Alu::Or, s, Reg::Rax, Reg::Rcx);
        self.asm.store(s, out, Reg::Rax);
        Ok(())
    }

    /// Float comparisons: `ucomis` sets ZF, PF and CF all for unordered
    /// operands (a NaN), so each condition is chosen to be false then.
    fn float_compare(&mut self, t: ValType, c: FCmp) -> Result<(), Declined> {
        let b = self.pop(t)?;
        let a = self.pop(t)?;
        let out = self.push(I32);
        let f = fsize(t);
        self.asm.movs_load(f, X0, a);
        self.asm.movs_load(f, X1, b);
        self.asm.alu_rr(Alu::Xor, Size::S32, Reg::Rax, Reg::Rax);
        match c {
            FCmp::Eq | FCmp::Ne => {
                self.asm.alu_rr(Alu::Xor, Size::S32, Reg::Rcx, Reg::Rcx);
                self.asm.ucomis(f, X0, X1);
                if matches!(c, FCmp::Eq) {
                    self.asm.setcc(Cond::E, Reg::Rax);
                    self.asm.setcc(Cond::Np, Reg::Rcx);
                    self.asm.alu_rr(Alu::And, Size::S32, Reg::Rax, Reg::Rcx);
                } else {
                    self.asm.setcc(Cond::Ne, Reg::Rax);
                    self.asm.setcc(Cond::P, Reg::Rcx);
                    self.asm.alu_rr(Alu::Or, Size::S32, Reg::Rax, Reg::Rcx);
                }
            }
            // a < b is b > a; "above" (CF = 0 and ZF = 0) is false when unordered.
            FCmp::Lt => {
                self.asm.ucomis(f, X1, X0);
                self.asm.setcc(Cond::A, Reg::Rax);
            }
            FCmp::Le => {
                self.asm.ucomis(f, X1, X0);
                self.asm.setcc(Cond::Ae, Reg::Rax);
            }
            FCmp::Gt => {
                self.asm.ucomis(f, X0, X1);
                self.asm.setcc(Cond::A, Reg::Rax);
            }
            FCmp::Ge => {
                self.asm.ucomis(f, X0, X1);
                self.asm.setcc(Cond::Ae, Reg::Rax);
            }
        }
        self.asm.store(Size::S32, out, Reg::Rax);
        Ok(())
    }

    fn int_to_float(&mut self, from: ValType, to: ValType, signed: bool) -> Result<(), Declined> {
        let a = self.pop(from)?;
        let out = self.push(to);
        let f = fsize(to);
        self.asm.xorp(f, X0, X0);
        match (from, signed) {
            (I32, true) => {
                self.asm.load(Size::S32, Reg::Rax, a);
                self.asm.cvtsi2s(f, Size::S32, X0, Reg::Rax);
            }
            // Zero-extended, a u32 is a non-negative i64.
            (I32, false) | (_, true) => {
                self.asm.load(size_of(from), Reg::Rax, a);
                self.asm.cvtsi2s(f, Size::S64, X0, Reg::Rax);
            }
            _ => {
                // A u64 with the top bit set: halve it keeping the lowest
                // bit (so rounding stays right), convert, double.
                let (big, done) = (self.asm.new_label(), self.asm.new_label());
                self.asm.load(Size::S64, Reg::Rax, a);
                self.asm.test_rr(Size::S64, Reg::Rax, Reg::Rax);
                self.asm.jcc(Cond::S, big);
                self.asm.cvtsi2s(f, Size::S64, X0, Reg::Rax);
                self.asm.jmp(done);
                self.asm.bind(big);
                self.asm.mov_rr(Size::S64, Reg::Rcx, Reg::Rax);
                self.asm.shift_ri(Shift::Shr, Size::S64, Reg::Rcx, 1);
                self.asm.alu_ri(Alu::And, Size::S32, Reg::Rax, 1);
                self.asm.alu_rr(Alu::Or, Size::S64, Reg::Rcx, Reg::Rax);
                self.asm.cvtsi2s(f, Size::S64, X0, Reg::Rcx);
                self.asm.sse_op(SseOp::Add, f, X0, X0);
                self.asm.bind(done);
            }
        }
        self.asm.movs_store(f, out, X0);
        Ok(())
    }

    fn float_convert(&mut self, from: ValType, to: ValType) -> Result<(), Declined> {
        let a = self.pop(from)?;
        let out = self.push(to);
        self.asm.movs_load(fsize(from), X0, a);
        self.asm.cvts2s(fsize(from), X0, X0);
        self.asm.movs_store(fsize(to), out, X0);
        Ok(())
    }

    /// Loads the float constant with bits `bits` into `x` (via rcx).
    fn float_const(&mut self, f: FSize, x: Xmm, value: f64) {
        let bits = match f {
            FSize::F32 => i64::from((value as f32).to_bits()),
            FSize::F64 => value.to_bits() as i64,
        };
        let s = if f == FSize::F32 { Size::S32 } else { Size::S64 };
        self.asm.mov_ri(Size::S64, Reg::Rcx, bits);
        self.asm.movd_to_xmm(s, x, Reg::Rcx);
    }

    /// The trapping float-to-integer truncations: NaN traps as a bad
    /// conversion, a value whose truncation does not fit as an overflow.
    fn float_to_int(&mut self, from: ValType, to: ValType, signed: bool) -> Result<(), Declined> {
        let a = self.pop(from)?;
        let out = self.push(to);
        let f = fsize(from);
        self.asm.movs_load(f, X0, a);
        self.asm.ucomis(f, X0, X0);
        let nan = self.trap_label(TrapCode::BadConversionToInteger);
        self.asm.jcc(Cond::P, nan);
        let overflow = self.trap_label(TrapCode::IntegerOverflow);
        let bits = if to == I32 { 32 } else { 64 };
        // The open or closed range of values whose truncation fits.
        let (low, low_inclusive, high) = match (signed, bits) {
            (true, 32) if from == F64 => (-2_147_483_649.0, false, 2_147_483_648.0),
            (true, 32) => (-2_147_483_648.0, true, 2_147_483_648.0),
            (true, _) => (-9_223_372_036_854_775_808.0, true, 9_223_372_036_854_775_808.0),
            (false, 32) => (-1.0, false, 4_294_967_296.0),
            (false, _) => (-1.0, false, 18_446_744_073_709_551_616.0),
        };
        self.float_const(f, X1, low);
        self.asm.ucomis(f, X0, X1);
        self.asm.jcc(if low_inclusive { Cond::B } else { Cond::Be }, overflow);
        self.float_const(f, X1, high);
        self.asm.ucomis(f, X0, X1);
        self.asm.jcc(Cond::Ae, overflow);
        match (signed, bits) {
            (true, 32) => self.asm.cvtts2si(f, Size::S32, Reg::Rax, X0),
            (true, _) | (false, 32) => self.asm.cvtts2si(f, Size::S64, Reg::Rax, X0),
            _ => {
                // At or above 2^63: subtract it, convert, set the top bit.
                let (big, done) = (self.asm.new_label(), self.asm.new_label());
                self.float_const(f, X1, 9_223_372_036_854_775_808.0);
                self.asm.ucomis(f, X0, X1);
                self.asm.jcc(Cond::Ae, big);
                self.asm.cvtts2si(f, Size::S64, Reg::Rax, X0);
                self.asm.jmp(done);
                self.asm.bind(big);
                self.asm.sse_op(SseOp::Sub, f, X0, X1);
                self.asm.cvtts2si(f, Size::S64, Reg::Rax, X0);
                self.asm.mov_ri(Size::S64, Reg::Rcx, i64::MIN);
                self.asm.alu_rr(Alu::Xor, Size::S64, Reg::Rax, Reg::Rcx);
                self.asm.bind(done);
            }
        }
        self.asm.store(Size::S64, out, Reg::Rax);
        Ok(())
    }
}

/// What `sign_bits` does to the sign bit.
#[derive(Clone, Copy)]
enum SignOp {
    Neg,
    Abs,
}

/// How an integer conversion makes its result from its operand's bits.
#[derive(Clone, Copy, Debug)]
enum Extend {
    /// The low 32 bits, zero-extended (`i32.wrap_i64`,
    /// `i64.extend_i32_u`).
    Low32,
    /// The low 32 bits, sign-extended to 64.
    Signed32,
    /// The low 8 bits, sign-extended to this size.
    Signed8(Size),
    /// The low 16 bits, sign-extended to this size.
    Signed16(Size),
}
