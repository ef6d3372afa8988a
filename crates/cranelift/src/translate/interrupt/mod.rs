//! Interruption: fuel and epoch instrumentation, kept out of the operator
//! loop behind hooks that the translator calls at fixed points of the wasm
//! it translates.
//!
//! [`Interruption`] owns all of its state, and each hook gets an
//! [`Emitter`] (the builder, the VMContext, the locals) to write code
//! with. The hooks, by where the translator calls them:
//!
//! - the function: [`on_function_entry`](Interruption::on_function_entry),
//!   [`on_operator`](Interruption::on_operator) before every reachable
//!   operator, [`before_exit`](Interruption::before_exit) before `return`
//!   and `unreachable`;
//! - frames: [`on_block`](Interruption::on_block),
//!   [`on_if`](Interruption::on_if),
//!   [`enter_loop`](Interruption::enter_loop) and then
//!   [`on_loop_header`](Interruption::on_loop_header) or, for a loop to
//!   strip-mine, [`begin_strip_loop`](Interruption::begin_strip_loop);
//!   [`on_else`](Interruption::on_else); at `end`,
//!   [`on_end`](Interruption::on_end), then
//!   [`on_missing_else`](Interruption::on_missing_else) (an `if` without
//!   `else`) or [`on_loop_end`](Interruption::on_loop_end), then
//!   [`after_end`](Interruption::after_end) at the continuation;
//! - branches: [`on_br`](Interruption::on_br),
//!   [`on_br_if`](Interruption::on_br_if),
//!   [`on_br_table`](Interruption::on_br_table), and
//!   [`on_strip_latch`](Interruption::on_strip_latch) for the back edge of
//!   a strip-mined loop;
//! - calls: [`before_call`](Interruption::before_call) /
//!   [`after_call`](Interruption::after_call) around calls to wasm or the
//!   host (tail calls too), [`before_builtin`](Interruption::before_builtin)
//!   / [`after_builtin`](Interruption::after_builtin) around builtins.
//!
//! One job per file: `fuel.rs` keeps the counter (charging, the pinned
//! register, the check), `epoch.rs` polls the epoch flag, `prepay.rs`
//! plans the fuel paid on the ways into loop headers and joins,
//! `frames.rs` is the interruption side of the control stack, and
//! `strip/` strip-mines counted loops. This file decides where checks go.
//!
//! Where checks go: execution can only run unboundedly long through loops
//! or calls, so a check at every loop header plus one before a function's
//! first call bounds the work between two checks by the code's size.
//! Checks are placed lazily: `checked` says whether, on every path from
//! the function's entry to the current point, a check has already run
//! (maintained through branches and merges by `frames.rs`); a call made
//! while it is false gets a check right before it. A function that makes
//! no call before its first loop (fib's recursion sits inside a loop after
//! clang) or makes no call at all pays no entry check, where checking at
//! every entry paid twice.
//!
//! Both checks sit in hot loops, with their builtin call (for epochs) on a
//! cold path. An ordinary call there would clobber every caller-saved
//! register, so values live across the loop (often all of its floats)
//! would be spilled or kept in callee-saved registers on the hot path too;
//! the builtins are therefore called with `preserve_all` where the target
//! allows it (see `builtin_call_conv`), and cost nothing until they run.

mod epoch;
mod frames;
mod fuel;
mod prepay;
mod strip;

use super::emitter::Emitter;
use cranelift_codegen::ir::{self, Value};
use cranelift_codegen::isa::TargetIsa;
use epoch::Epochs;
use frames::Frame;
use fuel::Fuel;
use kiln_environ::{BuiltinFunctionIndex, Tunables, WasmValType};
use std::collections::HashMap;
use strip::{StripPlan, Strips};
use wasmparser::{FunctionBody, Operator};

