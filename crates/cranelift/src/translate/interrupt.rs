//! Fuel and epoch instrumentation.
//!
//! Fuel: with fuel on, the store's counter (`VMStoreContext::fuel_consumed`,
//! negative while fuel remains) is held in Cranelift's pinned register
//! (r15 on x86-64, x21 on aarch64) for as long as wasm runs: the entry
//! trampoline loads it and stores it back, wasm-to-wasm calls (direct,
//! indirect, tail, into other instances of the store) pass it in that
//! register, and the host-call trampoline publishes it to the store and
//! reloads it afterwards (the host may read it or refuel). Within a
//! function the counter is an SSA variable, so charges are plain adds that
//! Cranelift folds together and keeps in any register; the variable is
//! copied into the pinned register at every check (loop headers, first
//! calls), before calls, returns and `unreachable`, and read back from it
//! after calls. The trap handler copies the pinned register out of the
//! signal context (`vm/traphandlers.rs`), and builtin calls, which may
//! trap from Rust, store the variable first: so a call that ends in a trap
//! is charged what it ran up to its last loop header, call or entry.
//!
//! Each operator's cost is added to a compile-time tally that is flushed
//! into the variable at the end of every basic block (every control
//! operator that can branch or join), so a block pays once. The counter is
//! checked at loop headers and before a function's first call: a
//! non-negative count traps with `OutOfFuel` (see `fuel_check`).
//!
//! Epochs: at loop headers (and before calls, see `check_before_call`) the
//! store context's `epoch_interrupt` flag is loaded and, when raised, calls
//! `new_epoch`, which rechecks the deadline and traps, clears a stale flag,
//! or stores a new deadline. The flag is raised by whoever advances the
//! engine's epoch (kiln's `vm/epoch.rs`), so the check is one load off the
//! store context and a branch; without fuel, the store context itself sits
//! in the pinned register. With `Tunables::epoch_signals` there are no
//! epoch checks at all: the thread advancing the epoch signals the thread
//! running the store, whose handler makes the wasm call `new_epoch` where
//! it was interrupted (kiln's `vm/traphandlers.rs`).
//!
//! Both checks sit in hot loops, with their builtin call on a cold path.
//! An ordinary call there would clobber every caller-saved register, so
//! values live across the loop (often all of its floats) would be spilled
//! or kept in callee-saved registers on the hot path too; the builtins are
//! therefore called with `preserve_all` where the target allows it (see
//! `builtin_call_conv`), and cost nothing until they run.

use super::FuncTranslator;
use super::memory::state_flags;
use cranelift_codegen::ir::{self, InstBuilder, MemFlagsData, types};
use cranelift_codegen::ir::condcodes::IntCC;
use kiln_environ::vmoffsets::{store_context, vmctx_header};
use crate::trap_codes::to_clif;
use kiln_environ::{BuiltinFunctionIndex, FuelCosts, TrapCode};
use wasmparser::Operator;

impl FuncTranslator<'_, '_> {
    fn store_ctx(&mut self) -> ir::Value {
        let flags = self.readonly_here();
        self.builder.ins().load(types::I64, flags, self.vmctx, vmctx_header::STORE_CONTEXT as i32)
    }

    /// Starts a function: reads the fuel counter from the pinned register
    /// into a variable. No check happens at entry (see `check_before_call`).
    pub(crate) fn interrupt_prologue(&mut self) {
        if self.tunables.consume_fuel {
            let var = self.builder.declare_var(types::I64);
            self.fuel_var = Some(var);
            self.fuel_from_pinned();
        }
        self.checked = false;
    }

    /// Copies the fuel variable into the pinned register, where callees,
    /// the host-call trampoline and the trap handler find it.
    ///
    /// Skipped when the register already holds the variable's value: it
    /// was copied there earlier on every path to this point (the value is
    /// the same SSA value, so it was computed on this path, and everything
    /// that changes the register since, calls and refuelling builtins,
    /// also gives the variable a new value).
    fn fuel_to_pinned(&mut self) {
        let Some(var) = self.fuel_var else { return };
        let v = self.builder.use_var(var);
        if self.fuel_pinned == Some(v) {
            return;
        }
        self.builder.ins().set_pinned_reg(v);
        self.fuel_pinned = Some(v);
    }

