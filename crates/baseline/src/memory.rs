//! Linear memory and globals: addresses with the bounds checks the
//! reservation does not make unnecessary, loads, stores, `memory.size`,
//! `global.get` and `global.set`.

use crate::compiler::{Codegen, Declined, LOCAL_REGS, Src, decline};
use crate::frame::{VMCTX, ValType};
use crate::x64::asm::{Alu, Cond, Mem, Reg, Shift, Size};
use kiln_environ::vmoffsets::definition;
use kiln_environ::{GlobalIndex, MemoryIndex, TrapCode};
use wasmparser::MemArg;

/// How a load reads its bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Load {
    /// 4 bytes (an `i32` or the bits of an `f32`).
    B32,
    /// 8 bytes.
    B64,
    /// 1 byte, sign- or zero-extended to 32 or 64 bits.
    B8 { signed: bool, to: Size },
    /// 2 bytes, likewise.
    B16 { signed: bool, to: Size },
    /// 4 bytes, sign- or zero-extended to 64 bits.
    B32To64 { signed: bool },
}

impl Load {
    fn bytes(self) -> u32 {
        match self {
            Load::B8 { .. } => 1,
            Load::B16 { .. } => 2,
            Load::B32 | Load::B32To64 { .. } => 4,
            Load::B64 => 8,
        }
    }
}

