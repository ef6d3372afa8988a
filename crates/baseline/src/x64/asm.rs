//! The x86-64 instruction encoder: one method per instruction form, each
//! appending its bytes to a growing code buffer.
//!
//! Jumps go to [`Label`]s; a jump to a label already bound is resolved on the
//! spot, a jump to a label bound later is recorded and patched by
//! [`Assembler::finish`]. Every jump is the fixed-size rel32 form, so code
//! never moves after it is emitted.
//!
//! Methods taking a [`Mem`] panic if it is malformed (see [`Mem`]); methods
//! taking an [`Xmm`] panic if its number is 16 or more.

/// General-purpose registers, numbered as in the encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reg {
    /// `rax`.
    Rax = 0,
    /// `rcx`.
    Rcx,
    /// `rdx`.
    Rdx,
    /// `rbx`.
    Rbx,
    /// `rsp`.
    Rsp,
    /// `rbp`.
    Rbp,
    /// `rsi`.
    Rsi,
    /// `rdi`.
    Rdi,
    /// `r8`.
    R8,
    /// `r9`.
    R9,
    /// `r10`.
    R10,
    /// `r11`.
    R11,
    /// `r12`.
    R12,
    /// `r13`.
    R13,
    /// `r14`.
    R14,
    /// `r15`.
    R15,
}

/// An SSE register xmm0..xmm15.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Xmm(pub u8);

/// Integer operand size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// 32 bits (writing a 32-bit register zeroes its upper half).
    S32,
    /// 64 bits.
    S64,
}

/// A memory operand `[base + index*scale + disp]`.
///
/// The index register cannot be `rsp` and the scale must be 1, 2, 4 or 8;
/// encoding a `Mem` that breaks either rule panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mem {
    /// The base register.
    pub base: Reg,
    /// The optional index register and its scale (1, 2, 4 or 8).
    pub index: Option<(Reg, u8)>,
    /// The displacement.
    pub disp: i32,
}

impl Mem {
    /// `[base + disp]`.
    pub fn base_disp(base: Reg, disp: i32) -> Mem {
        Mem { base, index: None, disp }
    }

    /// `[base + index*scale + disp]`.
    ///
    /// # Panics
    ///
    /// If `index` is `rsp` or `scale` is not 1, 2, 4 or 8.
    pub fn base_index(base: Reg, index: Reg, scale: u8, disp: i32) -> Mem {
        check_index(index, scale);
        Mem { base, index: Some((index, scale)), disp }
    }
}

/// Validates an index register and scale; returns the SIB scale bits.
fn check_index(index: Reg, scale: u8) -> u8 {
    assert!(index != Reg::Rsp, "x64 Mem: rsp cannot be an index register");
    match scale {
        1 => 0,
        2 => 1,
        4 => 2,
        8 => 3,
        _ => panic!("x64 Mem: scale must be 1, 2, 4 or 8, not {scale}"),
    }
}

/// Condition codes, numbered as in the encoding (jcc = 0x70+cc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    /// Overflow.
    O = 0,
    /// No overflow.
    No,
    /// Below (unsigned <, carry).
    B,
    /// Above or equal (unsigned >=, no carry).
    Ae,
    /// Equal (zero).
    E,
    /// Not equal (not zero).
    Ne,
    /// Below or equal (unsigned <=).
    Be,
    /// Above (unsigned >).
    A,
    /// Sign.
    S,
    /// No sign.
    Ns,
    /// Parity (unordered after ucomis).
    P,
    /// No parity.
    Np,
    /// Less (signed <).
    L,
    /// Greater or equal (signed >=).
    Ge,
    /// Less or equal (signed <=).
    Le,
    /// Greater (signed >).
    G,
}

impl Cond {
    const ALL: [Cond; 16] = [
        Cond::O,
        Cond::No,
        Cond::B,
        Cond::Ae,
        Cond::E,
        Cond::Ne,
        Cond::Be,
        Cond::A,
        Cond::S,
        Cond::Ns,
        Cond::P,
        Cond::Np,
        Cond::L,
        Cond::Ge,
        Cond::Le,
        Cond::G,
    ];

    /// The opposite condition (true exactly when `self` is false).
    pub fn invert(self) -> Cond {
        Cond::ALL[(self as usize) ^ 1]
    }
}