    /// Reads the fuel variable back from the pinned register (after a call).
    fn fuel_from_pinned(&mut self) {
        let Some(var) = self.fuel_var else { return };
        let v = self.builder.ins().get_pinned_reg(types::I64);
        self.builder.def_var(var, v);
        self.fuel_pinned = Some(v);
    }

    /// Where checks go. Execution can only run unboundedly long through
    /// loops or calls, so a check at every loop header plus one before a
    /// function's first call bounds the work between two checks by the
    /// code's size. Checks are placed lazily: `checked` says whether, on
    /// every path from the function's entry to the current point, a check
    /// has already run (the translator maintains it through branches and
    /// merges, see `control.rs`); a call made while it is false gets a
    /// check right before it. A function that makes no call before its
    /// first loop (fib's recursion sits inside a loop after clang) or makes
    /// no call at all pays no entry check, where checking at every entry
    /// paid twice.
    fn check_before_call(&mut self) {
        if !self.checked {
            self.fuel_check();
            self.epoch_check();
            self.checked = true;
        }
    }

    /// Adds `op`'s cost to the pending tally, and flushes the tally at
    /// basic-block boundaries. Called before each reachable operator.
    pub(crate) fn fuel_before_op(&mut self, op: &Operator<'_>) {
        if self.fuel_var.is_none() {
            return;
        }
        let cost = fuel_cost(op, &self.tunables.fuel_costs);
        self.fuel_pending += i64::from(cost);
        use Operator as O;
        // `block` starts no basic block, and the `end` of a block no branch
        // targets joins nothing: straight-line code runs on through both,
        // so its tally does too. (Every check is preceded by a flush, so
        // the counter seen by checks is the same either way.)
        let plain_block_end = matches!(op, O::End)
            && matches!(self.control.last(), Some(super::control::ControlFrame::Block { exit_is_branched_to: false, .. }));
        // `loop`, `br` and `br_if` flush in their translation, together
        // with the fuel they may prepay for a loop header (`prepay.rs`).
        let ends_block = !plain_block_end
            && matches!(
                op,
                O::If { .. }
                    | O::Else
                    | O::End
                    | O::BrTable { .. }
                    | O::Return
                    | O::Unreachable
            );
        if ends_block {
            // The way out at `else`/`end` pays for the join it leads to
            // (`prepay.rs`).
            let prepay = match (op, self.control.last()) {
                (O::Else | O::End, Some(frame)) => frame.end_prepay(),
                _ => 0,
            };
            self.fuel_flush_prepaying(prepay);
        }
    }

    /// Adds the pending tally to the fuel counter.
    pub(crate) fn fuel_flush(&mut self) {
        let Some(var) = self.fuel_var else { return };
        if self.fuel_pending == 0 {
            return;
        }
        if self.fuel_suspended {
            // Inside a strip-mined loop charged per strip (`strip.rs`).
            self.fuel_pending = 0;
            return;
        }
        let v = self.builder.use_var(var);
        let v = self.builder.ins().iadd_imm_s(v, self.fuel_pending);
        self.builder.def_var(var, v);
        self.fuel_pending = 0;
    }

    /// Adds the pending tally plus `prepay`, the fuel of the stretch a
    /// branch or fallthrough about to be taken leads to (see `prepay.rs`;
    /// 0 without fuel), to the counter.
    pub(crate) fn fuel_flush_prepaying(&mut self, prepay: i64) {
        self.fuel_pending += prepay;
        self.fuel_flush();
    }

