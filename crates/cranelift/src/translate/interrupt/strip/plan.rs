//! Finding counted loops: the loops `mod.rs` strip-mines, found by a scan
//! of the function body before it is translated.

use super::super::fuel::{fuel_cost, is_bulk};
use cranelift_codegen::ir::condcodes::IntCC;
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
    pub(super) loop_pos: u64,
    /// Offset of the back edge's `br_if 0`.
    pub(super) latch_pos: u64,
    /// The induction variable (an i32 local).
    pub(super) iv: u32,
    /// What it is compared with.
    pub(super) limit: Limit,
    /// The change at the back edge (`iv' = iv + step`, wrapping).
    pub(super) step: Step,
    /// Whether the variable (and limit) are i64 rather than i32.
    pub(super) wide: bool,
    /// The back edge is taken while `iv' cmp limit`.
    pub(super) cmp: LatchCmp,
    /// Iterations per strip, from the body's size.
    pub(super) max_iterations: u32,
    /// An upper bound of the fuel one iteration consumes.
    pub(super) iteration_fuel: u64,
    /// The body is one straight run (its only branch is the back edge):
    /// every iteration costs exactly `iteration_fuel`, and the iterations a
    /// strip ran can be read off the variable, so fuel is charged once per
    /// strip.
    pub(super) charge_per_strip: bool,
}

/// How the induction variable changes at the back edge.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Step {
    /// A constant, `0 < |step| <= MAX_STEP`.
    Const(i32),
    /// A loop-invariant local, added (`up`) or subtracted; only for
    /// ordered comparisons, whose strip end checks its sign at run time.
    Local { local: u32, up: bool },
}

/// What the induction variable is compared with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Limit {
    /// A loop-invariant local.
    Local(u32),
    /// A constant.
    Const(i64),
}

/// The comparison under which the back edge is taken.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum LatchCmp {
    /// `ne`.
    Ne,
    /// `lt`.
    Lt { signed: bool },
    /// `le`.
    Le { signed: bool },
    /// `gt`.
    Gt { signed: bool },
    /// `ge`.
    Ge { signed: bool },
}

impl StripPlan {
    /// How the back edge compares the variable with the strip's end: as
    /// the loop compares it with its limit, strictly.
    pub(super) fn back_edge_cc(&self) -> IntCC {
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
            c.fuel += fuel.map_or(0, |f| u64::from(fuel_cost(&op, f)));
            if branches_to(&op, frames.len(), c.depth) {
                c.back_edges += 1;
            }
            if matches!(
                op,
                O::Br { .. }
                    | O::BrIf { .. }
                    | O::BrOnNull { .. }
                    | O::BrOnNonNull { .. }
                    | O::BrTable { .. }
                    | O::If { .. }
                    | O::Else
                    | O::Return
                    | O::Unreachable
            ) {
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
        Operator::Br { relative_depth }
        | Operator::BrIf { relative_depth }
        | Operator::BrOnNull { relative_depth }
        | Operator::BrOnNonNull { relative_depth } => hits(*relative_depth),
        Operator::BrTable { targets } => hits(targets.default()) || targets.targets().any(|d| d.is_ok_and(hits)),
        _ => false,
    }
}

/// Whether one execution of `op` does bounded work, so that `k` iterations
/// of a body made of such operators are bounded too (calls run unbounded
/// callees, bulk operations scale with their operands, a wait blocks).
fn bounded(op: &Operator<'_>) -> bool {
    use Operator as O;
    !is_bulk(op)
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
            [Tail::Get(a), Tail::Const(k, w1), op @ (Tail::Add(w2) | Tail::Sub(w2)), Tail::Tee(b)]
                if a == b && w1 == w2 =>
            {
                let step = if matches!(op, Tail::Add(_)) { k } else { k.checked_neg()? };
                if step == 0 || step.abs() > MAX_STEP {
                    return None;
                }
                Some((a, Step::Const(step as i32), w1))
            }
            [Tail::Get(a), Tail::Get(step), op @ (Tail::Add(false) | Tail::Sub(false)), Tail::Tee(b)]
                if a == b && step != a =>
            {
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
    let (iv, step, wide, limit, cmp) =
        if n >= 6 && matches!(t[n - 1], Tail::Cmp(..)) && matches!(t[n - 2], Tail::Tee(_)) {
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
        format!(
            "(module (func (param $i i32) (param $n i32) (local $d i32) (local $s i32) (loop $l {extra} {tail} br_if $l)))"
        )
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
        let nested = format!(
            "(module (func (param $i i32) (param $n i32) (loop $o (loop $l {tail} br_if $l) (br_if $o (local.get $n)))))"
        );
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
