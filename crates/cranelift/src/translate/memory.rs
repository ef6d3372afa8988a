//! Linear-memory accesses and the memory instructions.
//!
//! Bounds checks: a 32-bit memory reserves `Tunables::memory_reservation`
//! (at least 4 GiB) plus `memory_guard_size` of address space that is never
//! mapped beyond the current length, and its base never moves. Any 32-bit
//! index plus a static offset that keeps `u32::MAX + offset + size` inside
//! reservation + guard therefore faults in the guard region instead of
//! touching anything else, and the access needs no explicit check: the
//! signal handler turns the fault into an out-of-bounds trap using the trap
//! table entry Cranelift records for the load or store. That needs the
//! accessible length to end on an OS page boundary, which 64 KiB wasm pages
//! guarantee and 1-byte pages (custom page sizes) do not. Every other access
//! (huge offsets, 64-bit memories, small reservations, 1-byte pages) compares
//! `index + offset + size` against the current length loaded from the
//! memory's definition and traps explicitly.

use super::env::{readonly, trusted};
use super::{FuncTranslator, Regions};
use cranelift_codegen::ir::{self, InstBuilder, MemFlagsData, Value, types};
use kiln_environ::vmoffsets::definition;
use kiln_environ::*;

/// Flags for a linear-memory access: little-endian, traps as
/// out-of-bounds, in the linear-memory alias region.
pub(crate) fn heap_flags(regions: Regions) -> MemFlagsData {
    MemFlagsData::new()
        .with_endianness(ir::Endianness::Little)
        .with_trap_code(Some(ir::TrapCode::HEAP_OUT_OF_BOUNDS))
        .with_alias_region(Some(regions.heap))
}

/// Flags for mutable runtime state (see `Regions::vmctx`).
pub(crate) fn state_flags(regions: Regions) -> MemFlagsData {
    trusted().with_alias_region(Some(regions.vmctx))
}

impl FuncTranslator<'_, '_> {
    /// Pointer to memory `m`'s definition (`base`, `current_length`), with
    /// the static offset of the definition from that pointer.
    pub(crate) fn memory_def(&mut self, m: u32) -> (Value, i32) {
        let index = MemoryIndex::from_u32(m);
        match self.module.defined_memory_index(index) {
            // A shared memory's definition lives outside any one instance;
            // its slot holds a pointer to it.
            Some(d) if self.module.memories[index.index()].shared => {
                let p =
                    self.builder.ins().load(types::I64, readonly(), self.vmctx, self.offsets.defined_memory(d) as i32);
                (p, 0)
            }
            Some(d) => (self.vmctx, self.offsets.defined_memory(d) as i32),
            None => {
                let p = self.builder.ins().load(
                    types::I64,
                    readonly(),
                    self.vmctx,
                    self.offsets.imported_memory(index) as i32,
                );
                (p, 0)
            }
        }
    }

    /// The base address of memory `m`. Memories never move in Kiln (growth
    /// stays inside the reservation), so the load can be hoisted.
    pub(crate) fn memory_base(&mut self, m: u32) -> Value {
        let (def, off) = self.memory_def(m);
        self.builder.ins().load(types::I64, readonly(), def, off + definition::BASE as i32)
    }

    /// The current length in bytes of memory `m`.
    pub(crate) fn memory_length(&mut self, m: u32) -> Value {
        let (def, off) = self.memory_def(m);
        self.builder.ins().load(types::I64, state_flags(self.regions), def, off + definition::LENGTH as i32)
    }

    /// Computes the native address for an access of `size` bytes at the
    /// popped index plus `memarg.offset`, with whatever bounds check it
    /// needs. Returns the address and a static offset to fold into the
    /// load or store.
    pub(crate) fn prepare_addr(&mut self, memarg: &wasmparser::MemArg, size: u32) -> (Value, i32) {
        let index = self.pop1();
        let m = match memarg.target {
            wasmparser::MemArgTarget::Memory(m) => m,
            wasmparser::MemArgTarget::Array(_) => unreachable!("GC arrays are not enabled"),
        };
        self.prepare_addr_for(index, m, memarg.offset, size)
    }