    /// Publishes the fuel counter in the store context, for builtins and
    /// the trap path of `raise`.
    pub(crate) fn fuel_save(&mut self) {
        let Some(var) = self.fuel_var else { return };
        let v = self.builder.use_var(var);
        let ctx = self.store_ctx();
        self.builder.ins().store(state_flags(self.regions), v, ctx, store_context::FUEL_CONSUMED as i32);
    }

    /// Reloads the counter from the store context after a builtin that may
    /// have refuelled, into the variable and the pinned register alike
    /// (a trap before the next copy would publish a stale register).
    fn fuel_reload(&mut self) {
        let Some(var) = self.fuel_var else { return };
        let ctx = self.store_ctx();
        let v = self.builder.ins().load(types::I64, state_flags(self.regions), ctx, store_context::FUEL_CONSUMED as i32);
        self.builder.def_var(var, v);
        self.builder.ins().set_pinned_reg(v);
        self.fuel_pinned = Some(v);
    }

    /// Publishes the counter to the pinned register and traps with
    /// `OutOfFuel` when it is not negative.
    ///
    /// Running out of fuel always ends the activation (fuel can only be
    /// added by the host, and the counter is reloaded after every host
    /// call), so the check is a conditional trap rather than a call: its
    /// cold path is a lone trap instruction that needs no operands, so the
    /// loop around it keeps no register (the VMContext, say) alive for it.
    /// The trap handler takes the counter from the pinned register.
    fn fuel_check(&mut self) {
        let Some(var) = self.fuel_var else { return };
        self.fuel_to_pinned();
        let v = self.builder.use_var(var);
        // The count here is the variable plus the unflushed tally, which is
        // negative at a prepaid loop header (`prepay.rs`): compare with its
        // negation rather than 0, so fuel runs out at the same point with
        // or without prepaying.
        let exhausted = self.builder.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, v, -self.fuel_pending);
        self.builder.ins().trapnz(exhausted, to_clif(TrapCode::OutOfFuel));
    }

    /// Branches to `new_epoch` when the store's interrupt flag is raised.
    ///
    /// The check must not cost the loop around it a register: in a tight
    /// loop, a cached pointer or deadline pushes some other value onto the
    /// stack. With epoch interruption on, the entry trampoline puts the
    /// store context in Cranelift's pinned register (r15 on x86-64, x21 on
    /// aarch64), which no other code allocates and which stays valid for
    /// the whole activation (all of its functions belong to one store). A
    /// check is then one load off that register and a branch (on x86-64 a
    /// `cmp [r15+48], 0`). The load is never merged with the previous
    /// iteration's: the flag is written by other threads, and the cold
    /// path's call is a barrier to Cranelift's alias analysis anyway.
    fn epoch_check(&mut self) {
        if !self.tunables.epoch_interruption || self.tunables.epoch_signals {
            // With signals, the runtime stops the code where it runs
            // (`vm/traphandlers.rs`); nothing to poll.
            return;
        }
        self.epoch_poll();
    }

    /// With epoch signals: after a builtin call returns. A signal that
    /// arrived while the builtin ran found no wasm to stop (a loop around
    /// `memory.copy` spends most of its time in the builtin), so the flag
    /// is polled here, once per call of a builtin that does real work.
    pub(crate) fn epoch_poll_after_builtin(&mut self, index: BuiltinFunctionIndex) {
        if self.tunables.epoch_signals && index != BuiltinFunctionIndex::new_epoch {
            self.epoch_poll();
        }
    }

    /// Loads the store's interrupt flag and calls `new_epoch` when raised.
    fn epoch_poll(&mut self) {
        let pointer = MemFlagsData::trusted().with_readonly();
        // Without fuel, the pinned register is on only for polled epochs,
        // and then holds the store context.
        let ctx = if self.fuel_var.is_none() && self.isa.flags().enable_pinned_reg() {
            self.builder.ins().get_pinned_reg(types::I64)
        } else {
            self.builder.ins().load(types::I64, pointer, self.vmctx, vmctx_header::STORE_CONTEXT as i32)
        };
        // The thread advancing the epoch raises this flag when the store's
        // deadline is reached (see kiln's `vm/epoch.rs`): one load, no
        // comparison of epochs here.
        let reached = self.builder.ins().load(types::I64, state_flags(self.regions), ctx, store_context::EPOCH_INTERRUPT as i32);
        let out = self.builder.create_block();
        let cont = self.builder.create_block();
        self.builder.set_cold_block(out);
        self.builder.ins().brif(reached, out, &[], cont, &[]);
        self.builder.switch_to_block(out);
        self.call_builtin(BuiltinFunctionIndex::new_epoch, &[]);
        self.fuel_reload();
        self.builder.ins().jump(cont, &[]);
        self.builder.seal_block(out);
        self.builder.seal_block(cont);
        self.builder.switch_to_block(cont);
    }

    /// Checks at a loop header.
    pub(crate) fn interrupt_loop_header(&mut self) {
        self.fuel_check();
        self.epoch_check();
        self.checked = true;
    }

    /// Before a call to wasm or the host (a tail call too): charge what
    /// ran so far and hand the counter over in the pinned register.
    pub(crate) fn interrupt_before_call(&mut self) {
        self.fuel_flush();
        self.check_before_call();
        self.fuel_to_pinned();
    }

    /// After a call: the callee (or the host) moved the counter on.
    pub(crate) fn interrupt_after_call(&mut self) {
        self.fuel_from_pinned();
    }

    /// Before returning: hand the counter back in the pinned register.
    pub(crate) fn interrupt_before_return(&mut self) {
        self.fuel_flush();
        self.fuel_to_pinned();
    }

    /// Before `unreachable` traps: publish what ran, for the trap handler.
    pub(crate) fn interrupt_before_trap(&mut self) {
        self.fuel_flush();
        self.fuel_to_pinned();
    }
}

