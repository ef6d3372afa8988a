//! The threads proposal's atomic operators.
//!
//! Every atomic access checks alignment before bounds, as the spec orders:
//! the effective address `index + offset` is tested for misalignment (trap
//! "unaligned atomic"), then the access is bounds-checked like any other
//! (guard pages or an explicit check), then performed with a sequentially
//! consistent Cranelift atomic instruction. Narrow accesses zero-extend
//! their results.

use super::FuncTranslator;
use super::memory::heap_flags;
use crate::trap_codes::to_clif;
use cranelift_codegen::ir::{AtomicRmwOp, InstBuilder, Type, Value, types::*};
use kiln_environ::{BuiltinFunctionIndex, TrapCode, WasmResult};
use wasmparser::{MemArg, Operator};

fn memory_of(memarg: &MemArg) -> u32 {
    match memarg.target {
        wasmparser::MemArgTarget::Memory(m) => m,
        wasmparser::MemArgTarget::Array(_) => unreachable!("GC arrays are not enabled"),
    }
}

impl FuncTranslator<'_, '_> {
    /// The effective address `index + offset` as an i64 (trapping as out of
    /// bounds if it overflows, for 64-bit memories).
    fn effective_address(&mut self, m: u32, index: Value, offset: u64) -> Value {
        let mem = self.module.memories[m as usize];
        let index = if mem.memory64 { index } else { self.builder.ins().uextend(I64, index) };
        if offset == 0 {
            return index;
        }
        let k = self.builder.ins().iconst(I64, offset as i64);
        if mem.memory64 {
            self.builder.ins().uadd_overflow_trap(index, k, to_clif(TrapCode::MemoryOutOfBounds))
        } else {
            self.builder.ins().iadd(index, k)
        }
    }

    fn check_alignment(&mut self, ea: Value, size: u32) {
        if size > 1 {
            let low = self.builder.ins().band_imm_u(ea, i64::from(size - 1));
            self.builder.ins().trapnz(low, to_clif(TrapCode::HeapMisaligned));
        }
    }

    /// Pops the index and returns the native address of a checked atomic
    /// access of `size` bytes.
    fn atomic_addr(&mut self, memarg: &MemArg, size: u32) -> Value {
        let index = self.pop1();
        let m = memory_of(memarg);
        let ea = self.effective_address(m, index, memarg.offset);
        self.check_alignment(ea, size);
        let (addr, off) = self.prepare_addr_for(index, m, memarg.offset, size);
        if off == 0 { addr } else { self.builder.ins().iadd_imm_s(addr, i64::from(off)) }
    }

    fn atomic_load(&mut self, memarg: &MemArg, access: Type, result: Type) {
        let addr = self.atomic_addr(memarg, access.bytes());
        let v = self.builder.ins().atomic_load(access, heap_flags(self.regions), addr);
        let v = if access == result { v } else { self.builder.ins().uextend(result, v) };
        self.push(v);
    }

    fn atomic_store(&mut self, memarg: &MemArg, access: Type) {
        let v = self.pop1();
        let addr = self.atomic_addr(memarg, access.bytes());
        let v = if self.builder.func.dfg.value_type(v) == access { v } else { self.builder.ins().ireduce(access, v) };
        self.builder.ins().atomic_store(heap_flags(self.regions), v, addr);
    }

    fn atomic_rmw(&mut self, memarg: &MemArg, access: Type, result: Type, op: AtomicRmwOp) {
        let v = self.pop1();
        let addr = self.atomic_addr(memarg, access.bytes());
        let v = if access == result { v } else { self.builder.ins().ireduce(access, v) };
        let old = self.builder.ins().atomic_rmw(access, heap_flags(self.regions), op, addr, v);
        let old = if access == result { old } else { self.builder.ins().uextend(result, old) };
        self.push(old);
    }

    fn atomic_cmpxchg(&mut self, memarg: &MemArg, access: Type, result: Type) {
        let (expected, replacement) = self.pop2();
        let addr = self.atomic_addr(memarg, access.bytes());
        let old = if access == result {
            self.builder.ins().atomic_cas(heap_flags(self.regions), addr, expected, replacement)
        } else {
            // Narrow forms wrap both operands to the access width.
            let narrow_expected = self.builder.ins().ireduce(access, expected);
            let narrow_replacement = self.builder.ins().ireduce(access, replacement);
            let old =
                self.builder.ins().atomic_cas(heap_flags(self.regions), addr, narrow_expected, narrow_replacement);
            self.builder.ins().uextend(result, old)
        };
        self.push(old);
    }