    pub(crate) fn prepare_addr_for(&mut self, index: Value, m: u32, offset: u64, size: u32) -> (Value, i32) {
        let mem = self.module.memories[m as usize];
        let index = if mem.memory64 { index } else { self.builder.ins().uextend(types::I64, index) };
        if !mem.memory64 && mem.page_size_log2 == 16 && self.tunables.access_needs_no_check(offset, u64::from(size)) {
            let base = self.memory_base(m);
            let addr = self.builder.ins().iadd(base, index);
            return self.fold_offset(addr, offset);
        }
        // Explicit check: index + offset + size <= current length.
        let end_offset = offset.saturating_add(u64::from(size));
        let end = if mem.memory64 {
            let k = self.builder.ins().iconst(types::I64, end_offset as i64);
            self.builder.ins().uadd_overflow_trap(index, k, ir::TrapCode::HEAP_OUT_OF_BOUNDS)
        } else {
            self.builder.ins().iadd_imm_u(index, end_offset as i64)
        };
        let len = self.memory_length(m);
        let oob = self.builder.ins().icmp(ir::condcodes::IntCC::UnsignedGreaterThan, end, len);
        self.builder.ins().trapnz(oob, ir::TrapCode::HEAP_OUT_OF_BOUNDS);
        let base = self.memory_base(m);
        let addr = self.builder.ins().iadd(base, index);
        self.fold_offset(addr, offset)
    }

    fn fold_offset(&mut self, addr: Value, offset: u64) -> (Value, i32) {
        match i32::try_from(offset) {
            Ok(o) => (addr, o),
            Err(_) => (self.builder.ins().iadd_imm_u(addr, offset as i64), 0),
        }
    }

    /// A load of `ty` (`size` bytes) followed by an optional extension.
    pub(crate) fn translate_load(&mut self, memarg: &wasmparser::MemArg, kind: LoadKind) {
        let (addr, off) = self.prepare_addr(memarg, kind.size());
        let f = heap_flags(self.regions);
        let b = &mut self.builder;
        let v = match kind {
            LoadKind::Plain(ty) => b.ins().load(ty, f, addr, off),
            LoadKind::Sext8(ty) => b.ins().sload8(ty, f, addr, off),
            LoadKind::Zext8(ty) => b.ins().uload8(ty, f, addr, off),
            LoadKind::Sext16(ty) => b.ins().sload16(ty, f, addr, off),
            LoadKind::Zext16(ty) => b.ins().uload16(ty, f, addr, off),
            LoadKind::Sext32 => b.ins().sload32(f, addr, off),
            LoadKind::Zext32 => b.ins().uload32(f, addr, off),
        };
        self.push(v);
    }

    /// A store of the popped value, truncated to `size` bytes.
    pub(crate) fn translate_store(&mut self, memarg: &wasmparser::MemArg, size: u32) {
        let v = self.pop1();
        let (addr, off) = self.prepare_addr(memarg, size);
        let f = heap_flags(self.regions);
        let full = self.builder.func.dfg.value_type(v).bytes();
        let b = &mut self.builder;
        match size {
            s if s == full => b.ins().store(f, v, addr, off),
            1 => b.ins().istore8(f, v, addr, off),
            2 => b.ins().istore16(f, v, addr, off),
            4 => b.ins().istore32(f, v, addr, off),
            _ => unreachable!("store size {size} of a {full}-byte value"),
        };
    }

    /// Extends a memory index/length operand to 64 bits.
    pub(crate) fn mem_index_to_i64(&mut self, m: u32, v: Value) -> Value {
        if self.module.memories[m as usize].memory64 { v } else { self.builder.ins().uextend(types::I64, v) }
    }

    pub(crate) fn translate_memory_size(&mut self, m: u32) {
        let len = self.memory_length(m);
        let shift = self.module.memories[m as usize].page_size_log2;
        let pages = self.builder.ins().ushr_imm_u(len, i64::from(shift));
        let v = if self.module.memories[m as usize].memory64 {
            pages
        } else {
            self.builder.ins().ireduce(types::I32, pages)
        };
        self.push(v);
    }

