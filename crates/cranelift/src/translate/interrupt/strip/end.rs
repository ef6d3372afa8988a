//! The end of a strip: the value the inner loop's back edge compares the
//! induction variable with (see `mod.rs` for the loop's shape).
//!
//! Computing `s` (all in the outer header, once per strip):
//!
//! - A decreasing `gt`/`ge` loop is the mirror image of an increasing one
//!   (as if on the complements, which reverse both orders and map `x - c`
//!   to `!x + c`): `s = max(x - k*c, limit (-1 for ge))`, back edge `x' > s`,
//!   and `x - k*c` below the range means no strip.
//! - `lt`/`le` (step `c` > 0; a step in a local is checked at run time,
//!   and one that is not positive gets no strip), computed in 64 bits so
//!   nothing wraps:
//!   `s = min(x + k*c, limit (+1 for le))` and the back edge tests
//!   `x' < s`. If `x + k*c` does not fit the 32-bit range the variable
//!   could wrap inside the strip, so `s` is the minimum value: the inner
//!   loop then falls through after every iteration.
//! - `ne` (step `c` = ±2^j): with `d` the distance from `x` to the limit
//!   in the direction of the steps, the limit is reached at iteration `n`
//!   in `1..=k` exactly when `rotr(d - |c|, j) < k` (rotating moves any low
//!   bits that make the limit unreachable to the top); then `s` is the
//!   limit, else `s = x + k*c`, which no earlier iteration can equal. The
//!   same holds for i64 variables, the one i64 form handled.

use super::plan::{LatchCmp, Limit, Step, StripPlan};
use crate::translate::emitter::Emitter;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value, types::*};
use cranelift_frontend::{FunctionBuilder, Variable};

/// How many iterations the strip starting here may run: the plan's
/// bound and, with fuel, no more than the remaining fuel pays for
/// (at least one: the check just made let this iteration run).
fn strip_iterations(e: &mut Emitter<'_, '_>, plan: &StripPlan, fuel: Option<Variable>) -> Value {
    let k = e.builder.ins().iconst(I64, i64::from(plan.max_iterations));
    let (Some(var), true) = (fuel, plan.iteration_fuel > 0) else { return k };
    // The count is in -i64::MAX..=0 after the check (negative while
    // fuel remains; an epoch callback may have set it to 0); were it
    // positive, the shifted value would be negative and clamp to 1.
    let consumed = e.builder.use_var(var);
    let remaining = e.builder.ins().ineg(consumed);
    let shift = 64 - (plan.iteration_fuel - 1).leading_zeros();
    let paid = e.builder.ins().sshr_imm_u(remaining, i64::from(shift));
    let one = e.builder.ins().iconst(I64, 1);
    let paid = e.builder.ins().smax(paid, one);
    e.builder.ins().smin(k, paid)
}

/// The next strip's end, with the variable at its value for the next
/// iteration (see the module comment).
pub(super) fn strip_end(e: &mut Emitter<'_, '_>, plan: &StripPlan, fuel: Option<Variable>) -> Value {
    let k = strip_iterations(e, plan, fuel);
    let locals = e.locals;
    let iv = e.builder.use_var(locals[plan.iv as usize].0);
    let limit = match plan.limit {
        Limit::Local(l) => e.builder.use_var(locals[l as usize].0),
        Limit::Const(n) => e.builder.ins().iconst(if plan.wide { I64 } else { I32 }, n),
    };
    let b = &mut *e.builder;
    match plan.cmp {
        LatchCmp::Ne => {
            let Step::Const(step) = plan.step else { unreachable!("`ne` plans have constant steps") };
            let c = i64::from(step.unsigned_abs());
            // Distance to the limit in the direction of the steps.
            let distance = if step > 0 { b.ins().isub(limit, iv) } else { b.ins().isub(iv, limit) };
            let before = b.ins().iadd_imm_s(distance, -c);
            let steps = b.ins().rotr_imm_u(before, i64::from(c.trailing_zeros()));
            let k = if plan.wide { k } else { b.ins().ireduce(I32, k) };
            let reached = b.ins().icmp(IntCC::UnsignedLessThan, steps, k);
            let span = b.ins().imul_imm_s(k, i64::from(step));
            let far = b.ins().iadd(iv, span);
            b.ins().select(reached, limit, far)
        }
        LatchCmp::Lt { signed } | LatchCmp::Le { signed } | LatchCmp::Gt { signed } | LatchCmp::Ge { signed } => {
            // Decreasing loops mirror increasing ones: `max` for `min`,
            // subtract for add, the bottom of the range for the top.
            let down = matches!(plan.cmp, LatchCmp::Gt { .. } | LatchCmp::Ge { .. });
            let inclusive = matches!(plan.cmp, LatchCmp::Le { .. } | LatchCmp::Ge { .. });
            let widen = |b: &mut FunctionBuilder<'_>, v| {
                if signed { b.ins().sextend(I64, v) } else { b.ins().uextend(I64, v) }
            };
            let x64 = widen(b, iv);
            let limit64 = widen(b, limit);
            // The last value the strip may reach is the limit itself
            // for `le`/`ge`: compare strictly against one past it.
            let bound = match (inclusive, down) {
                (false, _) => limit64,
                (true, false) => b.ins().iadd_imm_s(limit64, 1),
                (true, true) => b.ins().iadd_imm_s(limit64, -1),
            };
            // How far the variable moves in `k` iterations (a step in
            // a local is the amount added, or subtracted when `down`).
            let (span, backwards) = match plan.step {
                Step::Const(step) => (b.ins().imul_imm_s(k, i64::from(step.unsigned_abs())), None),
                Step::Local { local, .. } => {
                    let step = b.use_var(locals[local as usize].0);
                    let c = widen(b, step);
                    // Zero or, signed, negative: the variable does not
                    // move towards the limit; no strip.
                    let backwards = b.ins().icmp_imm_s(IntCC::SignedLessThanOrEqual, c, 0);
                    (b.ins().imul(k, c), Some(backwards))
                }
            };
            let (end64, wraps) = if down {
                let far = b.ins().isub(x64, span);
                let min = if signed { i64::from(i32::MIN) } else { 0 };
                (b.ins().smax(far, bound), b.ins().icmp_imm_s(IntCC::SignedLessThan, far, min))
            } else {
                let far = b.ins().iadd(x64, span);
                let wraps = if signed {
                    b.ins().icmp_imm_s(IntCC::SignedGreaterThan, far, i64::from(i32::MAX))
                } else {
                    // `far` is not negative: past u32::MAX iff any of
                    // its high 32 bits is set (no 64-bit constant).
                    let high = b.ins().ushr_imm_u(far, 32);
                    b.ins().icmp_imm_u(IntCC::NotEqual, high, 0)
                };
                (b.ins().smin(far, bound), wraps)
            };
            let end = b.ins().ireduce(I32, end64);
            let wraps = match backwards {
                Some(backwards) => b.ins().bor(wraps, backwards),
                None => wraps,
            };
            // Past the range: a strip of one iteration (an end the
            // back edge's comparison never passes).
            let never = match (down, signed) {
                (false, true) => i64::from(i32::MIN),
                (false, false) => 0,
                (true, true) => i64::from(i32::MAX),
                (true, false) => -1,
            };
            let never = b.ins().iconst(I32, never);
            // A select last, so that the value the loop compares with is
            // computed here, not rematerialized in the loop.
            b.ins().select(wraps, never, end)
        }
    }
}
