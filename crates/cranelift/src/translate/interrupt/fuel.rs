//! The fuel counter: how the translator charges operators and keeps the
//! count where callees, the host and the trap handler find it.
//!
//! With fuel on, the store's counter (`VMStoreContext::fuel_consumed`,
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
//! checked where `mod.rs` places checks: a non-negative count traps with
//! `OutOfFuel`, or, with `Tunables::fuel_async_yields`, calls the
//! `out_of_fuel` builtin, which refuels from the store's reserve or traps
//! (see [`Fuel::check`]).

use crate::translate::emitter::Emitter;
use crate::translate::memory::state_flags;
use crate::trap_codes::to_clif;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value, types};
use cranelift_frontend::Variable;
use kiln_environ::vmoffsets::store_context;
use kiln_environ::{BuiltinFunctionIndex, FuelCosts, TrapCode};
use wasmparser::Operator;

/// The fuel counter of the function being translated.
pub(super) struct Fuel {
    /// The operator costs, when fuel is on.
    costs: Option<FuelCosts>,
    /// Running out calls the `out_of_fuel` builtin (which may refuel and
    /// yield) rather than trapping (`Tunables::fuel_async_yields`).
    refuels: bool,
    /// The counter, once the function has started with fuel on.
    pub(super) var: Option<Variable>,
    /// Fuel charged by operators since the last flush into the counter
    /// (negative at a prepaid loop header or join, see `prepay.rs`).
    pub(super) pending: i64,
    /// The value last copied into the pinned register on the current path,
    /// so an unchanged counter is not copied again.
    pinned: Option<Value>,
    /// Operators' fuel is not charged: inside a strip-mined loop charged
    /// per strip (see `strip/`).
    pub(super) suspended: bool,
}

/// The translation-time state of the counter at one point, to come back
/// to after translating code elsewhere ([`Fuel::snapshot`]).
pub(super) struct FuelSnapshot {
    pending: i64,
    pinned: Option<Value>,
}

impl Fuel {
    /// The state at the current point.
    pub(super) fn snapshot(&self) -> FuelSnapshot {
        FuelSnapshot { pending: self.pending, pinned: self.pinned }
    }

    /// Returns to a state taken by [`Self::snapshot`].
    pub(super) fn restore(&mut self, s: FuelSnapshot) {
        self.pending = s.pending;
        self.pinned = s.pinned;
    }

    /// Fuel charged at `costs`, or no fuel; `refuels` as
    /// `Tunables::fuel_async_yields`.
    pub(super) fn new(costs: Option<FuelCosts>, refuels: bool) -> Fuel {
        Fuel { costs, refuels, var: None, pending: 0, pinned: None, suspended: false }
    }

    /// The operator costs, when fuel is on.
    pub(super) fn costs(&self) -> Option<&FuelCosts> {
        self.costs.as_ref()
    }

    /// Starts a function: reads the counter from the pinned register into
    /// a variable.
    pub(super) fn start(&mut self, e: &mut Emitter<'_, '_>) {
        if self.costs.is_some() {
            self.var = Some(e.builder.declare_var(types::I64));
            self.read_pinned(e);
        }
    }

    /// Adds `op`'s cost to the pending tally.
    pub(super) fn charge(&mut self, op: &Operator<'_>) {
        if let (Some(_), Some(costs)) = (self.var, &self.costs) {
            self.pending += i64::from(fuel_cost(op, costs));
        }
    }

    /// Copies the variable into the pinned register, where callees, the
    /// host-call trampoline and the trap handler find it.
    ///
    /// Skipped when the register already holds the variable's value: it
    /// was copied there earlier on every path to this point (the value is
    /// the same SSA value, so it was computed on this path, and everything
    /// that changes the register since, calls and refuelling builtins,
    /// also gives the variable a new value).
    pub(super) fn pin(&mut self, e: &mut Emitter<'_, '_>) {
        let Some(var) = self.var else { return };
        let v = e.builder.use_var(var);
        if self.pinned == Some(v) {
            return;
        }
        e.builder.ins().set_pinned_reg(v);
        self.pinned = Some(v);
    }

    /// Reads the variable back from the pinned register (after a call).
    pub(super) fn read_pinned(&mut self, e: &mut Emitter<'_, '_>) {
        let Some(var) = self.var else { return };
        let v = e.builder.ins().get_pinned_reg(types::I64);
        e.builder.def_var(var, v);
        self.pinned = Some(v);
    }

