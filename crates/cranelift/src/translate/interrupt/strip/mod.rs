//! Strip-mined counted loops: interruption checks every few hundred
//! iterations of a hot inner loop instead of every iteration.
//!
//! With fuel or epochs on, every loop header checks (see `interrupt/mod.rs`).
//! In a tight inner loop — a dot product, a hash round, a byte copy — that
//! check is a fifth of the instructions. Most such loops are *counted*:
//! one i32 local (the induction variable) changes only by a step (a
//! constant, or a local the loop does not write) at the loop's one back
//! edge, which is taken while it compares to a loop-invariant limit:
//!
//! ```text
//! loop                             ;; empty block type, no nested loop,
//!   ...                            ;; no call, no bulk operation
//!   local.get $i  i32.const 1  i32.add  local.tee $i
//!   local.get $n  i32.lt_u   (or ne, le, gt, ge, signed or not, or the
//!   br_if 0                   limit first, or `i32.sub`, or no compare)
//! end
//! ```
//!
//! Such a loop is split in two. An outer header runs the usual checks and
//! then computes a *strip end* `s` such that (1) the comparison against
//! `s` implies the original comparison against the limit, and (2) it
//! fails within `k` iterations. The inner loop's back edge compares the
//! induction variable against `s` instead of the limit — the same one
//! compare and branch, no check — and when it falls through, the original
//! comparison decides between another strip (back to the outer header)
//! and leaving the loop. Every skipped check would therefore have found
//! nothing to do if:
//!
//! - epochs: `k` iterations of a body with no call and no nested loop are
//!   bounded work (`k` shrinks with the body: at most 2^16 operators per
//!   strip), so an interrupt is seen at most that much later;
//! - fuel: `k` is also at most the remaining fuel divided by an upper bound
//!   of one iteration's cost (the sum of its operators' costs), so fuel
//!   cannot run out inside a strip: the loop traps at exactly the same
//!   point, with the same count, as with a check per iteration. When the
//!   body is one straight run (the back edge its only branch), every
//!   iteration costs exactly the same, so not even the count is kept per
//!   iteration: the strip's iterations are read off the distance the
//!   variable moved and charged when the strip ends.
//!
//! `plan.rs` finds the counted loops before translation; `end.rs`
//! computes a strip's end. This file gives a planned loop its shape.

mod end;
mod plan;

use super::Interruption;
use crate::translate::emitter::Emitter;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{self, InstBuilder, Value, types::*};
use cranelift_frontend::Variable;
use plan::Step;
pub(super) use plan::{StripPlan, plan};

/// The strip-mining state of the function being translated.
#[derive(Default)]
pub(super) struct Strips {
    /// Counted loops to strip-mine, in order.
    plans: Vec<StripPlan>,
    /// Index of the next plan not yet reached.
    next: usize,
    /// The strip-mined loop being translated.
    active: Option<ActiveStrip>,
}

/// The strip-mined loop being translated.
struct ActiveStrip {
    /// The header that checks and computes the strip's end.
    outer: ir::Block,
    /// The wasm loop's header (the back edge's target).
    inner: ir::Block,
    /// The strip's end.
    end: Value,
    /// The variable at the strip's start, when fuel is charged per strip.
    start: Option<Value>,
    plan: StripPlan,
}

impl Strips {
    /// Strip-mines the loops of `plans`, in order.
    pub(super) fn new(plans: Vec<StripPlan>) -> Strips {
        Strips { plans, next: 0, active: None }
    }

    /// The plan for the loop at `pos`, if it is a counted loop.
    pub(super) fn take(&mut self, pos: u64) -> Option<StripPlan> {
        let next = self.plans.get(self.next)?;
        if next.loop_pos != pos {
            return None;
        }
        self.next += 1;
        Some(next.clone())
    }

    /// Whether the `br_if` at `pos` is the back edge of the strip-mined
    /// loop being translated.
    pub(super) fn is_latch(&self, pos: u64) -> bool {
        self.active.as_ref().is_some_and(|s| s.plan.latch_pos == pos)
    }
}

impl Interruption {
    /// Enters a counted loop: an outer header with the usual checks and
    /// the strip's end, then the loop's own header, to which it switches
    /// and which it returns.
    pub(super) fn begin_strip(&mut self, e: &mut Emitter<'_, '_>, plan: StripPlan) -> ir::Block {
        let outer = e.builder.create_block();
        e.builder.ins().jump(outer, &[]);
        e.builder.switch_to_block(outer);
        self.check(e);
        let end = end::strip_end(e, &plan, self.fuel.var);
        let start = (self.fuel.var.is_some() && plan.charge_per_strip).then(|| {
            // The body's operators charge nothing; the back edge charges
            // the strip's iterations when it falls through.
            self.fuel.suspended = true;
            e.builder.use_var(e.locals[plan.iv as usize].0)
        });
        let inner = e.builder.create_block();
        e.builder.ins().jump(inner, &[]);
        e.builder.switch_to_block(inner);
        self.strips.active = Some(ActiveStrip { outer, inner, end, start, plan });
        inner
    }