/// A position in the code, bound once, jumped to any number of times (before or after binding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(u32);

/// Two-operand integer ALU operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alu {
    /// `add`.
    Add,
    /// `or`.
    Or,
    /// `adc`.
    Adc,
    /// `sbb`.
    Sbb,
    /// `and`.
    And,
    /// `sub`.
    Sub,
    /// `xor`.
    Xor,
    /// `cmp`.
    Cmp,
}

/// Shifts and rotates by cl or imm8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shift {
    /// Rotate left.
    Rol = 0,
    /// Rotate right.
    Ror = 1,
    /// Shift left.
    Shl = 4,
    /// Logical shift right.
    Shr = 5,
    /// Arithmetic shift right.
    Sar = 7,
}

/// Scalar SSE arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SseOp {
    /// `adds*`.
    Add,
    /// `subs*`.
    Sub,
    /// `muls*`.
    Mul,
    /// `divs*`.
    Div,
    /// `mins*`.
    Min,
    /// `maxs*`.
    Max,
    /// `sqrts*`.
    Sqrt,
}

/// Scalar float width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FSize {
    /// Single precision (`ss` / `ps` forms).
    F32,
    /// Double precision (`sd` / `pd` forms).
    F64,
}

/// No mandatory prefix.
const NP: u8 = 0;

/// The mandatory prefix of a scalar SSE instruction: F3 for `ss`, F2 for `sd`.
fn scalar_prefix(f: FSize) -> u8 {
    match f {
        FSize::F32 => 0xF3,
        FSize::F64 => 0xF2,
    }
}

/// The mandatory prefix of a packed SSE instruction: none for `ps`, 66 for `pd`.
fn packed_prefix(f: FSize) -> u8 {
    match f {
        FSize::F32 => NP,
        FSize::F64 => 0x66,
    }
}

/// The register number of an xmm register.
fn xmm(x: Xmm) -> u8 {
    assert!(x.0 < 16, "x64: there is no xmm{}", x.0);
    x.0
}

/// Whether the 8-bit form of `r` needs a REX prefix (spl, bpl, sil, dil).
fn byte_needs_rex(r: Reg) -> bool {
    matches!(r, Reg::Rsp | Reg::Rbp | Reg::Rsi | Reg::Rdi)
}

/// The x86-64 assembler: a code buffer plus labels and their pending fixups.
#[derive(Debug, Default)]
pub struct Assembler {
    /// The code emitted so far.
    code: Vec<u8>,
    /// Each label's offset, once bound.
    labels: Vec<Option<u32>>,
    /// rel32 fields (jumps, `lea_label`) to labels unbound when emitted: (offset of the field, target).
    fixups: Vec<(u32, Label)>,
    /// `label_offset32` entries: (offset of the field, target, table base).
    table_fixups: Vec<(u32, Label, Label)>,
}

impl Assembler {
    /// An empty assembler.
    pub fn new() -> Assembler {
        Assembler::default()
    }