impl Codegen<'_> {
    /// Pops the address operand of an access of `bytes` bytes and returns
    /// the memory operand to access, after any bounds check. Uses rax,
    /// rcx and rdx.
    fn address(&mut self, memarg: &MemArg, bytes: u32) -> Result<Mem, Declined> {
        let index = self.pop_src(ValType::I32)?;
        let m = match memarg.target {
            wasmparser::MemArgTarget::Memory(m) => m,
            _ => return decline("an access to something other than a linear memory"),
        };
        let Some(mem) = self.module.memories.get(m as usize).copied() else {
            return decline("memory index out of range");
        };
        if mem.memory64 {
            return decline("64-bit memory");
        }
        let offset = memarg.offset;
        let checked = !(mem.page_size_log2 == 16 && self.tunables.access_needs_no_check(offset, u64::from(bytes)));
        let pinned = m == 0 && self.heap_base;
        let (def, def_off) = if checked || !pinned { self.memory_definition(m)? } else { (Reg::Rdx, 0) };
        // An `i32` local's register has a zero upper half (see
        // `LOCAL_REGS`): with no check to make, it is the index as it is.
        let direct = match index {
            Src::Reg(r) if !checked && LOCAL_REGS.contains(&r) && i32::try_from(offset).is_ok() => Some(r),
            _ => None,
        };
        let at = match direct {
            Some(r) => r,
            None => {
                self.load_src(Size::S32, Reg::Rax, index);
                Reg::Rax
            }
        };
        if checked {
            let end = offset.saturating_add(u64::from(bytes));
            match i32::try_from(end) {
                Ok(e) => self.asm.lea(Reg::Rcx, Mem::base_disp(Reg::Rax, e)),
                Err(_) => {
                    self.asm.mov_ri(Size::S64, Reg::Rcx, end as i64);
                    self.asm.alu_rr(Alu::Add, Size::S64, Reg::Rcx, Reg::Rax);
                }
            }
            self.asm.alu_rm(Alu::Cmp, Size::S64, Reg::Rcx, Mem::base_disp(def, def_off + definition::LENGTH as i32));
            let oob = self.trap_label(TrapCode::MemoryOutOfBounds);
            self.asm.jcc(Cond::A, oob);
        }
        let base = if pinned {
            self.heap_base_used = true;
            crate::compiler::HEAP_BASE
        } else {
            self.asm.load(Size::S64, Reg::Rdx, Mem::base_disp(def, def_off + definition::BASE as i32));
            Reg::Rdx
        };
        match i32::try_from(offset) {
            Ok(o) => Ok(Mem::base_index(base, at, 1, o)),
            Err(_) => {
                self.asm.mov_ri(Size::S64, Reg::Rcx, offset as i64);
                self.asm.alu_rr(Alu::Add, Size::S64, Reg::Rax, Reg::Rcx);
                Ok(Mem::base_index(base, Reg::Rax, 1, 0))
            }
        }
    }

    /// Loads into rdx the pointer that memory `m`'s definition (`base`,
    /// `length`) is at the returned offset from.
    pub(crate) fn memory_definition(&mut self, m: u32) -> Result<(Reg, i32), Declined> {
        let index = MemoryIndex::from_u32(m);
        self.asm.load(Size::S64, Reg::Rdx, VMCTX);
        let shared = self.module.memories.get(m as usize).is_some_and(|t| t.shared);
        match self.module.defined_memory_index(index) {
            Some(d) if !shared => Ok((Reg::Rdx, self.offsets.defined_memory(d) as i32)),
            Some(d) => {
                self.load_definition_pointer(self.offsets.defined_memory(d) as i32);
                Ok((Reg::Rdx, 0))
            }
            None => {
                self.load_definition_pointer(self.offsets.imported_memory(index) as i32);
                Ok((Reg::Rdx, 0))
            }
        }
    }

    fn load_definition_pointer(&mut self, vmctx_offset: i32) {
        self.asm.load(Size::S64, Reg::Rdx, Mem::base_disp(Reg::Rdx, vmctx_offset));
    }

    /// A load producing a value of type `t`.
    pub(crate) fn load(&mut self, memarg: &MemArg, kind: Load, t: ValType) -> Result<(), Declined> {
        let at = self.address(memarg, kind.bytes())?;
        // Straight into the register the result stays in (chosen before
        // the trap site, which is the load itself).
        let dst = self.free_result_reg();
        self.trap_here(TrapCode::MemoryOutOfBounds);
        let a = &mut self.asm;
        match kind {
            Load::B32 => a.load(Size::S32, dst, at),
            Load::B64 => a.load(Size::S64, dst, at),
            Load::B8 { signed: true, to } => a.load_sx8(to, dst, at),
            Load::B8 { signed: false, .. } => a.load_zx8(dst, at),
            Load::B16 { signed: true, to } => a.load_sx16(to, dst, at),
            Load::B16 { signed: false, .. } => a.load_zx16(dst, at),
            Load::B32To64 { signed: true } => a.load_sx32(dst, at),
            Load::B32To64 { signed: false } => a.load(Size::S32, dst, at),
        }
        // Float bits too: whatever reads them as a float takes them from
        // the slot, where `pop` stores them first.
        self.push_reg(t, dst);
        Ok(())
    }

    /// A store of the low `bytes` bytes of a value of type `t`.
    /// A value in a register is stored from there, a constant as an
    /// immediate.
    pub(crate) fn store(&mut self, memarg: &MemArg, bytes: u32, t: ValType) -> Result<(), Declined> {
        let imm = self.pop_imm(t);
        let value = match imm {
            Some(_) => None,
            // (A wide constant in r8, which the address leaves alone.)
            None => Some(self.pop_src_or_const(t, Reg::R8)?),
        };
        let at = self.address(memarg, bytes)?;
        let src = match value {
            Some(v) => self.in_reg(Size::S64, Reg::R8, v),
            None if bytes >= 4 => {
                let s = if bytes == 4 { Size::S32 } else { Size::S64 };
                self.trap_here(TrapCode::MemoryOutOfBounds);
                self.asm.store_imm(s, at, imm.unwrap_or_default());
                return Ok(());
            }
            None => {
                self.asm.mov_ri(Size::S32, Reg::R8, i64::from(imm.unwrap_or_default()));
                Reg::R8
            }
        };
        self.trap_here(TrapCode::MemoryOutOfBounds);
        match bytes {
            1 => self.asm.store8(at, src),
            2 => self.asm.store16(at, src),
            4 => self.asm.store(Size::S32, at, src),
            _ => self.asm.store(Size::S64, at, src),
        }
        Ok(())
    }

    /// `memory.size`.
    pub(crate) fn memory_size(&mut self, m: u32) -> Result<(), Declined> {
        let Some(mem) = self.module.memories.get(m as usize).copied() else {
            return decline("memory index out of range");
        };
        if mem.memory64 {
            return decline("64-bit memory");
        }
        let (def, off) = self.memory_definition(m)?;
        self.asm.load(Size::S64, Reg::Rax, Mem::base_disp(def, off + definition::LENGTH as i32));
        self.asm.shift_ri(Shift::Shr, Size::S64, Reg::Rax, mem.page_size_log2);
        let out = self.push(ValType::I32);
        self.asm.store(Size::S32, out, Reg::Rax);
        Ok(())
    }

    /// Loads into rdx the address of global `g`'s value, returning its type.
    fn global_address(&mut self, g: u32) -> Result<(Mem, ValType), Declined> {
        let Some(gt) = self.module.globals.get(g as usize).copied() else {
            return decline("global index out of range");
        };
        let Some(t) = ValType::from_wasm(gt.content) else { return decline("a global of a reference type") };
        let index = GlobalIndex::from_u32(g);
        self.asm.load(Size::S64, Reg::Rdx, VMCTX);
        match self.module.defined_global_index(index) {
            Some(d) => Ok((Mem::base_disp(Reg::Rdx, self.offsets.defined_global(d) as i32), t)),
            None => {
                self.asm.load(
                    Size::S64,
                    Reg::Rdx,
                    Mem::base_disp(Reg::Rdx, self.offsets.imported_global(index) as i32),
                );
                Ok((Mem::base_disp(Reg::Rdx, 0), t))
            }
        }
    }

    /// `global.get`.
    /// An integer's value is left in the result register (see
    /// `Codegen::push_reg`).
    pub(crate) fn global_get(&mut self, g: u32) -> Result<(), Declined> {
        let (at, t) = self.global_address(g)?;
        if t.is_float() {
            self.asm.load(width(t), Reg::Rax, at);
            let out = self.push(t);
            self.asm.store(Size::S64, out, Reg::Rax);
        } else {
            let dst = self.free_result_reg();
            self.asm.load(width(t), dst, at);
            self.push_reg(t, dst);
        }
        Ok(())
    }

    /// `global.set`.
    /// A constant is stored as an immediate, a value in a register
    /// straight from there.
    pub(crate) fn global_set(&mut self, g: u32) -> Result<(), Declined> {
        let (at, t) = self.global_address(g)?;
        if let Some(imm) = self.pop_imm(t) {
            self.asm.store_imm(width(t), at, imm);
            return Ok(());
        }
        match self.pop_src(t)? {
            Src::Reg(r) => self.asm.store(width(t), at, r),
            Src::Mem(value) => {
                self.asm.load(Size::S64, Reg::Rax, value);
                self.asm.store(width(t), at, Reg::Rax);
            }
        }
        Ok(())
    }
}

/// The width of a value's bits.
pub(crate) fn width(t: ValType) -> Size {
    match t {
        ValType::I32 | ValType::F32 => Size::S32,
        ValType::I64 | ValType::F64 => Size::S64,
    }
}
