//! Strip-mined counted loops: interruption checks every few hundred
//! iterations of a hot inner loop instead of every iteration.
//!
//! With fuel or epochs on, every loop header checks (see `interrupt.rs`).
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

use super::FuncTranslator;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{self, InstBuilder, Value, types::*};
use kiln_environ::{FuelCosts, WasmValType};
use std::collections::VecDeque;
use wasmparser::{BlockType, FunctionBody, Operator};

/// The most iterations one strip runs.
const MAX_STRIP: u32 = 1024;
/// The most operators one strip executes (bounds how late an epoch
/// interrupt can be seen); bodies larger than half of this are not split.
const STRIP_OPERATORS: u32 = 1 << 16;
/// The largest step magnitude handled (keeps `k * c` far from overflow and
/// the `ne` rotation test exact).
const MAX_STEP: i64 = 1 << 16;

/// A counted loop found by [`plan`], to be translated strip-mined.
#[derive(Clone, Debug)]
pub(crate) struct StripPlan {
    /// Offset of the `loop` operator.
    loop_pos: u64,
    /// Offset of the back edge's `br_if 0`.
    latch_pos: u64,
    /// The induction variable (an i32 local).
    iv: u32,
    /// What it is compared with.
    limit: Limit,
    /// The change at the back edge (`iv' = iv + step`, wrapping).
    step: Step,
    /// Whether the variable (and limit) are i64 rather than i32.
    wide: bool,
    /// The back edge is taken while `iv' cmp limit`.
    cmp: LatchCmp,
    /// Iterations per strip, from the body's size.
    max_iterations: u32,
    /// An upper bound of the fuel one iteration consumes.
    iteration_fuel: u64,
    /// The body is one straight run (its only branch is the back edge):
    /// every iteration costs exactly `iteration_fuel`, and the iterations a
    /// strip ran can be read off the variable, so fuel is charged once per
    /// strip.
    charge_per_strip: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Step {
    /// A constant, `0 < |step| <= MAX_STEP`.
    Const(i32),
    /// A loop-invariant local, added (`up`) or subtracted; only for
    /// ordered comparisons, whose strip end checks its sign at run time.
    Local { local: u32, up: bool },
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Limit {
    Local(u32),
    Const(i64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum LatchCmp {
    Ne,
    Lt { signed: bool },
    Le { signed: bool },
    Gt { signed: bool },
    Ge { signed: bool },
}

impl StripPlan {
    /// How the back edge compares the variable with the strip's end: as
    /// the loop compares it with its limit, strictly.
    fn back_edge_cc(&self) -> IntCC {
        match self.cmp {
            LatchCmp::Ne => IntCC::NotEqual,
            LatchCmp::Lt { signed: true } | LatchCmp::Le { signed: true } => IntCC::SignedLessThan,
            LatchCmp::Lt { signed: false } | LatchCmp::Le { signed: false } => IntCC::UnsignedLessThan,
            LatchCmp::Gt { signed: true } | LatchCmp::Ge { signed: true } => IntCC::SignedGreaterThan,
            LatchCmp::Gt { signed: false } | LatchCmp::Ge { signed: false } => IntCC::UnsignedGreaterThan,
        }
    }
}

impl LatchCmp {
    /// The comparison with its operands swapped.
    fn swapped(self) -> LatchCmp {
        match self {
            LatchCmp::Ne => LatchCmp::Ne,
            LatchCmp::Lt { signed } => LatchCmp::Gt { signed },
            LatchCmp::Le { signed } => LatchCmp::Ge { signed },
            LatchCmp::Gt { signed } => LatchCmp::Lt { signed },
            LatchCmp::Ge { signed } => LatchCmp::Le { signed },
        }
    }
}

/// The strip-mined loop being translated.
pub(crate) struct ActiveStrip {
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

/// One operator of a loop's tail, as far as the pattern cares.
#[derive(Clone, Copy, PartialEq)]
/// `bool`s say whether an operator is the i64 one.
enum Tail {
    Get(u32),
    Tee(u32),
    Const(i64, bool),
    Add(bool),
    Sub(bool),
    Cmp(LatchCmp, bool),
    Other,
}

impl Tail {
    fn of(op: &Operator<'_>) -> Tail {
        use Operator as O;
        match *op {
            O::LocalGet { local_index } => Tail::Get(local_index),
            O::LocalTee { local_index } => Tail::Tee(local_index),
            O::I32Const { value } => Tail::Const(i64::from(value), false),
            O::I64Const { value } => Tail::Const(value, true),
            O::I32Add => Tail::Add(false),
            O::I64Add => Tail::Add(true),
            O::I32Sub => Tail::Sub(false),
            O::I64Sub => Tail::Sub(true),
            O::I32Ne => Tail::Cmp(LatchCmp::Ne, false),
            O::I64Ne => Tail::Cmp(LatchCmp::Ne, true),
            O::I32LtU => Tail::Cmp(LatchCmp::Lt { signed: false }, false),
            O::I32LtS => Tail::Cmp(LatchCmp::Lt { signed: true }, false),
            O::I32LeU => Tail::Cmp(LatchCmp::Le { signed: false }, false),
            O::I32LeS => Tail::Cmp(LatchCmp::Le { signed: true }, false),
            O::I32GtU => Tail::Cmp(LatchCmp::Gt { signed: false }, false),
            O::I32GtS => Tail::Cmp(LatchCmp::Gt { signed: true }, false),
            O::I32GeU => Tail::Cmp(LatchCmp::Ge { signed: false }, false),
            O::I32GeS => Tail::Cmp(LatchCmp::Ge { signed: true }, false),
            _ => Tail::Other,
        }
    }
}

/// The innermost loop being scanned, while it may still be counted.
struct Candidate {
    loop_pos: u64,
    /// Its index in the scan's frame stack.
    depth: usize,
    operators: u32,
    fuel: u64,
    back_edges: u32,
    /// Operators that may branch or leave (the back edge among them).
    branches: u32,
    /// Locals written in the body, in order (with repeats).
    writes: Vec<u32>,
    /// The last operators, with their offsets.
    tail: VecDeque<(u64, Tail, bool)>,
}

/// Finds the counted loops of `body` (see the module comment). `locals`
/// are the function's locals with their types; `fuel` the operator costs
/// when fuel is on. Reads the body without validating it: any operator it
/// cannot read or does not expect ends the scan with what it found so far,
/// and translation (which validates) still rejects an invalid body.
pub(crate) fn plan(body: &FunctionBody<'_>, locals: &[WasmValType], fuel: Option<&FuelCosts>) -> Vec<StripPlan> {
    let mut plans = Vec::new();
    let Ok(mut ops) = body.get_operators_reader() else { return plans };
    // Frames open at this point (true for loops); the body itself is one.
    let mut frames: Vec<bool> = vec![false];
    let mut cand: Option<Candidate> = None;
    while !ops.eof() {
        let Ok((op, pos)) = ops.read_with_offset() else { return plans };
        use Operator as O;
        if let Some(c) = &mut cand
            && (!matches!(op, O::End) || frames.len() - 1 != c.depth)
        {
            c.operators += 1;
            c.fuel += fuel.map_or(0, |f| u64::from(super::interrupt::fuel_cost(&op, f)));
            if branches_to(&op, frames.len(), c.depth) {
                c.back_edges += 1;
            }
            if matches!(op, O::Br { .. } | O::BrIf { .. } | O::BrTable { .. } | O::If { .. } | O::Else | O::Return | O::Unreachable) {
                c.branches += 1;
            }
            if c.tail.len() == 8 {
                c.tail.pop_front();
            }
            c.tail.push_back((pos, Tail::of(&op), matches!(op, O::BrIf { relative_depth: 0 })));
            if let O::LocalSet { local_index } | O::LocalTee { local_index } = op {
                c.writes.push(local_index);
            }
            if !bounded(&op) {
                cand = None;
            }
        }
        match op {
            O::Block { .. } | O::If { .. } => frames.push(false),
            O::Loop { blockty } => {
                // An enclosing candidate has a nested loop: not innermost.
                cand = (blockty == BlockType::Empty).then(|| Candidate {
                    loop_pos: pos,
                    depth: frames.len(),
                    operators: 0,
                    fuel: 0,
                    back_edges: 0,
                    branches: 0,
                    writes: Vec::new(),
                    tail: VecDeque::new(),
                });
                frames.push(true);
            }
            O::End => {
                let Some(_) = frames.pop() else { return plans };
                if cand.as_ref().is_some_and(|c| c.depth == frames.len())
                    && let Some(p) = cand.take().and_then(|c| counted_loop(c, locals))
                {
                    plans.push(p);
                }
            }
            O::Else => {}
            // Exceptions and typed-reference branches: not worth modelling.
            O::Try { .. }
            | O::TryTable { .. }
            | O::Catch { .. }
            | O::CatchAll
            | O::Delegate { .. }
            | O::BrOnNull { .. }
            | O::BrOnNonNull { .. }
            | O::BrOnCast { .. }
            | O::BrOnCastFail { .. } => return plans,
            _ => {}
        }
    }
    plans
}

/// Whether `op` branches to the frame at index `target` of a stack of
/// `frames` entries.
fn branches_to(op: &Operator<'_>, frames: usize, target: usize) -> bool {
    let hits = |d: u32| frames.checked_sub(1 + d as usize) == Some(target);
    match op {
        Operator::Br { relative_depth } | Operator::BrIf { relative_depth } => hits(*relative_depth),
        Operator::BrTable { targets } => {
            hits(targets.default()) || targets.targets().any(|d| d.is_ok_and(hits))
        }
        _ => false,
    }
}

/// Whether one execution of `op` does bounded work, so that `k` iterations
/// of a body made of such operators are bounded too (calls run unbounded
/// callees, bulk operations scale with their operands, a wait blocks).
fn bounded(op: &Operator<'_>) -> bool {
    use Operator as O;
    !super::interrupt::is_bulk(op)
        && !matches!(
            op,
            O::Call { .. }
                | O::CallIndirect { .. }
                | O::ReturnCall { .. }
                | O::ReturnCallIndirect { .. }
                | O::CallRef { .. }
                | O::ReturnCallRef { .. }
                | O::MemoryAtomicWait32 { .. }
                | O::MemoryAtomicWait64 { .. }
                | O::Loop { .. }
        )
}

/// Decides whether a scanned innermost loop is counted, and how.
fn counted_loop(c: Candidate, locals: &[WasmValType]) -> Option<StripPlan> {
    let &(latch_pos, _, is_br_if_0) = c.tail.back()?;
    if !is_br_if_0 || c.back_edges != 1 {
        return None;
    }
    let t: Vec<Tail> = c.tail.iter().map(|&(_, t, _)| t).collect();
    let t = &t[..t.len() - 1];
    // The variable, its step, and whether it is an i64.
    let update = |s: &[Tail]| -> Option<(u32, Step, bool)> {
        match *s {
            [Tail::Get(a), Tail::Const(k, w1), op @ (Tail::Add(w2) | Tail::Sub(w2)), Tail::Tee(b)] if a == b && w1 == w2 => {
                let step = if matches!(op, Tail::Add(_)) { k } else { k.checked_neg()? };
                if step == 0 || step.abs() > MAX_STEP {
                    return None;
                }
                Some((a, Step::Const(step as i32), w1))
            }
            [Tail::Get(a), Tail::Get(step), op @ (Tail::Add(false) | Tail::Sub(false)), Tail::Tee(b)] if a == b && step != a => {
                Some((a, Step::Local { local: step, up: matches!(op, Tail::Add(_)) }, false))
            }
            [Tail::Get(step), Tail::Get(a), Tail::Add(false), Tail::Tee(b)] if a == b && step != a => {
                Some((a, Step::Local { local: step, up: true }, false))
            }
            _ => None,
        }
    };
    let limit = |t: Tail, wide: bool| match t {
        Tail::Get(l) => Some(Limit::Local(l)),
        Tail::Const(n, w) if w == wide => Some(Limit::Const(n)),
        _ => None,
    };
    let n = t.len();
    let (iv, step, wide, limit, cmp) = if n >= 6 && matches!(t[n - 1], Tail::Cmp(..)) && matches!(t[n - 2], Tail::Tee(_)) {
        // `limit; iv update; cmp`: the limit is the left operand.
        let Tail::Cmp(cmp, w) = t[n - 1] else { return None };
        let (iv, step, wide) = update(&t[n - 5..n - 1])?;
        (iv, step, wide, limit(t[n - 6], w)?, if w == wide { cmp.swapped() } else { return None })
    } else if n >= 6 && matches!(t[n - 1], Tail::Cmp(..)) {
        let Tail::Cmp(cmp, w) = t[n - 1] else { return None };
        let (iv, step, wide) = update(&t[n - 6..n - 2])?;
        (iv, step, wide, limit(t[n - 2], w)?, if w == wide { cmp } else { return None })
    } else if n >= 4 {
        // `br_if` on the updated variable itself: taken while it is not 0.
        let (iv, step, wide) = update(&t[n - 4..])?;
        (iv, step, wide, Limit::Const(0), if wide { return None } else { LatchCmp::Ne })
    } else {
        return None;
    };
    // i64 variables: `ne` only (the ordered strip ends widen to 64 bits).
    if wide && cmp != LatchCmp::Ne {
        return None;
    }
    let step_ok = match (cmp, step) {
        (LatchCmp::Ne, Step::Const(c)) => c.unsigned_abs().is_power_of_two(),
        (LatchCmp::Ne, Step::Local { .. }) => false,
        (LatchCmp::Lt { .. } | LatchCmp::Le { .. }, Step::Const(c)) => c > 0,
        (LatchCmp::Gt { .. } | LatchCmp::Ge { .. }, Step::Const(c)) => c < 0,
        (LatchCmp::Lt { .. } | LatchCmp::Le { .. }, Step::Local { up, .. }) => up,
        (LatchCmp::Gt { .. } | LatchCmp::Ge { .. }, Step::Local { up, .. }) => !up,
    };
    let ty = if wide { WasmValType::I64 } else { WasmValType::I32 };
    let is_i32 = |l: u32| locals.get(l as usize) == Some(&WasmValType::I32);
    let is_ty = |l: u32| locals.get(l as usize) == Some(&ty);
    if !step_ok || !is_ty(iv) {
        return None;
    }
    // The variable changes only at the back edge (the tee just matched);
    // the limit and a step in a local not at all.
    if c.writes.iter().filter(|&&w| w == iv).count() != 1 {
        return None;
    }
    if let Limit::Local(l) = limit
        && (l == iv || !is_ty(l) || c.writes.contains(&l))
    {
        return None;
    }
    if let Step::Local { local, .. } = step
        && (!is_i32(local) || c.writes.contains(&local))
    {
        return None;
    }
    let max_iterations = (STRIP_OPERATORS / c.operators.max(1)).min(MAX_STRIP);
    if max_iterations < 2 {
        return None;
    }
    Some(StripPlan {
        loop_pos: c.loop_pos,
        latch_pos,
        iv,
        limit,
        step,
        wide,
        cmp,
        max_iterations,
        iteration_fuel: c.fuel,
        charge_per_strip: c.branches == 1,
    })
}

impl FuncTranslator<'_, '_> {
    /// The plan for the loop at `pos`, if it is a counted loop.
    pub(crate) fn take_strip_plan(&mut self, pos: u64) -> Option<StripPlan> {
        let next = self.strip_plans.get(self.next_strip_plan)?;
        if next.loop_pos != pos {
            return None;
        }
        self.next_strip_plan += 1;
        Some(next.clone())
    }

    /// Whether the `br_if` at `pos` is the back edge of the strip-mined
    /// loop being translated.
    pub(crate) fn is_strip_latch(&self, pos: u64) -> bool {
        self.strip.as_ref().is_some_and(|s| s.plan.latch_pos == pos)
    }

    /// Enters a counted loop: an outer header with the usual checks and
    /// the strip's end, then the loop's own header, to which it switches
    /// and which it returns.
    pub(crate) fn begin_strip_loop(&mut self, plan: StripPlan) -> ir::Block {
        let outer = self.builder.create_block();
        self.builder.ins().jump(outer, &[]);
        self.builder.switch_to_block(outer);
        self.interrupt_loop_header();
        let end = self.strip_end(&plan);
        let start = (self.fuel_var.is_some() && plan.charge_per_strip).then(|| {
            // The body's operators charge nothing; the back edge charges
            // the strip's iterations when it falls through.
            self.fuel_suspended = true;
            self.builder.use_var(self.locals[plan.iv as usize].0)
        });
        let inner = self.builder.create_block();
        self.builder.ins().jump(inner, &[]);
        self.builder.switch_to_block(inner);
        self.strip = Some(ActiveStrip { outer, inner, end, start, plan });
        inner
    }

    /// The back edge: another iteration while the variable is within the
    /// strip; past it, another strip while the loop's own condition holds.
    pub(crate) fn translate_strip_latch(&mut self) {
        // `br_if` leaves flushing to its translation (see `fuel_before_op`).
        self.fuel_flush();
        let Some(strip) = &self.strip else { return };
        let (outer, inner, end, cc) = (strip.outer, strip.inner, strip.end, strip.plan.back_edge_cc());
        let iv = strip.plan.iv;
        let cond = self.pop1();
        let x = self.builder.use_var(self.locals[iv as usize].0);
        let within = self.builder.ins().icmp(cc, x, end);
        let after = self.builder.create_block();
        self.builder.ins().brif(within, inner, &[], after, &[]);
        self.builder.seal_block(after);
        self.builder.switch_to_block(after);
        if let Some(start) = self.strip.as_ref().and_then(|s| s.start) {
            self.charge_strip(start, x);
        }
        let next = self.builder.create_block();
        self.builder.ins().brif(cond, outer, &[], next, &[]);
        self.builder.seal_block(next);
        self.builder.switch_to_block(next);
    }

    /// At the `end` of the loop whose header is `header`: if it was
    /// strip-mined, its outer header has all its predecessors now.
    pub(crate) fn end_strip_loop(&mut self, header: ir::Block) {
        if self.strip.as_ref().is_some_and(|s| s.inner == header)
            && let Some(strip) = self.strip.take()
        {
            self.builder.seal_block(strip.outer);
            self.fuel_suspended = false;
        }
    }

    /// Charges the fuel of the iterations a strip ran: the variable went
    /// from `start` to `now` by its step, without wrapping (the strip's end
    /// guarantees that), so their number is the distance divided by the
    /// step — a shift for constant steps (powers of two; at most 1,024
    /// steps of at most 2^16), a division for a step in a local.
    fn charge_strip(&mut self, start: Value, now: Value) {
        let Some(strip) = &self.strip else { return };
        let Some(var) = self.fuel_var else { return };
        let (cost, wide, step) = (strip.plan.iteration_fuel, strip.plan.wide, strip.plan.step);
        self.fuel_suspended = false;
        let locals = &self.locals;
        let b = &mut self.builder;
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

    /// How many iterations the strip starting here may run: the plan's
    /// bound and, with fuel, no more than the remaining fuel pays for
    /// (at least one: the check just made let this iteration run).
    fn strip_iterations(&mut self, plan: &StripPlan) -> Value {
        let k = self.builder.ins().iconst(I64, i64::from(plan.max_iterations));
        let (Some(var), true) = (self.fuel_var, plan.iteration_fuel > 0) else { return k };
        // The count is in -i64::MAX..=0 after the check (negative while
        // fuel remains; an epoch callback may have set it to 0); were it
        // positive, the shifted value would be negative and clamp to 1.
        let consumed = self.builder.use_var(var);
        let remaining = self.builder.ins().ineg(consumed);
        let shift = 64 - (plan.iteration_fuel - 1).leading_zeros();
        let paid = self.builder.ins().sshr_imm_u(remaining, i64::from(shift));
        let one = self.builder.ins().iconst(I64, 1);
        let paid = self.builder.ins().smax(paid, one);
        self.builder.ins().smin(k, paid)
    }

    /// The next strip's end, with the variable at its value for the next
    /// iteration (see the module comment).
    fn strip_end(&mut self, plan: &StripPlan) -> Value {
        let k = self.strip_iterations(plan);
        let locals = &self.locals;
        let iv = self.builder.use_var(self.locals[plan.iv as usize].0);
        let limit = match plan.limit {
            Limit::Local(l) => self.builder.use_var(self.locals[l as usize].0),
            Limit::Const(n) => self.builder.ins().iconst(if plan.wide { I64 } else { I32 }, n),
        };
        let b = &mut self.builder;
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
                let widen = |b: &mut cranelift_frontend::FunctionBuilder<'_>, v| {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plans of each function in `wat`, each function's locals being
    /// its i32 parameters and declared locals.
    fn plans_of(wat: &str) -> Vec<Vec<StripPlan>> {
        plans_of_typed(wat, WasmValType::I32)
    }

    /// Like `plans_of`, with every local of type `ty`.
    fn plans_of_typed(wat: &str, ty: WasmValType) -> Vec<Vec<StripPlan>> {
        let bytes = wat::parse_str(wat).expect("wat");
        let mut out = Vec::new();
        let mut params = Vec::new();
        for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
            match payload.expect("payload") {
                wasmparser::Payload::TypeSection(r) => {
                    for ty in r.into_iter_err_on_gc_types() {
                        params.push(ty.expect("type").params().len());
                    }
                }
                wasmparser::Payload::CodeSectionEntry(body) => {
                    let mut locals = vec![ty; params[out.len()]];
                    for l in body.get_locals_reader().expect("locals") {
                        let (n, _) = l.expect("local");
                        locals.extend(std::iter::repeat_n(ty, n as usize));
                    }
                    out.push(plan(&body, &locals, Some(&FuelCosts::default())));
                }
                _ => {}
            }
        }
        out
    }

    fn one_loop(tail: &str, extra: &str) -> String {
        format!("(module (func (param $i i32) (param $n i32) (local $d i32) (local $s i32) (loop $l {extra} {tail} br_if $l)))")
    }

    #[test]
    fn finds_counted_loops() {
        let planned = |tail: &str| plans_of(&one_loop(tail, "(local.set $d (i32.const 1))"))[0].len() == 1;
        // Increasing with lt/le, limit on either side, local or constant.
        assert!(planned("local.get $i i32.const 1 i32.add local.tee $i local.get $n i32.lt_u"));
        assert!(planned("local.get $i i32.const 3 i32.add local.tee $i i32.const 100 i32.le_s"));
        assert!(planned("local.get $n local.get $i i32.const 1 i32.add local.tee $i i32.gt_s"));
        // Decreasing with gt/ge, as `sub` or `add` of a negative constant.
        assert!(planned("local.get $i i32.const 1 i32.sub local.tee $i i32.const 0 i32.gt_u"));
        assert!(planned("local.get $i i32.const -4 i32.add local.tee $i local.get $n i32.ge_s"));
        // `ne` (and a bare `br_if` on the variable) with power-of-two steps.
        assert!(planned("local.get $i i32.const 8 i32.add local.tee $i local.get $n i32.ne"));
        assert!(planned("local.get $i i32.const 1 i32.sub local.tee $i"));
        // Not counted: wrong direction, `eq`, odd step with `ne`, huge step.
        assert!(!planned("local.get $i i32.const 1 i32.sub local.tee $i local.get $n i32.lt_u"));
        assert!(!planned("local.get $i i32.const 1 i32.add local.tee $i local.get $n i32.eq"));
        assert!(!planned("local.get $i i32.const 3 i32.add local.tee $i local.get $n i32.ne"));
        assert!(!planned("local.get $i i32.const 65537 i32.add local.tee $i local.get $n i32.lt_u"));
        assert!(!planned("local.get $i i32.const 1 i32.add local.set $i local.get $i local.get $n i32.lt_u"));
        // Steps in a loop-invariant local: ordered comparisons only, in the
        // direction of the operator (the sign is checked at run time).
        assert!(planned("local.get $s local.get $i i32.add local.tee $i local.get $n i32.le_u"));
        assert!(planned("local.get $i local.get $s i32.sub local.tee $i local.get $n i32.gt_s"));
        assert!(!planned("local.get $i local.get $s i32.add local.tee $i local.get $n i32.ne"));
        assert!(!planned("local.get $i local.get $s i32.sub local.tee $i local.get $n i32.lt_u"));
        // i64 variables with `ne` and a constant step.
        let wide = |tail: &str| {
            let wat = format!("(module (func (param $i i64) (param $n i64) (loop $l {tail} br_if $l)))");
            plans_of_typed(&wat, WasmValType::I64)[0].len() == 1
        };
        assert!(wide("local.get $i i64.const 2 i64.add local.tee $i local.get $n i64.ne"));
        assert!(wide("local.get $n local.get $i i64.const 1 i64.sub local.tee $i i64.ne"));
        assert!(!wide("local.get $i i64.const 1 i64.add local.tee $i local.get $n i64.lt_u"));
        assert!(!wide("local.get $i i64.const 3 i64.add local.tee $i local.get $n i64.ne"));
    }

    #[test]
    fn rejects_loops_that_are_not_counted() {
        let tail = "local.get $i i32.const 1 i32.add local.tee $i local.get $n i32.lt_u";
        let planned = |extra: &str| plans_of(&one_loop(tail, extra))[0].len() == 1;
        assert!(planned(""));
        // The limit or the variable written in the body.
        assert!(!planned("(local.set $n (i32.const 9))"));
        assert!(!planned("(local.set $i (i32.const 9))"));
        // A step local written in the body.
        let var_step = "local.get $d local.get $i i32.add local.tee $i local.get $n i32.lt_u";
        assert!(plans_of(&one_loop(var_step, ""))[0].len() == 1);
        assert!(plans_of(&one_loop(var_step, "(local.set $d (i32.const 9))"))[0].is_empty());
        // Another back edge, a call, a bulk operation, a nested loop.
        assert!(!planned("(br_if $l (local.get $d))"));
        assert!(!planned("(block $b (br_table $b $l (local.get $d)))"));
        assert!(!planned("(call 0 (local.get $d) (local.get $d))"));
        // Exits are fine.
        assert!(planned("(block $b (br_if $b (local.get $d)))"));
        assert!(!planned("(loop $inner)"));
        // A body too large for two iterations per strip.
        let big = "(local.set $d (i32.add (local.get $d) (i32.const 1)))".repeat(STRIP_OPERATORS as usize / 8);
        assert!(!planned(&big));
        // The innermost of two nested loops is.
        let nested = format!("(module (func (param $i i32) (param $n i32) (loop $o (loop $l {tail} br_if $l) (br_if $o (local.get $n)))))");
        assert_eq!(plans_of(&nested)[0].len(), 1);
    }

    #[test]
    fn straight_bodies_are_charged_per_strip() {
        let tail = "local.get $i i32.const 4 i32.add local.tee $i local.get $n i32.lt_u";
        let plan = |extra: &str| plans_of(&one_loop(tail, extra))[0][0].charge_per_strip;
        assert!(plan("(local.set $d (i32.load (local.get $i)))"));
        // A branch in the body: per iteration.
        assert!(!plan("(if (local.get $d) (then nop))"));
        assert!(!plan("(block $b (br_if $b (local.get $d)))"));
        let odd = "local.get $i i32.const 3 i32.add local.tee $i local.get $n i32.lt_u";
        assert!(plans_of(&one_loop(odd, ""))[0][0].charge_per_strip);
        let var = "local.get $s local.get $i i32.add local.tee $i local.get $n i32.lt_u";
        assert!(plans_of(&one_loop(var, ""))[0][0].charge_per_strip);
    }

    #[test]
    fn fuel_bound_is_the_sum_of_the_body_costs() {
        let p = plans_of(&one_loop("local.get $i i32.const 1 i32.add local.tee $i local.get $n i32.lt_u", "nop nop"));
        // 6 operators of cost 1 in the tail, br_if 1, two nops 0.
        assert_eq!(p[0][0].iteration_fuel, 7);
        assert_eq!(p[0][0].max_iterations, MAX_STRIP);
    }
}