/// All fuel and epoch state of the function being translated, changed
/// only through its hooks (see the module comment).
pub(crate) struct Interruption {
    /// The fuel counter.
    fuel: Fuel,
    /// How epochs are noticed.
    epochs: Epochs,
    /// Whether a check has run on every path from the entry to the current
    /// point.
    checked: bool,
    /// One entry per open control frame, innermost last.
    frames: Vec<Frame>,
    /// Loops, blocks and ifs whose following stretch (after the loop
    /// header, after the `end`) is prepaid, by the position of their
    /// opening operator, with the fuel prepaid (see `prepay.rs`).
    prepaid: HashMap<u64, i64>,
    /// Counted loops to strip-mine, and the one being translated.
    strips: Strips,
}

/// What [`Interruption::save_for_handler`] keeps.
pub(crate) struct HandlerSave {
    fuel: fuel::FuelSnapshot,
    checked: bool,
}

impl Interruption {
    /// The instrumentation `tunables` ask for, on `isa`.
    pub(crate) fn new(tunables: &Tunables, isa: &dyn TargetIsa) -> Interruption {
        Interruption {
            fuel: Fuel::new(tunables.consume_fuel.then_some(tunables.fuel_costs), tunables.fuel_async_yields),
            epochs: Epochs::new(tunables, isa),
            checked: false,
            frames: Vec::new(),
            prepaid: HashMap::new(),
            strips: Strips::default(),
        }
    }

    /// At the function's entry, once its locals are defined: reads the
    /// fuel counter (nothing is checked at entry, see the module comment),
    /// plans the loops to strip-mine and the frames to prepay, and opens
    /// the frame of the body.
    pub(crate) fn on_function_entry(&mut self, e: &mut Emitter<'_, '_>, body: &FunctionBody<'_>) {
        self.fuel.start(e);
        self.checked = false;
        // Only loops that carry checks are worth splitting.
        if self.epochs.polled() || self.fuel.costs().is_some() {
            let types: Vec<WasmValType> = e.locals.iter().map(|&(_, t)| t).collect();
            self.strips = Strips::new(strip::plan(body, &types, self.fuel.costs()));
        }
        if let Some(costs) = self.fuel.costs() {
            self.prepaid = prepay::plan(body, costs);
        }
        self.frames.push(Frame::block(0));
    }

    /// Before each reachable operator: adds its cost to the fuel tally,
    /// which the hooks at the ends of basic blocks add to the counter.
    pub(crate) fn on_operator(&mut self, op: &Operator<'_>) {
        self.fuel.charge(op);
    }

    /// Before the function leaves by `return` or traps at `unreachable`:
    /// charges what ran and hands the counter back in the pinned register,
    /// where the caller or the trap handler finds it.
    pub(crate) fn before_exit(&mut self, e: &mut Emitter<'_, '_>) {
        self.fuel.flush(e);
        self.fuel.pin(e);
    }

    /// At `block` (opened at `pos`).
    pub(crate) fn on_block(&mut self, pos: u64) {
        let prepaid = self.prepaid_for(pos);
        self.frames.push(Frame::block(prepaid));
    }

    /// At `if` (opened at `pos`), before its branch: the basic block ends.
    pub(crate) fn on_if(&mut self, e: &mut Emitter<'_, '_>, pos: u64) {
        let prepaid = self.prepaid_for(pos);
        self.fuel.flush(e);
        self.frames.push(Frame::if_(prepaid, self.checked));
    }

    /// At `loop` (opened at `pos`), before the jump to its header: charges
    /// what ran, with the fuel prepaid for the header. Returns the loop's
    /// plan when it is to be strip-mined ([`Self::begin_strip_loop`]);
    /// otherwise the translator makes the header and calls
    /// [`Self::on_loop_header`].
    pub(crate) fn enter_loop(&mut self, e: &mut Emitter<'_, '_>, pos: u64) -> Option<StripPlan> {
        if let Some(plan) = self.strips.take(pos) {
            self.fuel.flush(e);
            self.frames.push(Frame::loop_(0));
            return Some(plan);
        }
        let prepaid = self.prepaid_for(pos);
        self.fuel.flush_prepaying(e, prepaid);
        self.frames.push(Frame::loop_(prepaid));
        None
    }

