//! Fuel for the first stretch after a loop header or a join, paid on the
//! ways in.
//!
//! Fuel is charged per basic block (see `fuel.rs`): the translator
//! tallies operator costs and adds the tally to the counter where a basic
//! block ends. A loop header is a join of the entry edge and the back
//! edges, so the add for the header's first stretch (the operators from
//! `loop` up to the first branch or call) cannot be folded by Cranelift
//! into the add that ended the previous iteration: every iteration of a
//! loop with any control flow inside paid two adds where one would do, and
//! for a loop that calls, another copy into the pinned register.
//!
//! Instead, every edge into such a header adds the stretch's cost `H` to
//! the counter together with its own tally (one add), and the translator
//! starts the header with a tally of `-H`, so the stretch's operators bring
//! it back to zero by the time it ends: nothing to add there. The totals
//! are unchanged on every path (each entry adds `H`, each pass through the
//! stretch subtracts it); where the lookahead below ends the stretch
//! differently from the translator, the leftover tally is simply added at
//! the next flush. A branch that leaves the loop instead of taking a back
//! edge gives `H` back in its own next flush.
//!
//! The check at the header compares the counter with `H` instead of 0, so
//! fuel runs out exactly where it did before. The one visible difference:
//! a trap inside the stretch is charged the whole stretch (the trap handler
//! reads the counter, which has it paid).
//!
//! The same goes for the join after a block or an `if`: every way in
//! (the fallthrough at `end` and at `else`, the empty else arm of an `if`
//! without one, and each `br`/`br_if` to the label) adds the cost of the
//! stretch after `end`, and the code there starts with its negation
//! pending. A diamond then pays one add per path, in its arm, where it
//! paid one there and another at the join. (A block nothing branches to
//! joins nothing and charges straight through, as before.)
//!
//! Only `br` and `br_if` take the extra add (`br_table` would need an edge
//! block per target), so a frame that some `br_table` targets is not
//! prepaid.

use std::collections::HashMap;
use wasmparser::{FunctionBody, Operator};

use super::fuel::fuel_cost;
use kiln_environ::FuelCosts;

/// For every loop, block and `if` of `body` worth prepaying, the position
/// of its opening operator and the fuel paid on the way in: for a loop its
/// header's first stretch, for a block or `if` the first stretch after its
/// `end` (where its branches and arms join). Reads the body without
/// validating it: on a malformed body the translator's validation fails
/// anyway, so the plan is just cut short.
pub(super) fn plan(body: &FunctionBody<'_>, costs: &FuelCosts) -> HashMap<u64, i64> {
    let mut prepaid = HashMap::new();
    let Ok(mut reader) = body.get_operators_reader() else { return prepaid };
    // Open frames, by the position of their opening operator.
    let mut frames: Vec<u64> = Vec::new();
    let mut excluded = Vec::new();
    while !reader.eof() {
        let Ok((op, pos)) = reader.read_with_offset() else { break };
        match op {
            Operator::Loop { .. } => {
                frames.push(pos);
                let stretch = first_stretch(reader.clone(), costs);
                if stretch > 0 {
                    prepaid.insert(pos, stretch);
                }
            }
            Operator::Block { .. } | Operator::If { .. } | Operator::TryTable { .. } | Operator::Try { .. } => {
                frames.push(pos)
            }
            Operator::End | Operator::Delegate { .. } => {
                // The function body's own `end` closes no frame here.
                if let Some(open) = frames.pop() {
                    let stretch = first_stretch(reader.clone(), costs);
                    if stretch > 0 && !prepaid.contains_key(&open) {
                        prepaid.insert(open, stretch);
                    }
                }
            }
            Operator::BrTable { targets } => {
                let depths = targets.targets().chain(std::iter::once(Ok(targets.default())));
                for depth in depths.flatten() {
                    let target = frames.len().checked_sub(1 + depth as usize).and_then(|i| frames.get(i));
                    if let Some(open) = target {
                        excluded.push(*open);
                    }
                }
            }
            _ => {}
        }
    }
    for pos in excluded {
        prepaid.remove(&pos);
    }
    prepaid
}

/// The fuel of the operators `reader` starts at, up to and including the
/// first one after which the translator adds its tally to the counter (a
/// branch, a block boundary, a call, a return, a trap).
fn first_stretch(mut reader: wasmparser::OperatorsReader<'_>, costs: &FuelCosts) -> i64 {
    let mut total = 0i64;
    while !reader.eof() {
        let Ok(op) = reader.read() else { break };
        total += i64::from(fuel_cost(&op, costs));
        if ends_stretch(&op) {
            break;
        }
    }
    total
}

/// Whether the translator flushes its fuel tally after `op`.
fn ends_stretch(op: &Operator<'_>) -> bool {
    use Operator as O;
    matches!(
        op,
        O::Loop { .. }
            | O::If { .. }
            | O::Else
            | O::End
            | O::Br { .. }
            | O::BrIf { .. }
            | O::BrOnNull { .. }
            | O::BrOnNonNull { .. }
            | O::BrTable { .. }
            | O::Return
            | O::Unreachable
            | O::Call { .. }
            | O::CallIndirect { .. }
            | O::ReturnCall { .. }
            | O::ReturnCallIndirect { .. }
            | O::CallRef { .. }
            | O::ReturnCallRef { .. }
            | O::Throw { .. }
            | O::ThrowRef
            | O::Rethrow { .. }
            | O::Catch { .. }
            | O::CatchAll
            | O::Delegate { .. }
    )
}
