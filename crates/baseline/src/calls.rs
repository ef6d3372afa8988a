//! Calls: direct (to a defined function, linked by relocation; to an
//! import, through its record in the VMContext), indirect (through a
//! funcref table, with the lazy-table, null and signature checks) and to
//! runtime builtins (the C calling convention: VMContext in rdi, then the
//! builtin's own arguments).

use crate::abi::Loc;
use crate::compiler::{Codegen, Declined, HOT_COUNT, decline, signature};
use crate::frame::{VMCTX, ValType};
use crate::x64::asm::{Alu, Cond, FSize, Mem, Reg, Size};
use kiln_environ::vmoffsets::{definition, func_import, func_ref, vmctx_header};
use kiln_environ::{
    BuiltinFunctionIndex, FUNCREF_INIT_BIT, FuncIndex, OSR_HOT_CALLS, RelocKind, Relocation, TableIndex, TrapCode,
    TypeIndex,
};

/// What a call goes to.
enum Callee {
    /// A defined function of this module, by relocation.
    Direct(FuncIndex),
    /// An import, whose record is at this offset in the VMContext.
    Import(i32),
    /// The funcref in the operand slot just above the arguments.
    FuncRefAbove,
}

impl Codegen<'_> {
    /// `call`.
    pub(crate) fn call(&mut self, function_index: u32) -> Result<(), Declined> {
        let func = FuncIndex::from_u32(function_index);
        if function_index as usize >= self.module.functions.len() {
            return decline("call of a function index out of range");
        }
        let (params, results) = signature(self.module.func_type(func))?;
        let callee = if self.module.is_imported_func(func) {
            Callee::Import(self.offsets.imported_function(func) as i32)
        } else {
            Callee::Direct(func)
        };
        self.call_with(&params, &results, callee)
    }

    /// `call_indirect`: the callee's funcref is looked up before the
    /// arguments move (it needs rax, rcx, rdx and a builtin call), and
    /// kept in a spare operand slot above them.
    pub(crate) fn call_indirect(&mut self, type_index: u32, table: u32) -> Result<(), Declined> {
        let Some(tt) = self.module.tables.get(table as usize).copied() else {
            return decline("table index out of range");
        };
        if tt.table64 || !tt.element.is_func() {
            return decline("call_indirect through a 64-bit or non-funcref table");
        }
        if type_index as usize >= self.module.types.len() || !self.module.types[type_index as usize].is_final {
            return decline("call_indirect to a type with subtypes");
        }
        let (params, results) = signature(self.module.func_type_at(TypeIndex::from_u32(type_index)))?;
        let index = self.pop(ValType::I32)?;
        // The funcref goes where the index was; the arguments lie below.
        self.funcref(table, index)?;
        self.asm.test_rr(Size::S64, Reg::Rax, Reg::Rax);
        let null = self.trap_label(TrapCode::IndirectCallToNull);
        self.asm.jcc(Cond::E, null);
        self.asm.load(Size::S64, Reg::Rcx, VMCTX);
        self.asm.load(Size::S64, Reg::Rcx, Mem::base_disp(Reg::Rcx, vmctx_header::TYPE_IDS as i32));
        self.asm.load(Size::S32, Reg::Rcx, Mem::base_disp(Reg::Rcx, (type_index * 4) as i32));
        self.asm.alu_rm(Alu::Cmp, Size::S32, Reg::Rcx, Mem::base_disp(Reg::Rax, func_ref::TYPE_ID as i32));
        let bad = self.trap_label(TrapCode::BadSignature);
        self.asm.jcc(Cond::Ne, bad);
        self.asm.store(Size::S64, index, Reg::Rax);
        self.max_depth = self.max_depth.max(self.stack.len() + 1);
        self.call_with(&params, &results, Callee::FuncRefAbove)
    }

    /// Loads into rax the untagged funcref of element (i32 at `index`)
    /// of funcref table `table`, computing a lazy element by the builtin;
    /// traps when the index is out of bounds.
    fn funcref(&mut self, table: u32, index: Mem) -> Result<(), Declined> {
        let t = TableIndex::from_u32(table);
        self.asm.load(Size::S64, Reg::Rdx, VMCTX);
        let off = match self.module.defined_table_index(t) {
            Some(d) => self.offsets.defined_table(d) as i32,
            None => {
                self.asm.load(Size::S64, Reg::Rdx, Mem::base_disp(Reg::Rdx, self.offsets.imported_table(t) as i32));
                0
            }
        };
        self.asm.load(Size::S32, Reg::Rcx, index);
        self.asm.alu_rm(Alu::Cmp, Size::S64, Reg::Rcx, Mem::base_disp(Reg::Rdx, off + definition::LENGTH as i32));
        let oob = self.trap_label(TrapCode::TableOutOfBounds);
        self.asm.jcc(Cond::Ae, oob);
        self.asm.load(Size::S64, Reg::Rdx, Mem::base_disp(Reg::Rdx, off + definition::BASE as i32));
        self.asm.load(Size::S64, Reg::Rax, Mem::base_index(Reg::Rdx, Reg::Rcx, 8, 0));
        let (lazy, done) = (self.asm.new_label(), self.asm.new_label());
        self.asm.mov_rr(Size::S64, Reg::R8, Reg::Rax);
        self.asm.alu_ri(Alu::And, Size::S32, Reg::R8, FUNCREF_INIT_BIT as i32);
        self.asm.jcc(Cond::E, lazy);
        self.asm.alu_ri(Alu::And, Size::S64, Reg::Rax, !(FUNCREF_INIT_BIT as i32));
        self.asm.jmp(done);
        self.asm.bind(lazy);
        self.asm.mov_ri(Size::S32, Reg::Rsi, i64::from(table));
        self.asm.mov_rr(Size::S64, Reg::Rdx, Reg::Rcx);
        self.call_builtin(BuiltinFunctionIndex::table_get_lazy);
        self.asm.bind(done);
        Ok(())
    }

    /// At the head of loop `loop_index` (with nothing on the operand
    /// stack: every value of the activation is in a local's slot): counts
    /// the iteration down in the function's entry counter (at `counter`),
    /// and when it runs out asks the runtime for optimized code to take
    /// the activation over (which reports the function hot while it has
    /// none), and if there is some, calls it with this frame and the
    /// loop's index (it reads the locals from their slots and runs the
    /// rest of the function from that loop) and returns what it returns.
    pub(crate) fn osr_check(&mut self, loop_index: u32, counter: u64) -> Result<(), Declined> {
        let skip = self.count_down(counter, loop_index);
        self.asm.test_rr(Size::S64, Reg::Rax, Reg::Rax);
        self.asm.jcc(Cond::E, skip);
        self.asm.mov_rr(Size::S64, Reg::R11, Reg::Rax);
        // The entry reads every local from its slot.
        self.spill_local_regs();
        self.asm.load(Size::S64, Reg::Rdi, VMCTX);
        self.asm.mov_rr(Size::S64, Reg::Rsi, Reg::Rdi);
        self.asm.mov_rr(Size::S64, Reg::Rdx, Reg::Rbp);
        self.asm.mov_ri(Size::S32, Reg::Rcx, i64::from(loop_index));
        self.asm.call_reg(Reg::R11);
        self.mark();
        self.leave();
        self.asm.bind(skip);
        Ok(())
    }

    /// Counts a call down in the function's entry counter (at `counter`)
    /// and reports the function to the runtime when it runs out (see
    /// [`crate::Options::entry_counter`]). Runs at the end of the
    /// prologue: the arguments are in their slots, and the builtin call
    /// may clobber every caller-saved register.
    pub(crate) fn count_entry(&mut self, counter: u64) {
        let skip = self.count_down(counter, OSR_HOT_CALLS);
        self.asm.bind(skip);
    }

    /// Adds `delta` to the count of the function's activations running
    /// this code, the `i32` after its entry counter (see
    /// [`crate::Options::entry_counter`]), through r11: in the prologue,
    /// where nothing else uses it, and at a return, where no result is in
    /// it (the flags change).
    pub(crate) fn count_running(&mut self, counter: u64, delta: i32) {
        self.asm.mov_ri(Size::S64, Reg::R11, counter as i64);
        self.asm.alu_mi(Alu::Add, Size::S32, Mem::base_disp(Reg::R11, 4), delta);
    }

    /// Counts one down in the function's entry counter (at `counter`);
    /// when it runs out, sets it to [`HOT_COUNT`] again and calls the
    /// `osr_entry` builtin with the function and `loop_index`, whose answer
    /// is in rax. Returns the label (not bound yet) that the code jumps to
    /// when the counter did not run out.
    fn count_down(&mut self, counter: u64, loop_index: u32) -> crate::x64::asm::Label {
        let skip = self.asm.new_label();
        self.asm.mov_ri(Size::S64, Reg::Rcx, counter as i64);
        self.asm.alu_mi(Alu::Sub, Size::S32, Mem::base_disp(Reg::Rcx, 0), 1);
        self.asm.jcc(Cond::G, skip);
        self.asm.store_imm(Size::S32, Mem::base_disp(Reg::Rcx, 0), HOT_COUNT);
        self.asm.mov_ri(Size::S32, Reg::Rsi, i64::from(self.defined_index));
        self.asm.mov_ri(Size::S32, Reg::Rdx, i64::from(loop_index));
        self.call_builtin(BuiltinFunctionIndex::osr_entry);
        skip
    }

    /// `memory.grow`: the builtin returns the old size in pages or -1.
    pub(crate) fn memory_grow(&mut self, mem: u32) -> Result<(), Declined> {
        let Some(mt) = self.module.memories.get(mem as usize).copied() else {
            return decline("memory index out of range");
        };
        if mt.memory64 {
            return decline("64-bit memory");
        }
        let delta = self.pop(ValType::I32)?;
        self.asm.mov_ri(Size::S32, Reg::Rsi, i64::from(mem));
        self.asm.load(Size::S32, Reg::Rdx, delta);
        self.call_builtin(BuiltinFunctionIndex::memory_grow);
        let out = self.push(ValType::I32);
        self.asm.store(Size::S32, out, Reg::Rax);
        Ok(())
    }

    /// Calls builtin `index` with the VMContext in rdi and the other
    /// arguments already in place (never rdi). The stack is 16-byte
    /// aligned here: the frame is, and nothing else is pushed.
    fn call_builtin(&mut self, index: BuiltinFunctionIndex) {
        self.asm.load(Size::S64, Reg::Rdi, VMCTX);
        self.asm.load(Size::S64, Reg::R11, Mem::base_disp(Reg::Rdi, vmctx_header::BUILTINS as i32));
        self.asm.call_mem(Mem::base_disp(Reg::R11, (index.index() * 8) as i32));
    }

    /// Calls `callee` with arguments the `params.len()` values on top of
    /// the stack, and pushes the results.
    fn call_with(&mut self, params: &[ValType], results: &[ValType], callee: Callee) -> Result<(), Declined> {
        let first = match self.stack.len().checked_sub(params.len()) {
            Some(f) if self.stack[f..] == *params => f,
            _ => return decline("call arguments not on the stack"),
        };
        let args = crate::abi::args(params)?;
        let result_locs = crate::abi::results(results)?;
        if args.stack_bytes > 0 {
            self.max_outgoing = self.max_outgoing.max(args.stack_bytes);
            self.asm.alu_ri(Alu::Sub, Size::S64, Reg::Rsp, args.stack_bytes as i32);
            for (i, loc) in args.locs.iter().enumerate() {
                if let Loc::Stack(off) = *loc {
                    self.asm.load(Size::S64, Reg::Rax, self.layout.depth(first + i));
                    self.asm.store(Size::S64, Mem::base_disp(Reg::Rsp, off), Reg::Rax);
                }
            }
        }
        // The callee's code in r11 and context in r10 (neither carries an
        // argument), before the argument registers fill.
        match callee {
            Callee::Direct(_) => {}
            Callee::Import(off) => {
                self.asm.load(Size::S64, Reg::Rax, VMCTX);
                self.asm.load(Size::S64, Reg::R11, Mem::base_disp(Reg::Rax, off + func_import::WASM_CALL as i32));
                self.asm.load(Size::S64, Reg::R10, Mem::base_disp(Reg::Rax, off + func_import::VMCTX as i32));
            }
            Callee::FuncRefAbove => {
                self.asm.load(Size::S64, Reg::Rax, self.layout.depth(self.stack.len()));
                self.asm.load(Size::S64, Reg::R11, Mem::base_disp(Reg::Rax, func_ref::WASM_CALL as i32));
                self.asm.load(Size::S64, Reg::R10, Mem::base_disp(Reg::Rax, func_ref::VMCTX as i32));
            }
        }
        for (i, loc) in args.locs.iter().enumerate() {
            let slot = self.layout.depth(first + i);
            match *loc {
                Loc::Float(x) => self.asm.movs_load(FSize::F64, x, slot),
                Loc::Int(r) => self.asm.load(Size::S64, r, slot),
                Loc::Stack(_) => {}
            }
        }
        self.asm.load(Size::S64, Reg::Rsi, VMCTX);
        match callee {
            Callee::Direct(func) => {
                self.asm.mov_rr(Size::S64, Reg::Rdi, Reg::Rsi);
                let at = self.asm.call_rel32();
                self.relocations.push(Relocation {
                    offset: at,
                    kind: RelocKind::X86CallPCRel4,
                    target: func,
                    addend: -4,
                });
            }
            Callee::Import(_) | Callee::FuncRefAbove => {
                self.asm.mov_rr(Size::S64, Reg::Rdi, Reg::R10);
                self.asm.call_reg(Reg::R11);
            }
        }
        // The return address maps to this call (a backtrace's frame).
        self.mark();
        self.stack.truncate(first);
        // One integer result stays in a register for the next operator
        // (nothing else is deferred: the call flushed the stack).
        if let ([t], [Loc::Int(r)]) = (results, result_locs.as_slice())
            && !t.is_float()
        {
            self.push_reg(*t, *r);
            return Ok(());
        }
        for (t, loc) in results.iter().zip(&result_locs) {
            let slot = self.push(*t);
            match *loc {
                Loc::Float(x) => self.asm.movs_store(FSize::F64, slot, x),
                Loc::Int(r) => self.asm.store(Size::S64, slot, r),
                Loc::Stack(_) => return decline("results returned through memory"),
            }
        }
        Ok(())
    }
}