    pub(crate) fn translate_memory_grow(&mut self, m: u32) {
        let delta = self.pop1();
        let delta = self.mem_index_to_i64(m, delta);
        let mi = self.i32c(m);
        let r = self.call_builtin(BuiltinFunctionIndex::memory_grow, &[mi, delta]).expect("returns");
        let v = if self.module.memories[m as usize].memory64 { r } else { self.builder.ins().ireduce(types::I32, r) };
        self.push(v);
    }

    /// `memory.fill` and `memory.copy` check their ranges inline and then
    /// call `memset`/`memmove` directly (raw builtins): no stub, no lookup
    /// of the memory at run time. Out-of-range operations trap before
    /// writing anything, as bulk memory requires.
    pub(crate) fn translate_memory_fill(&mut self, m: u32) {
        let (dst, val, len) = self.pop3();
        let dst = self.mem_index_to_i64(m, dst);
        let len = self.mem_index_to_i64(m, len);
        let dst_ptr = self.checked_range(m, dst, len);
        self.call_builtin_raw(BuiltinFunctionIndex::raw_memset, &[dst_ptr, val, len]);
    }

    pub(crate) fn translate_memory_copy(&mut self, dst_m: u32, src_m: u32) {
        let (dst, src, len) = self.pop3();
        let dst = self.mem_index_to_i64(dst_m, dst);
        let src = self.mem_index_to_i64(src_m, src);
        let both64 = self.module.memories[dst_m as usize].memory64 && self.module.memories[src_m as usize].memory64;
        let len = if both64 { len } else { self.builder.ins().uextend(types::I64, len) };
        let dst_ptr = self.checked_range(dst_m, dst, len);
        let src_ptr = self.checked_range(src_m, src, len);
        self.call_builtin_raw(BuiltinFunctionIndex::raw_memmove, &[dst_ptr, src_ptr, len]);
    }

    /// Traps unless `[index, index + len)` lies inside memory `m`; returns
    /// the native address of `index`. A 32-bit memory's index and length
    /// are zero-extended, so their sum cannot overflow 64 bits.
    fn checked_range(&mut self, m: u32, index: Value, len: Value) -> Value {
        let end = if self.module.memories[m as usize].memory64 {
            self.builder.ins().uadd_overflow_trap(index, len, ir::TrapCode::HEAP_OUT_OF_BOUNDS)
        } else {
            self.builder.ins().iadd(index, len)
        };
        let bound = self.memory_length(m);
        let oob = self.builder.ins().icmp(ir::condcodes::IntCC::UnsignedGreaterThan, end, bound);
        self.builder.ins().trapnz(oob, ir::TrapCode::HEAP_OUT_OF_BOUNDS);
        let base = self.memory_base(m);
        self.builder.ins().iadd(base, index)
    }

    pub(crate) fn translate_memory_init(&mut self, data: u32, m: u32) {
        let (dst, src, len) = self.pop3();
        let dst = self.mem_index_to_i64(m, dst);
        let mi = self.i32c(m);
        let di = self.i32c(data);
        self.call_builtin(BuiltinFunctionIndex::memory_init, &[mi, di, dst, src, len]);
    }

    pub(crate) fn translate_data_drop(&mut self, data: u32) {
        let di = self.i32c(data);
        self.call_builtin(BuiltinFunctionIndex::data_drop, &[di]);
    }
}

/// The flavour of a load instruction.
#[derive(Clone, Copy)]
pub(crate) enum LoadKind {
    Plain(ir::Type),
    Sext8(ir::Type),
    Zext8(ir::Type),
    Sext16(ir::Type),
    Zext16(ir::Type),
    Sext32,
    Zext32,
}

impl LoadKind {
    fn size(self) -> u32 {
        match self {
            LoadKind::Plain(t) => t.bytes(),
            LoadKind::Sext8(_) | LoadKind::Zext8(_) => 1,
            LoadKind::Sext16(_) | LoadKind::Zext16(_) => 2,
            LoadKind::Sext32 | LoadKind::Zext32 => 4,
        }
    }
}