    /// The back edge, whose condition is `cond`: another iteration while
    /// the variable is within the strip; past it, another strip while the
    /// loop's own condition holds.
    pub(super) fn strip_latch(&mut self, e: &mut Emitter<'_, '_>, cond: Value) {
        self.fuel.flush(e);
        let Some(strip) = &self.strips.active else { return };
        let (outer, inner, end, cc) = (strip.outer, strip.inner, strip.end, strip.plan.back_edge_cc());
        let x = e.builder.use_var(e.locals[strip.plan.iv as usize].0);
        let within = e.builder.ins().icmp(cc, x, end);
        let after = e.builder.create_block();
        e.builder.ins().brif(within, inner, &[], after, &[]);
        e.builder.seal_block(after);
        e.builder.switch_to_block(after);
        if let (Some(start), Some(var)) = (strip.start, self.fuel.var) {
            // Charged: the body runs on charging per operator again.
            self.fuel.suspended = false;
            charge_strip(e, &strip.plan, var, start, x);
        }
        let next = e.builder.create_block();
        e.builder.ins().brif(cond, outer, &[], next, &[]);
        e.builder.seal_block(next);
        e.builder.switch_to_block(next);
    }

    /// At the `end` of the loop whose header is `header`: if it was
    /// strip-mined, its outer header has all its predecessors now.
    pub(super) fn end_strip(&mut self, e: &mut Emitter<'_, '_>, header: ir::Block) {
        if self.strips.active.as_ref().is_some_and(|s| s.inner == header)
            && let Some(strip) = self.strips.active.take()
        {
            e.builder.seal_block(strip.outer);
            self.fuel.suspended = false;
        }
    }
}

/// Charges counter `var` the fuel of the iterations a strip of `plan`
/// ran: the variable went from `start` to `now` by its step, without
/// wrapping (the strip's end guarantees that), so their number is the
/// distance divided by the step — a shift for constant steps (powers of
/// two; at most 1,024 steps of at most 2^16), a division for a step in a
/// local.
fn charge_strip(e: &mut Emitter<'_, '_>, plan: &StripPlan, var: Variable, start: Value, now: Value) {
    let (cost, wide, step) = (plan.iteration_fuel, plan.wide, plan.step);
    let locals = e.locals;
    let b = &mut *e.builder;
    let n = match step {
        Step::Const(step) => {
            let distance = if step > 0 { b.ins().isub(now, start) } else { b.ins().isub(start, now) };
            let shift = i64::from(step.unsigned_abs().trailing_zeros());
            if step.unsigned_abs().is_power_of_two() {
                b.ins().ushr_imm_u(distance, shift)
            } else {
                b.ins().udiv_imm_u(distance, i64::from(step.unsigned_abs()))
            }
        }
        Step::Local { local, up } => {
            let distance = if up { b.ins().isub(now, start) } else { b.ins().isub(start, now) };
            // A step of 0 (or one pointing away from the limit) got a
            // strip of one iteration (see `strip_end`); the division
            // gives 1 for the latter, and 0 must not be divided by.
            let step = b.use_var(locals[local as usize].0);
            let zero = b.ins().icmp_imm_u(IntCC::Equal, step, 0);
            let one = b.ins().iconst(I32, 1);
            let divisor = b.ins().select(zero, one, step);
            let n = b.ins().udiv(distance, divisor);
            b.ins().select(zero, one, n)
        }
    };
    let n = if wide { n } else { b.ins().uextend(I64, n) };
    // At most 2^16 operators of at most 2^32 fuel each: fits an i64.
    let charge = b.ins().imul_imm_s(n, cost as i64);
    // The count is read from the pinned register rather than the
    // variable, which then need not stay live through the strip (it
    // would hold a register across the whole inner loop, often
    // pushing one of the loop's own values onto the stack). They are
    // equal here: the outer header's check copied the variable into
    // the register, and the body can neither charge (it is suspended),
    // call, nor refuel.
    let fuel = b.ins().get_pinned_reg(I64);
    let fuel = b.ins().iadd(fuel, charge);
    b.def_var(var, fuel);
}