    /// Gives a counted loop (see `strip/`) its headers: an outer one that
    /// checks and an inner one, the wasm loop's header, which it switches
    /// to and returns.
    pub(crate) fn begin_strip_loop(&mut self, e: &mut Emitter<'_, '_>, plan: StripPlan) -> ir::Block {
        self.begin_strip(e, plan)
    }

    /// At the start of a loop header, which every edge into it prepaid
    /// for: checks.
    pub(crate) fn on_loop_header(&mut self, e: &mut Emitter<'_, '_>) {
        let frame = self.frames.last().expect("validated: loop frame");
        // The header's first stretch is paid (see `prepay.rs`).
        self.fuel.pending = -frame.prepaid();
        self.check(e);
    }

    /// At `else`, before the then arm's jump to the continuation;
    /// `reachable` says whether the then arm's end is.
    pub(crate) fn on_else(&mut self, e: &mut Emitter<'_, '_>, reachable: bool) {
        let frame = self.frames.last_mut().expect("validated: else without if");
        if reachable {
            // The way out pays for the join it leads to (`prepay.rs`).
            self.fuel.flush_prepaying(e, frame.end_prepay());
        }
        self.checked = frame.on_else(!reachable || self.checked);
    }

    /// At `end`, before the fallthrough's jump to the continuation;
    /// `reachable` says whether the fallthrough is.
    pub(crate) fn on_end(&mut self, e: &mut Emitter<'_, '_>, reachable: bool) {
        let frame = self.frames.last().expect("validated: end without frame");
        // The `end` of a block no branch targets joins nothing: the basic
        // block, and its tally, run on through it. (Every check is preceded
        // by a flush, so the counter seen by checks is the same either way.)
        if reachable && !frame.end_is_straight() {
            self.fuel.flush_prepaying(e, frame.end_prepay());
        }
        self.checked = frame.checked_after_end(!reachable || self.checked);
    }

    /// At `end` of an `if` without `else`, in the empty else arm before its
    /// jump to the continuation.
    pub(crate) fn on_missing_else(&mut self, e: &mut Emitter<'_, '_>) {
        let frame = self.frames.last().expect("validated: if frame");
        self.fuel.flush_prepaying(e, frame.end_prepay());
    }

    /// At `end` of a loop, once its header (`header`) is sealed.
    pub(crate) fn on_loop_end(&mut self, e: &mut Emitter<'_, '_>, header: ir::Block) {
        self.end_strip(e, header);
    }

    /// At the continuation after `end`, which is reachable when
    /// `continues`: closes the frame.
    pub(crate) fn after_end(&mut self, continues: bool) {
        let frame = self.frames.pop().expect("validated: end without frame");
        if continues {
            // Every way in paid the stretch that starts here (`prepay.rs`).
            self.fuel.pending -= frame.end_prepay();
        }
    }

    /// At `br` to the frame `depth` levels out, before the jump.
    pub(crate) fn on_br(&mut self, e: &mut Emitter<'_, '_>, depth: u32) {
        let prepay = self.branch_to(depth);
        self.fuel.flush_prepaying(e, prepay);
    }

    /// At `br_if` to the frame `depth` levels out, before the branch.
    pub(crate) fn on_br_if(&mut self, e: &mut Emitter<'_, '_>, depth: u32) {
        // A back edge to a prepaid header pays its stretch here, folded
        // into this block's add; falling through takes it back.
        let prepay = self.branch_to(depth);
        self.fuel.flush_prepaying(e, prepay);
        self.fuel.pending -= prepay;
    }

    /// At `br_table` to the frames `depths` levels out (the default among
    /// them), before the branch. Its targets are never prepaid.
    pub(crate) fn on_br_table(&mut self, e: &mut Emitter<'_, '_>, depths: &[u32]) {
        self.fuel.flush(e);
        for &depth in depths {
            self.branch_to(depth);
        }
    }