    fn atomic_notify(&mut self, memarg: &MemArg) {
        let count = self.pop1();
        let index = self.pop1();
        let m = memory_of(memarg);
        let ea = self.effective_address(m, index, memarg.offset);
        let mi = self.i32c(m);
        let r = self.call_builtin(BuiltinFunctionIndex::memory_atomic_notify, &[mi, ea, count]).expect("returns");
        self.push(r);
    }

    fn atomic_wait(&mut self, memarg: &MemArg, wide: bool) {
        let (expected, timeout) = self.pop2();
        let index = self.pop1();
        let m = memory_of(memarg);
        let ea = self.effective_address(m, index, memarg.offset);
        let mi = self.i32c(m);
        let f =
            if wide { BuiltinFunctionIndex::memory_atomic_wait64 } else { BuiltinFunctionIndex::memory_atomic_wait32 };
        let r = self.call_builtin(f, &[mi, ea, expected, timeout]).expect("returns");
        self.push(r);
    }

    /// Translates `op` if it is an atomic operator; `None` otherwise.
    pub(crate) fn translate_atomic_operator(&mut self, op: &Operator<'_>) -> Option<WasmResult<()>> {
        use AtomicRmwOp as R;
        use Operator as O;
        match op {
            O::AtomicFence { .. } => {
                self.builder.ins().fence();
            }
            O::MemoryAtomicNotify { memarg } => self.atomic_notify(memarg),
            O::MemoryAtomicWait32 { memarg } => self.atomic_wait(memarg, false),
            O::MemoryAtomicWait64 { memarg } => self.atomic_wait(memarg, true),

            O::I32AtomicLoad { memarg } => self.atomic_load(memarg, I32, I32),
            O::I64AtomicLoad { memarg } => self.atomic_load(memarg, I64, I64),
            O::I32AtomicLoad8U { memarg } => self.atomic_load(memarg, I8, I32),
            O::I32AtomicLoad16U { memarg } => self.atomic_load(memarg, I16, I32),
            O::I64AtomicLoad8U { memarg } => self.atomic_load(memarg, I8, I64),
            O::I64AtomicLoad16U { memarg } => self.atomic_load(memarg, I16, I64),
            O::I64AtomicLoad32U { memarg } => self.atomic_load(memarg, I32, I64),

            O::I32AtomicStore { memarg } => self.atomic_store(memarg, I32),
            O::I64AtomicStore { memarg } => self.atomic_store(memarg, I64),
            O::I32AtomicStore8 { memarg } | O::I64AtomicStore8 { memarg } => self.atomic_store(memarg, I8),
            O::I32AtomicStore16 { memarg } | O::I64AtomicStore16 { memarg } => self.atomic_store(memarg, I16),
            O::I64AtomicStore32 { memarg } => self.atomic_store(memarg, I32),

            O::I32AtomicRmwAdd { memarg } => self.atomic_rmw(memarg, I32, I32, R::Add),
            O::I64AtomicRmwAdd { memarg } => self.atomic_rmw(memarg, I64, I64, R::Add),
            O::I32AtomicRmw8AddU { memarg } => self.atomic_rmw(memarg, I8, I32, R::Add),
            O::I32AtomicRmw16AddU { memarg } => self.atomic_rmw(memarg, I16, I32, R::Add),
            O::I64AtomicRmw8AddU { memarg } => self.atomic_rmw(memarg, I8, I64, R::Add),
            O::I64AtomicRmw16AddU { memarg } => self.atomic_rmw(memarg, I16, I64, R::Add),
            O::I64AtomicRmw32AddU { memarg } => self.atomic_rmw(memarg, I32, I64, R::Add),

            O::I32AtomicRmwSub { memarg } => self.atomic_rmw(memarg, I32, I32, R::Sub),
            O::I64AtomicRmwSub { memarg } => self.atomic_rmw(memarg, I64, I64, R::Sub),
            O::I32AtomicRmw8SubU { memarg } => self.atomic_rmw(memarg, I8, I32, R::Sub),
            O::I32AtomicRmw16SubU { memarg } => self.atomic_rmw(memarg, I16, I32, R::Sub),
            O::I64AtomicRmw8SubU { memarg } => self.atomic_rmw(memarg, I8, I64, R::Sub),
            O::I64AtomicRmw16SubU { memarg } => self.atomic_rmw(memarg, I16, I64, R::Sub),
            O::I64AtomicRmw32SubU { memarg } => self.atomic_rmw(memarg, I32, I64, R::Sub),

            O::I32AtomicRmwAnd { memarg } => self.atomic_rmw(memarg, I32, I32, R::And),
            O::I64AtomicRmwAnd { memarg } => self.atomic_rmw(memarg, I64, I64, R::And),
            O::I32AtomicRmw8AndU { memarg } => self.atomic_rmw(memarg, I8, I32, R::And),
            O::I32AtomicRmw16AndU { memarg } => self.atomic_rmw(memarg, I16, I32, R::And),
            O::I64AtomicRmw8AndU { memarg } => self.atomic_rmw(memarg, I8, I64, R::And),
            O::I64AtomicRmw16AndU { memarg } => self.atomic_rmw(memarg, I16, I64, R::And),
            O::I64AtomicRmw32AndU { memarg } => self.atomic_rmw(memarg, I32, I64, R::And),

            O::I32AtomicRmwOr { memarg } => self.atomic_rmw(memarg, I32, I32, R::Or),
            O::I64AtomicRmwOr { memarg } => self.atomic_rmw(memarg, I64, I64, R::Or),
            O::I32AtomicRmw8OrU { memarg } => self.atomic_rmw(memarg, I8, I32, R::Or),
            O::I32AtomicRmw16OrU { memarg } => self.atomic_rmw(memarg, I16, I32, R::Or),
            O::I64AtomicRmw8OrU { memarg } => self.atomic_rmw(memarg, I8, I64, R::Or),
            O::I64AtomicRmw16OrU { memarg } => self.atomic_rmw(memarg, I16, I64, R::Or),
            O::I64AtomicRmw32OrU { memarg } => self.atomic_rmw(memarg, I32, I64, R::Or),

            O::I32AtomicRmwXor { memarg } => self.atomic_rmw(memarg, I32, I32, R::Xor),
            O::I64AtomicRmwXor { memarg } => self.atomic_rmw(memarg, I64, I64, R::Xor),
            O::I32AtomicRmw8XorU { memarg } => self.atomic_rmw(memarg, I8, I32, R::Xor),
            O::I32AtomicRmw16XorU { memarg } => self.atomic_rmw(memarg, I16, I32, R::Xor),
            O::I64AtomicRmw8XorU { memarg } => self.atomic_rmw(memarg, I8, I64, R::Xor),
            O::I64AtomicRmw16XorU { memarg } => self.atomic_rmw(memarg, I16, I64, R::Xor),
            O::I64AtomicRmw32XorU { memarg } => self.atomic_rmw(memarg, I32, I64, R::Xor),

            O::I32AtomicRmwXchg { memarg } => self.atomic_rmw(memarg, I32, I32, R::Xchg),
            O::I64AtomicRmwXchg { memarg } => self.atomic_rmw(memarg, I64, I64, R::Xchg),
            O::I32AtomicRmw8XchgU { memarg } => self.atomic_rmw(memarg, I8, I32, R::Xchg),
            O::I32AtomicRmw16XchgU { memarg } => self.atomic_rmw(memarg, I16, I32, R::Xchg),
            O::I64AtomicRmw8XchgU { memarg } => self.atomic_rmw(memarg, I8, I64, R::Xchg),
            O::I64AtomicRmw16XchgU { memarg } => self.atomic_rmw(memarg, I16, I64, R::Xchg),
            O::I64AtomicRmw32XchgU { memarg } => self.atomic_rmw(memarg, I32, I64, R::Xchg),

            O::I32AtomicRmwCmpxchg { memarg } => self.atomic_cmpxchg(memarg, I32, I32),
            O::I64AtomicRmwCmpxchg { memarg } => self.atomic_cmpxchg(memarg, I64, I64),
            O::I32AtomicRmw8CmpxchgU { memarg } => self.atomic_cmpxchg(memarg, I8, I32),
            O::I32AtomicRmw16CmpxchgU { memarg } => self.atomic_cmpxchg(memarg, I16, I32),
            O::I64AtomicRmw8CmpxchgU { memarg } => self.atomic_cmpxchg(memarg, I8, I64),
            O::I64AtomicRmw16CmpxchgU { memarg } => self.atomic_cmpxchg(memarg, I16, I64),
            O::I64AtomicRmw32CmpxchgU { memarg } => self.atomic_cmpxchg(memarg, I32, I64),

            _ => return None,
        }
        Some(Ok(()))
    }
}