/// The fuel `op` costs under `c`.
pub(crate) fn fuel_cost(op: &Operator<'_>, c: &FuelCosts) -> u32 {
    use Operator as O;
    match op {
        O::Nop | O::Drop | O::Block { .. } | O::Loop { .. } | O::Else | O::End | O::Unreachable => c.structural,
        O::Call { .. } | O::CallIndirect { .. } | O::ReturnCall { .. } | O::ReturnCallIndirect { .. } => c.call,
        op if is_bulk(op) => c.bulk,
        op if is_memory_access(op) => c.memory,
        _ => c.default,
    }
}

/// `memory.grow` and the bulk memory and table operations: one operator,
/// work proportional to its operands.
pub(crate) fn is_bulk(op: &Operator<'_>) -> bool {
    use Operator as O;
    matches!(
        op,
        O::MemoryGrow { .. }
            | O::MemoryFill { .. }
            | O::MemoryCopy { .. }
            | O::MemoryInit { .. }
            | O::TableGrow { .. }
            | O::TableFill { .. }
            | O::TableCopy { .. }
            | O::TableInit { .. }
    )
}

fn is_memory_access(op: &Operator<'_>) -> bool {
    use Operator as O;
    matches!(
        op,
        O::I32Load { .. }
            | O::I64Load { .. }
            | O::F32Load { .. }
            | O::F64Load { .. }
            | O::I32Load8S { .. }
            | O::I32Load8U { .. }
            | O::I32Load16S { .. }
            | O::I32Load16U { .. }
            | O::I64Load8S { .. }
            | O::I64Load8U { .. }
            | O::I64Load16S { .. }
            | O::I64Load16U { .. }
            | O::I64Load32S { .. }
            | O::I64Load32U { .. }
            | O::I32Store { .. }
            | O::I64Store { .. }
            | O::F32Store { .. }
            | O::F64Store { .. }
            | O::I32Store8 { .. }
            | O::I32Store16 { .. }
            | O::I64Store8 { .. }
            | O::I64Store16 { .. }
            | O::I64Store32 { .. }
            | O::V128Load { .. }
            | O::V128Store { .. }
    )
}