    /// Adds the pending tally to the counter.
    pub(super) fn flush(&mut self, e: &mut Emitter<'_, '_>) {
        let Some(var) = self.var else { return };
        if self.pending == 0 {
            return;
        }
        if self.suspended {
            // Inside a strip-mined loop charged per strip (`strip/`).
            self.pending = 0;
            return;
        }
        let v = e.builder.use_var(var);
        let v = e.builder.ins().iadd_imm_s(v, self.pending);
        e.builder.def_var(var, v);
        self.pending = 0;
    }

    /// Adds the pending tally plus `prepay`, the fuel of the stretch a
    /// branch or fallthrough about to be taken leads to (see `prepay.rs`;
    /// 0 without fuel), to the counter.
    pub(super) fn flush_prepaying(&mut self, e: &mut Emitter<'_, '_>, prepay: i64) {
        self.pending += prepay;
        self.flush(e);
    }

    /// Publishes the counter in the store context, for builtins and the
    /// trap path of `raise`.
    pub(super) fn save(&mut self, e: &mut Emitter<'_, '_>) {
        let Some(var) = self.var else { return };
        let v = e.builder.use_var(var);
        let ctx = e.store_context();
        e.builder.ins().store(state_flags(e.regions), v, ctx, store_context::FUEL_CONSUMED as i32);
    }

    /// Reloads the counter from the store context after a builtin that may
    /// have refuelled, into the variable and the pinned register alike
    /// (a trap before the next copy would publish a stale register).
    pub(super) fn reload(&mut self, e: &mut Emitter<'_, '_>) {
        let Some(var) = self.var else { return };
        let ctx = e.store_context();
        let v = e.builder.ins().load(types::I64, state_flags(e.regions), ctx, store_context::FUEL_CONSUMED as i32);
        e.builder.def_var(var, v);
        e.builder.ins().set_pinned_reg(v);
        self.pinned = Some(v);
    }

    /// Publishes the counter to the pinned register and acts when it is
    /// not negative.
    ///
    /// Normally running out ends the activation (fuel can only be added
    /// by the host, and the counter is reloaded after every host call), so
    /// the check is a conditional trap: its cold path is a lone trap
    /// instruction that needs no operands, so the loop around it keeps no
    /// register (the VMContext, say) alive for it, and the trap handler
    /// takes the counter from the pinned register. With
    /// `Tunables::fuel_async_yields` it calls `out_of_fuel` instead, which
    /// refuels from the store's reserve (yielding to the executor first)
    /// or traps `OutOfFuel`: a cold block with the counter published to
    /// the store context before the call and reloaded after it.
    pub(super) fn check(&mut self, e: &mut Emitter<'_, '_>) {
        let Some(var) = self.var else { return };
        self.pin(e);
        let v = e.builder.use_var(var);
        // The count here is the variable plus the unflushed tally, which is
        // negative at a prepaid loop header (`prepay.rs`): compare with its
        // negation rather than 0, so fuel runs out at the same point with
        // or without prepaying. The builtin refuels below the same bound.
        let threshold = -self.pending;
        let exhausted = e.builder.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, v, threshold);
        if !self.refuels {
            e.builder.ins().trapnz(exhausted, to_clif(TrapCode::OutOfFuel));
            return;
        }
        let out = e.builder.create_block();
        let cont = e.builder.create_block();
        e.builder.set_cold_block(out);
        e.builder.ins().brif(exhausted, out, &[], cont, &[]);
        e.builder.switch_to_block(out);
        self.save(e);
        let threshold = e.builder.ins().iconst(types::I64, threshold);
        e.call_builtin(BuiltinFunctionIndex::out_of_fuel, &[e.vmctx, threshold]);
        self.reload(e);
        e.builder.ins().jump(cont, &[]);
        e.builder.seal_block(out);
        e.builder.seal_block(cont);
        e.builder.switch_to_block(cont);
        // Both paths leave the counter in the pinned register.
        self.pinned = Some(e.builder.use_var(var));
    }
}

/// The fuel `op` costs under `c`.
pub(super) fn fuel_cost(op: &Operator<'_>, c: &FuelCosts) -> u32 {
    use Operator as O;
    match op {
        O::Nop | O::Drop | O::Block { .. } | O::Loop { .. } | O::Else | O::End | O::Unreachable => c.structural,
        O::Call { .. }
        | O::CallIndirect { .. }
        | O::ReturnCall { .. }
        | O::ReturnCallIndirect { .. }
        | O::CallRef { .. }
        | O::ReturnCallRef { .. } => c.call,
        op if is_bulk(op) => c.bulk,
        op if is_memory_access(op) => c.memory,
        _ => c.default,
    }
}

/// `memory.grow` and the bulk memory and table operations: one operator,
/// work proportional to its operands.
pub(super) fn is_bulk(op: &Operator<'_>) -> bool {
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