    /// An empty assembler whose code buffer has room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Assembler {
        Assembler { code: Vec::with_capacity(bytes), ..Assembler::default() }
    }

    /// The current code length, which is the offset of the next instruction.
    pub fn offset(&self) -> u32 {
        self.code.len() as u32
    }

    /// A new, unbound label.
    pub fn new_label(&mut self) -> Label {
        let l = Label(self.labels.len() as u32);
        self.labels.push(None);
        l
    }

    /// Binds `l` to the current offset.
    ///
    /// # Panics
    ///
    /// If `l` is already bound or comes from another assembler.
    pub fn bind(&mut self, l: Label) {
        let offset = self.offset();
        let slot = self.labels.get_mut(l.0 as usize).expect("x64: binding a label of another assembler");
        assert!(slot.is_none(), "x64: label {} bound twice", l.0);
        *slot = Some(offset);
    }

    /// Whether `l` has been bound.
    pub fn is_bound(&self, l: Label) -> bool {
        self.target(l).is_some()
    }

    /// The offset `l` is bound to, if any.
    fn target(&self, l: Label) -> Option<u32> {
        self.labels.get(l.0 as usize).copied().flatten()
    }

    /// Resolves every jump to a label and returns the code. Err(label index) if a jumped-to label was never bound.
    pub fn finish(mut self) -> Result<Vec<u8>, u32> {
        for &(at, l) in &self.fixups {
            let target = self.labels.get(l.0 as usize).copied().flatten().ok_or(l.0)?;
            let rel = target.wrapping_sub(at.wrapping_add(4));
            patch32(&mut self.code, at, rel);
        }
        for &(at, l, base) in &self.table_fixups {
            let target = self.labels.get(l.0 as usize).copied().flatten().ok_or(l.0)?;
            let base = self.labels.get(base.0 as usize).copied().flatten().ok_or(base.0)?;
            patch32(&mut self.code, at, target.wrapping_sub(base));
        }
        Ok(self.code)
    }

    // ---- low-level emission ----

    fn byte(&mut self, b: u8) {
        self.code.push(b);
    }

    fn imm32(&mut self, v: i32) {
        self.code.extend_from_slice(&v.to_le_bytes());
    }

    /// Emits a REX prefix built from W and the high bits of the three register numbers, if any bit
    /// is set or `force` (an 8-bit operand spl/bpl/sil/dil) asks for one.
    fn rex(&mut self, w: bool, r: u8, x: u8, b: u8, force: bool) {
        let rex = 0x40 | (u8::from(w) << 3) | ((r >> 3 & 1) << 2) | ((x >> 3 & 1) << 1) | (b >> 3 & 1);
        if rex != 0x40 || force {
            self.byte(rex);
        }
    }

    /// `[prefix] [REX] op ModRM` with a register `rm` operand.
    fn op_rr(&mut self, prefix: u8, w: bool, force_rex: bool, op: &[u8], reg: u8, rm: u8) {
        if prefix != NP {
            self.byte(prefix);
        }
        self.rex(w, reg, 0, rm, force_rex);
        self.code.extend_from_slice(op);
        self.byte(0xC0 | (reg & 7) << 3 | (rm & 7));
    }

    /// `[prefix] [REX] op ModRM [SIB] [disp]` with a memory `rm` operand.
    fn op_rm(&mut self, prefix: u8, w: bool, force_rex: bool, op: &[u8], reg: u8, m: Mem) {
        if prefix != NP {
            self.byte(prefix);
        }
        let base = m.base as u8;
        let sib_index = m.index.map(|(index, scale)| (index as u8, check_index(index, scale)));
        self.rex(w, reg, sib_index.map_or(0, |(i, _)| i), base, force_rex);
        self.code.extend_from_slice(op);
        let reg = (reg & 7) << 3;
        // rbp/r13 as base with mod 00 would mean RIP-relative / no base: they take a disp8 of 0.
        let (mode, disp_len) = if m.disp == 0 && base & 7 != 5 {
            (0x00, 0)
        } else if i8::try_from(m.disp).is_ok() {
            (0x40, 1)
        } else {
            (0x80, 4)
        };
        match sib_index {
            // rsp/r12 as base in the rm field would mean "SIB follows": they need a SIB with no index.
            None if base & 7 == 4 => {
                self.byte(mode | reg | 4);
                self.byte(0x24);
            }
            None => self.byte(mode | reg | (base & 7)),
            Some((index, scale)) => {
                self.byte(mode | reg | 4);
                self.byte(scale << 6 | (index & 7) << 3 | (base & 7));
            }
        }
        match disp_len {
            0 => {}
            1 => self.byte(m.disp as u8),
            _ => self.imm32(m.disp),
        }
    }

    /// Emits a rel32 field (the last bytes of its instruction) to `l`: resolved now if `l` is
    /// bound, else recorded for [`finish`](Self::finish).
    fn rel32(&mut self, l: Label) {
        let at = self.offset();
        match self.target(l) {
            Some(target) => self.imm32(target.wrapping_sub(at.wrapping_add(4)) as i32),
            None => {
                self.fixups.push((at, l));
                self.imm32(0);
            }
        }
    }

    // ---- moves ----

    /// `mov dst, src`.
    pub fn mov_rr(&mut self, s: Size, dst: Reg, src: Reg) {
        self.op_rr(NP, s == Size::S64, false, &[0x89], src as u8, dst as u8);
    }

    /// `mov dst, imm` in the shortest correct form. `S32` truncates `imm` to 32 bits. `S64` uses
    /// `mov r32, imm32` when `imm` fits in u32 (it zero-extends), else `mov r/m64, imm32` when it
    /// fits in i32 (sign-extended), else `movabs r64, imm64`.
    pub fn mov_ri(&mut self, s: Size, dst: Reg, imm: i64) {
        let r = dst as u8;
        if s == Size::S32 || u32::try_from(imm).is_ok() {
            self.rex(false, 0, 0, r, false);
            self.byte(0xB8 + (r & 7));
            self.code.extend_from_slice(&(imm as u32).to_le_bytes());
        } else if let Ok(imm) = i32::try_from(imm) {
            self.op_rr(NP, true, false, &[0xC7], 0, r);
            self.imm32(imm);
        } else {
            self.rex(true, 0, 0, r, false);
            self.byte(0xB8 + (r & 7));
            self.code.extend_from_slice(&imm.to_le_bytes());
        }
    }

    /// `mov dst, [m]`.
    ///
    /// # Panics
    ///
    /// If `m` is malformed (see [`Mem`]).
    pub fn load(&mut self, s: Size, dst: Reg, m: Mem) {
        self.op_rm(NP, s == Size::S64, false, &[0x8B], dst as u8, m);
    }

    /// `mov [m], src`.
    ///
    /// # Panics
    ///
    /// If `m` is malformed (see [`Mem`]).
    pub fn store(&mut self, s: Size, m: Mem, src: Reg) {
        self.op_rm(NP, s == Size::S64, false, &[0x89], src as u8, m);
    }

    /// `mov dword/qword [m], imm32` (qword: sign-extended).
    ///
    /// # Panics
    ///
    /// If `m` is malformed (see [`Mem`]).
    pub fn store_imm(&mut self, s: Size, m: Mem, imm: i32) {
        self.op_rm(NP, s == Size::S64, false, &[0xC7], 0, m);
        self.imm32(imm);
    }

    /// `movzx r32, byte [m]`.
    ///
    /// # Panics
    ///
    /// If `m` is malformed (see [`Mem`]).
    pub fn load_zx8(&mut self, dst: Reg, m: Mem) {
        self.op_rm(NP, false, false, &[0x0F, 0xB6], dst as u8, m);
    }

    /// `movzx r32, word [m]`.
    ///
    /// # Panics
    ///
    /// If `m` is malformed (see [`Mem`]).
    pub fn load_zx16(&mut self, dst: Reg, m: Mem) {
        self.op_rm(NP, false, false, &[0x0F, 0xB7], dst as u8, m);
    }

    /// `movsx r32/r64, byte [m]`.
    ///
    /// # Panics
    ///
    /// If `m` is malformed (see [`Mem`]).
    pub fn load_sx8(&mut self, s: Size, dst: Reg, m: Mem) {
        self.op_rm(NP, s == Size::S64, false, &[0x0F, 0xBE], dst as u8, m);
    }

    /// `movsx r32/r64, word [m]`.
    ///
    /// # Panics
    ///
    /// If `m` is malformed (see [`Mem`]).
    pub fn load_sx16(&mut self, s: Size, dst: Reg, m: Mem) {
        self.op_rm(NP, s == Size::S64, false, &[0x0F, 0xBF], dst as u8, m);
    }

    /// `movsxd r64, dword [m]`.
    ///
    /// # Panics
    ///
    /// If `m` is malformed (see [`Mem`]).
    pub fn load_sx32(&mut self, dst: Reg, m: Mem) {
        self.op_rm(NP, true, false, &[0x63], dst as u8, m);
    }

    /// `mov byte [m], r8`.
    ///
    /// # Panics
    ///
    /// If `m` is malformed (see [`Mem`]).
    pub fn store8(&mut self, m: Mem, src: Reg) {
        self.op_rm(NP, false, byte_needs_rex(src), &[0x88], src as u8, m);
    }

    /// `mov word [m], r16`.
    ///
    /// # Panics
    ///
    /// If `m` is malformed (see [`Mem`]).
    pub fn store16(&mut self, m: Mem, src: Reg) {
        self.op_rm(0x66, false, false, &[0x89], src as u8, m);
    }

    /// `movzx r32, r8`.
    pub fn movzx8_rr(&mut self, dst: Reg, src: Reg) {
        self.op_rr(NP, false, byte_needs_rex(src), &[0x0F, 0xB6], dst as u8, src as u8);
    }

    /// `movzx r32, r16`.
    pub fn movzx16_rr(&mut self, dst: Reg, src: Reg) {
        self.op_rr(NP, false, false, &[0x0F, 0xB7], dst as u8, src as u8);
    }

    /// `movsx r32/r64, r8`.
    pub fn movsx8_rr(&mut self, s: Size, dst: Reg, src: Reg) {
        self.op_rr(NP, s == Size::S64, byte_needs_rex(src), &[0x0F, 0xBE], dst as u8, src as u8);
    }

    /// `movsx r32/r64, r16`.
    pub fn movsx16_rr(&mut self, s: Size, dst: Reg, src: Reg) {
        self.op_rr(NP, s == Size::S64, false, &[0x0F, 0xBF], dst as u8, src as u8);
    }

    /// `movsxd r64, r32`.
    pub fn movsxd_rr(&mut self, dst: Reg, src: Reg) {
        self.op_rr(NP, true, false, &[0x63], dst as u8, src as u8);
    }

    /// `lea r64, [m]`.
    ///
    /// # Panics
    ///
    /// If `m` is malformed (see [`Mem`]).
    pub fn lea(&mut self, dst: Reg, m: Mem) {
        self.op_rm(NP, true, false, &[0x8D], dst as u8, m);
    }

    /// `lea r64, [rip + label]`.
    pub fn lea_label(&mut self, dst: Reg, l: Label) {
        let r = dst as u8;
        self.rex(true, r, 0, 0, false);
        self.byte(0x8D);
        self.byte((r & 7) << 3 | 5);
        self.rel32(l);
    }

    // ---- integer ALU ----

    /// `op dst, src`.
    pub fn alu_rr(&mut self, op: Alu, s: Size, dst: Reg, src: Reg) {
        self.op_rr(NP, s == Size::S64, false, &[(op as u8) << 3 | 1], src as u8, dst as u8);
    }

    /// `op dst, imm` (sign-extended imm8 form when `imm` fits in i8, else imm32).
    pub fn alu_ri(&mut self, op: Alu, s: Size, dst: Reg, imm: i32) {
        if let Ok(imm8) = i8::try_from(imm) {
            self.op_rr(NP, s == Size::S64, false, &[0x83], op as u8, dst as u8);
            self.byte(imm8 as u8);
        } else {
            self.op_rr(NP, s == Size::S64, false, &[0x81], op as u8, dst as u8);
            self.imm32(imm);
        }
    }

    /// `op [m], imm` (sign-extended imm8 form when `imm` fits in i8, else
    /// imm32).
    ///
    /// # Panics
    ///
    /// If `m` is malformed (see [`Mem`]).
    pub fn alu_mi(&mut self, op: Alu, s: Size, m: Mem, imm: i32) {
        if let Ok(imm8) = i8::try_from(imm) {
            self.op_rm(NP, s == Size::S64, false, &[0x83], op as u8, m);
            self.byte(imm8 as u8);
        } else {
            self.op_rm(NP, s == Size::S64, false, &[0x81], op as u8, m);
            self.imm32(imm);
        }
    }

    /// `op dst, [m]`.
    ///
    /// # Panics
    ///
    /// If `m` is malformed (see [`Mem`]).
    pub fn alu_rm(&mut self, op: Alu, s: Size, dst: Reg, m: Mem) {
        self.op_rm(NP, s == Size::S64, false, &[(op as u8) << 3 | 3], dst as u8, m);
    }

    /// `test a, b`.
    pub fn test_rr(&mut self, s: Size, a: Reg, b: Reg) {
        self.op_rr(NP, s == Size::S64, false, &[0x85], b as u8, a as u8);
    }

    /// `imul dst, src`.
    pub fn imul_rr(&mut self, s: Size, dst: Reg, src: Reg) {
        self.op_rr(NP, s == Size::S64, false, &[0x0F, 0xAF], dst as u8, src as u8);
    }

    /// `imul dst, src, imm32`.
    pub fn imul_rri(&mut self, s: Size, dst: Reg, src: Reg, imm: i32) {
        self.op_rr(NP, s == Size::S64, false, &[0x69], dst as u8, src as u8);
        self.imm32(imm);
    }

    /// `neg r`.
    pub fn neg(&mut self, s: Size, r: Reg) {
        self.op_rr(NP, s == Size::S64, false, &[0xF7], 3, r as u8);
    }

    /// `not r`.
    pub fn not(&mut self, s: Size, r: Reg) {
        self.op_rr(NP, s == Size::S64, false, &[0xF7], 2, r as u8);
    }

    /// `div src` or `idiv src`: divides edx:eax / rdx:rax, quotient to eax/rax, remainder to edx/rdx.
    pub fn div(&mut self, s: Size, signed: bool, src: Reg) {
        self.op_rr(NP, s == Size::S64, false, &[0xF7], if signed { 7 } else { 6 }, src as u8);
    }

    /// `cdq` (S32) or `cqo` (S64): sign-extends eax/rax into edx/rdx.
    pub fn cdq_cqo(&mut self, s: Size) {
        if s == Size::S64 {
            self.byte(0x48);
        }
        self.byte(0x99);
    }

    /// `op r, cl`.
    pub fn shift_cl(&mut self, op: Shift, s: Size, r: Reg) {
        self.op_rr(NP, s == Size::S64, false, &[0xD3], op as u8, r as u8);
    }

    /// `op r, imm8`.
    pub fn shift_ri(&mut self, op: Shift, s: Size, r: Reg, imm: u8) {
        self.op_rr(NP, s == Size::S64, false, &[0xC1], op as u8, r as u8);
        self.byte(imm);
    }

    /// `lzcnt dst, src`.
    pub fn lzcnt(&mut self, s: Size, dst: Reg, src: Reg) {
        self.op_rr(0xF3, s == Size::S64, false, &[0x0F, 0xBD], dst as u8, src as u8);
    }

    /// `tzcnt dst, src`.
    pub fn tzcnt(&mut self, s: Size, dst: Reg, src: Reg) {
        self.op_rr(0xF3, s == Size::S64, false, &[0x0F, 0xBC], dst as u8, src as u8);
    }

    /// `popcnt dst, src`.
    pub fn popcnt(&mut self, s: Size, dst: Reg, src: Reg) {
        self.op_rr(0xF3, s == Size::S64, false, &[0x0F, 0xB8], dst as u8, src as u8);
    }

    /// `setcc r8` (writes only the low byte of `dst`).
    pub fn setcc(&mut self, c: Cond, dst: Reg) {
        self.op_rr(NP, false, byte_needs_rex(dst), &[0x0F, 0x90 | c as u8], 0, dst as u8);
    }

    /// `cmovcc dst, src`.
    pub fn cmovcc(&mut self, c: Cond, s: Size, dst: Reg, src: Reg) {
        self.op_rr(NP, s == Size::S64, false, &[0x0F, 0x40 | c as u8], dst as u8, src as u8);
    }

    /// `push r` (64-bit).
    pub fn push(&mut self, r: Reg) {
        self.rex(false, 0, 0, r as u8, false);
        self.byte(0x50 + (r as u8 & 7));
    }

    /// `pop r` (64-bit).
    pub fn pop(&mut self, r: Reg) {
        self.rex(false, 0, 0, r as u8, false);
        self.byte(0x58 + (r as u8 & 7));
    }

    // ---- control ----

    /// `jmp rel32` to `l`.
    pub fn jmp(&mut self, l: Label) {
        self.byte(0xE9);
        self.rel32(l);
    }

    /// `jcc rel32` to `l`.
    pub fn jcc(&mut self, c: Cond, l: Label) {
        self.byte(0x0F);
        self.byte(0x80 | c as u8);
        self.rel32(l);
    }

    /// `jmp r` (64-bit).
    pub fn jmp_reg(&mut self, r: Reg) {
        self.op_rr(NP, false, false, &[0xFF], 4, r as u8);
    }

    /// `jmp qword [m]`.
    ///
    /// # Panics
    ///
    /// If `m` is malformed (see [`Mem`]).
    pub fn jmp_mem(&mut self, m: Mem) {
        self.op_rm(NP, false, false, &[0xFF], 4, m);
    }

    /// `call rel32` with a zero displacement; returns the offset of the 4 displacement bytes (the caller records a relocation there).
    pub fn call_rel32(&mut self) -> u32 {
        self.byte(0xE8);
        let at = self.offset();
        self.imm32(0);
        at
    }

    /// `call r` (64-bit).
    pub fn call_reg(&mut self, r: Reg) {
        self.op_rr(NP, false, false, &[0xFF], 2, r as u8);
    }

    /// `call qword [m]`.
    ///
    /// # Panics
    ///
    /// If `m` is malformed (see [`Mem`]).
    pub fn call_mem(&mut self, m: Mem) {
        self.op_rm(NP, false, false, &[0xFF], 2, m);
    }

    /// `ret`.
    pub fn ret(&mut self) {
        self.byte(0xC3);
    }

    /// `ud2`.
    pub fn ud2(&mut self) {
        self.code.extend_from_slice(&[0x0F, 0x0B]);
    }

    /// `int3`.
    pub fn int3(&mut self) {
        self.byte(0xCC);
    }

    /// Emits a label's address-table entry: 4 bytes holding (label - table_base) where table_base is a label bound at the table's start (for br_table jump tables: lea base; movsxd; add; jmp). Resolved at finish().
    pub fn label_offset32(&mut self, l: Label, table_base: Label) {
        let at = self.offset();
        self.table_fixups.push((at, l, table_base));
        self.imm32(0);
    }

    /// Raw bytes (e.g. alignment padding).
    pub fn bytes(&mut self, b: &[u8]) {
        self.code.extend_from_slice(b);
    }

    /// Pads with int3 (0xCC) up to a multiple of `to` bytes (0 and 1 do nothing).
    pub fn align(&mut self, to: u32) {
        if to > 1 {
            let pad = (to - self.offset() % to) % to;
            self.code.resize(self.code.len() + pad as usize, 0xCC);
        }
    }

    // ---- SSE scalar ----

    /// `movaps dst, src` (F32) or `movapd dst, src` (F64): copies the whole register, which avoids
    /// the false dependency of `movss`/`movsd` between registers.
    ///
    /// # Panics
    ///
    /// If an xmm number is 16 or more.
    pub fn movs_rr(&mut self, f: FSize, dst: Xmm, src: Xmm) {
        self.op_rr(packed_prefix(f), false, false, &[0x0F, 0x28], xmm(dst), xmm(src));
    }

    /// `movss/movsd dst, [m]`.
    ///
    /// # Panics
    ///
    /// If `m` is malformed (see [`Mem`]) or the xmm number is 16 or more.
    pub fn movs_load(&mut self, f: FSize, dst: Xmm, m: Mem) {
        self.op_rm(scalar_prefix(f), false, false, &[0x0F, 0x10], xmm(dst), m);
    }

    /// `movss/movsd [m], src`.
    ///
    /// # Panics
    ///
    /// If `m` is malformed (see [`Mem`]) or the xmm number is 16 or more.
    pub fn movs_store(&mut self, f: FSize, m: Mem, src: Xmm) {
        self.op_rm(scalar_prefix(f), false, false, &[0x0F, 0x11], xmm(src), m);
    }

    /// `movd xmm, r32` (S32) or `movq xmm, r64` (S64).
    ///
    /// # Panics
    ///
    /// If the xmm number is 16 or more.
    pub fn movd_to_xmm(&mut self, s: Size, dst: Xmm, src: Reg) {
        self.op_rr(0x66, s == Size::S64, false, &[0x0F, 0x6E], xmm(dst), src as u8);
    }

    /// `movd r32, xmm` (S32) or `movq r64, xmm` (S64).
    ///
    /// # Panics
    ///
    /// If the xmm number is 16 or more.
    pub fn movd_from_xmm(&mut self, s: Size, dst: Reg, src: Xmm) {
        self.op_rr(0x66, s == Size::S64, false, &[0x0F, 0x7E], xmm(src), dst as u8);
    }

    /// `adds*`, `subs*`, `muls*`, `divs*`, `mins*`, `maxs*` or `sqrts*` `dst, src`.
    ///
    /// # Panics
    ///
    /// If an xmm number is 16 or more.
    pub fn sse_op(&mut self, op: SseOp, f: FSize, dst: Xmm, src: Xmm) {
        let opcode = match op {
            SseOp::Add => 0x58,
            SseOp::Sub => 0x5C,
            SseOp::Mul => 0x59,
            SseOp::Div => 0x5E,
            SseOp::Min => 0x5D,
            SseOp::Max => 0x5F,
            SseOp::Sqrt => 0x51,
        };
        self.op_rr(scalar_prefix(f), false, false, &[0x0F, opcode], xmm(dst), xmm(src));
    }

    /// `ucomiss/ucomisd a, b`.
    ///
    /// # Panics
    ///
    /// If an xmm number is 16 or more.
    pub fn ucomis(&mut self, f: FSize, a: Xmm, b: Xmm) {
        self.op_rr(packed_prefix(f), false, false, &[0x0F, 0x2E], xmm(a), xmm(b));
    }

    /// `cvtsi2ss/cvtsi2sd dst, r32/r64`.
    ///
    /// # Panics
    ///
    /// If the xmm number is 16 or more.
    pub fn cvtsi2s(&mut self, f: FSize, s: Size, dst: Xmm, src: Reg) {
        self.op_rr(scalar_prefix(f), s == Size::S64, false, &[0x0F, 0x2A], xmm(dst), src as u8);
    }

    /// `cvttss2si/cvttsd2si r32/r64, src`.
    ///
    /// # Panics
    ///
    /// If the xmm number is 16 or more.
    pub fn cvtts2si(&mut self, f: FSize, s: Size, dst: Reg, src: Xmm) {
        self.op_rr(scalar_prefix(f), s == Size::S64, false, &[0x0F, 0x2C], dst as u8, xmm(src));
    }

    /// `cvtss2sd` (from F32) or `cvtsd2ss` (from F64) `dst, src`.
    ///
    /// # Panics
    ///
    /// If an xmm number is 16 or more.
    pub fn cvts2s(&mut self, from: FSize, dst: Xmm, src: Xmm) {
        self.op_rr(scalar_prefix(from), false, false, &[0x0F, 0x5A], xmm(dst), xmm(src));
    }

    /// SSE4.1 `roundss/roundsd dst, src, mode`.
    ///
    /// # Panics
    ///
    /// If an xmm number is 16 or more.
    pub fn rounds(&mut self, f: FSize, dst: Xmm, src: Xmm, mode: u8) {
        let opcode = match f {
            FSize::F32 => 0x0A,
            FSize::F64 => 0x0B,
        };
        self.op_rr(0x66, false, false, &[0x0F, 0x3A, opcode], xmm(dst), xmm(src));
        self.byte(mode);
    }

    /// `andps/andpd dst, src`.
    ///
    /// # Panics
    ///
    /// If an xmm number is 16 or more.
    pub fn andp(&mut self, f: FSize, dst: Xmm, src: Xmm) {
        self.op_rr(packed_prefix(f), false, false, &[0x0F, 0x54], xmm(dst), xmm(src));
    }

    /// `andnps/andnpd dst, src` (dst = !dst & src).
    ///
    /// # Panics
    ///
    /// If an xmm number is 16 or more.
    pub fn andnp(&mut self, f: FSize, dst: Xmm, src: Xmm) {
        self.op_rr(packed_prefix(f), false, false, &[0x0F, 0x55], xmm(dst), xmm(src));
    }

    /// `orps/orpd dst, src`.
    ///
    /// # Panics
    ///
    /// If an xmm number is 16 or more.
    pub fn orp(&mut self, f: FSize, dst: Xmm, src: Xmm) {
        self.op_rr(packed_prefix(f), false, false, &[0x0F, 0x56], xmm(dst), xmm(src));
    }

    /// `xorps/xorpd dst, src`.
    ///
    /// # Panics
    ///
    /// If an xmm number is 16 or more.
    pub fn xorp(&mut self, f: FSize, dst: Xmm, src: Xmm) {
        self.op_rr(packed_prefix(f), false, false, &[0x0F, 0x57], xmm(dst), xmm(src));
    }
}

/// Writes a little-endian u32 at `at`.
fn patch32(code: &mut [u8], at: u32, v: u32) {
    let at = at as usize;
    code[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