    /// Whether the `br_if` at `pos` is the back edge of the strip-mined
    /// loop being translated, to be translated by
    /// [`Self::on_strip_latch`].
    pub(crate) fn is_strip_latch(&self, pos: u64) -> bool {
        self.strips.is_latch(pos)
    }

    /// The back edge of the strip-mined loop being translated, taken when
    /// `cond` is true: another iteration within the strip, another strip,
    /// or out of the loop.
    pub(crate) fn on_strip_latch(&mut self, e: &mut Emitter<'_, '_>, cond: Value) {
        self.strip_latch(e, cond);
    }

    /// Before a call to wasm or the host (a tail call too): charges what
    /// ran, checks unless a check already ran on every path here, and
    /// hands the counter over in the pinned register.
    pub(crate) fn before_call(&mut self, e: &mut Emitter<'_, '_>) {
        self.fuel.flush(e);
        if !self.checked {
            self.check(e);
        }
        self.fuel.pin(e);
    }

    /// After a call: the callee (or the host) moved the counter on.
    pub(crate) fn after_call(&mut self, e: &mut Emitter<'_, '_>) {
        self.fuel.read_pinned(e);
    }

    /// Before a builtin call, which may trap from Rust, where the pinned
    /// register is out of reach: publishes the counter in the store.
    pub(crate) fn before_builtin(&mut self, e: &mut Emitter<'_, '_>) {
        self.fuel.save(e);
    }

    /// After builtin `index` returns: with epoch signals, polls the flag
    /// (see `epoch.rs`).
    pub(crate) fn after_builtin(&mut self, e: &mut Emitter<'_, '_>, index: BuiltinFunctionIndex) {
        self.epochs.after_builtin(e, &mut self.fuel, index);
    }

    /// Before `throw` or `throw_ref`, which leave through a builtin: charges
    /// what ran and publishes the counter in the store, where the handler
    /// that catches the exception reloads it.
    pub(crate) fn before_throw(&mut self, e: &mut Emitter<'_, '_>) {
        self.fuel.flush(e);
        self.fuel.save(e);
    }

    /// Before the catch blocks of a `try_table` are translated (from its
    /// `end`, away from the code that follows): the state to restore for
    /// that code afterwards.
    pub(crate) fn save_for_handler(&self) -> HandlerSave {
        HandlerSave { fuel: self.fuel.snapshot(), checked: self.checked }
    }

    /// At the start of a catch block, which the runtime enters from
    /// wherever the exception was thrown: the counter is the one the
    /// thrower published in the store, the pinned register holds whatever
    /// the runtime's Rust code left there, and no check is known to have
    /// run.
    pub(crate) fn on_handler_entry(&mut self, e: &mut Emitter<'_, '_>) {
        self.fuel.pending = 0;
        self.fuel.reload(e);
        self.epochs.on_handler_entry(e);
        self.checked = false;
    }

    /// After the catch blocks: back to the code after the `try_table`.
    pub(crate) fn restore_after_handler(&mut self, saved: HandlerSave) {
        self.fuel.restore(saved.fuel);
        self.checked = saved.checked;
    }

    /// Checks fuel and epochs here: a check has run on every path now.
    fn check(&mut self, e: &mut Emitter<'_, '_>) {
        self.fuel.check(e);
        self.epochs.check(e, &mut self.fuel);
        self.checked = true;
    }

    /// The fuel to prepay for the frame opened at `pos` (none while the
    /// fuel of a strip-mined loop's body is charged per strip).
    fn prepaid_for(&self, pos: u64) -> i64 {
        if self.fuel.suspended { 0 } else { self.prepaid.get(&pos).copied().unwrap_or(0) }
    }

    /// Records a branch to the frame `depth` levels out; returns the fuel
    /// it prepays on the way (see `prepay.rs`).
    fn branch_to(&mut self, depth: u32) -> i64 {
        let checked = self.checked;
        let i = self.frames.len() - 1 - depth as usize;
        self.frames[i].branch(checked);
        self.frames[i].prepaid()
    }
}
