//! Structured control flow: frames, branches, and skipping unreachable code.

use super::FuncTranslator;
use crate::abi::clif_type;
use cranelift_codegen::ir::{self, BlockArg, InstBuilder, JumpTableData, Value};
use kiln_environ::*;
use wasmparser::BlockType;

/// One entry of the control stack.
#[derive(Debug)]
pub enum ControlFrame {
    /// `block` (and the function body).
    Block {
        /// Continuation after `end`; its parameters are the results.
        destination: ir::Block,
        /// Number of results.
        num_results: usize,
        /// Operand stack height below the parameters.
        original_stack_size: usize,
        /// Whether any branch targets the continuation.
        exit_is_branched_to: bool,
        /// Whether every branch to the continuation so far was taken with
        /// an interruption check behind it (see `FuncTranslator::checked`).
        exit_checked: bool,
        /// Fuel every way into the continuation adds for it (see `prepay.rs`).
        prepaid: i64,
    },
    /// `loop`.
    Loop {
        /// Continuation after `end`.
        destination: ir::Block,
        /// Loop header; branches go here, with the loop's parameters.
        header: ir::Block,
        /// Number of parameters.
        num_params: usize,
        /// Number of results.
        num_results: usize,
        /// Operand stack height below the parameters.
        original_stack_size: usize,
        /// Fuel every edge into the header adds for it (see `prepay.rs`).
        prepaid: i64,
    },
    /// `if`.
    If {
        /// Continuation after `end`.
        destination: ir::Block,
        /// Where a false condition goes.
        else_block: ir::Block,
        /// The parameter values, which the else arm starts from.
        params: Vec<Value>,
        /// Number of results.
        num_results: usize,
        /// Operand stack height below the parameters.
        original_stack_size: usize,
        /// Whether any branch targets the continuation.
        exit_is_branched_to: bool,
        /// Whether the `if` itself was reachable (so the else arm is).
        head_is_reachable: bool,
        /// Whether an `else` was seen, and if so whether the then arm ended reachable.
        then_end_reachable: Option<bool>,
        /// As for `Block`.
        exit_checked: bool,
        /// `checked` at the `if` (where the else arm starts).
        head_checked: bool,
        /// `checked` at the end of the then arm (meaningful once `else` was seen).
        then_end_checked: bool,
        /// Fuel every way into the continuation adds for it (see `prepay.rs`).
        prepaid: i64,
    },
}

impl ControlFrame {
    fn num_results(&self) -> usize {
        match self {
            ControlFrame::Block { num_results, .. }
            | ControlFrame::Loop { num_results, .. }
            | ControlFrame::If { num_results, .. } => *num_results,
        }
    }

    fn original_stack_size(&self) -> usize {
        match self {
            ControlFrame::Block { original_stack_size, .. }
            | ControlFrame::Loop { original_stack_size, .. }
            | ControlFrame::If { original_stack_size, .. } => *original_stack_size,
        }
    }

    fn destination(&self) -> ir::Block {
        match self {
            ControlFrame::Block { destination, .. }
            | ControlFrame::Loop { destination, .. }
            | ControlFrame::If { destination, .. } => *destination,
        }
    }

    /// The block a branch to this frame goes to, and how many values it carries.
    fn branch_target(&self) -> (ir::Block, usize) {
        match self {
            ControlFrame::Loop { header, num_params, .. } => (*header, *num_params),
            ControlFrame::Block { destination, num_results, .. }
            | ControlFrame::If { destination, num_results, .. } => (*destination, *num_results),
        }
    }

    /// The fuel a branch to this frame adds on the way (see `prepay.rs`).
    pub(crate) fn branch_prepay(&self) -> i64 {
        match self {
            ControlFrame::Loop { prepaid, .. } | ControlFrame::Block { prepaid, .. } | ControlFrame::If { prepaid, .. } => {
                *prepaid
            }
        }
    }

    /// The fuel the way out of this frame at its `end` (or, for `if`, at
    /// `else`) adds for the continuation, when that `end` joins anything.
    pub(crate) fn end_prepay(&self) -> i64 {
        match self {
            ControlFrame::Block { prepaid, exit_is_branched_to: true, .. } | ControlFrame::If { prepaid, .. } => *prepaid,
            _ => 0,
        }
    }

    /// Records a branch to this frame, taken with `checked` as the current
    /// interruption-check state.
    fn mark_branched_to(&mut self, checked: bool) {
        match self {
            ControlFrame::Block { exit_is_branched_to, exit_checked, .. }
            | ControlFrame::If { exit_is_branched_to, exit_checked, .. } => {
                *exit_is_branched_to = true;
                *exit_checked &= checked;
            }
            // A branch to a loop goes back to its header, which checks.
            ControlFrame::Loop { .. } => {}
        }
    }
}

pub(crate) fn block_args(vals: &[Value]) -> Vec<BlockArg> {
    vals.iter().map(|v| BlockArg::Value(*v)).collect()
}

impl FuncTranslator<'_, '_> {
    /// Parameter and result types of a block type.
    pub(crate) fn block_signature(&self, bt: BlockType) -> WasmResult<(Vec<WasmValType>, Vec<WasmValType>)> {
        Ok(match bt {
            BlockType::Empty => (vec![], vec![]),
            BlockType::Type(t) => (vec![], vec![WasmValType::from_wasmparser(t)?]),
            BlockType::FuncType(i) => {
                let ft = &self.module.types[i as usize];
                (ft.params().to_vec(), ft.results().to_vec())
            }
        })
    }

    fn new_block_with_params(&mut self, types: &[WasmValType]) -> ir::Block {
        let b = self.builder.create_block();
        for t in types {
            self.builder.append_block_param(b, clif_type(*t));
        }
        b
    }

    pub(crate) fn translate_block(&mut self, bt: BlockType, pos: u64) -> WasmResult<()> {
        let (params, results) = self.block_signature(bt)?;
        let destination = self.new_block_with_params(&results);
        let prepaid = self.frame_prepay(pos);
        self.control.push(ControlFrame::Block {
            destination,
            num_results: results.len(),
            original_stack_size: self.stack.len() - params.len(),
            exit_is_branched_to: false,
            exit_checked: true,
            prepaid,
        });
        Ok(())
    }

    /// The fuel to prepay for the frame opened at `pos` (see `prepay.rs`).
    fn frame_prepay(&self, pos: u64) -> i64 {
        match self.fuel_var {
            Some(_) if !self.fuel_suspended => self.prepaid_frames.get(&pos).copied().unwrap_or(0),
            _ => 0,
        }
    }

    pub(crate) fn translate_loop(&mut self, bt: BlockType, pos: u64) -> WasmResult<()> {
        let (params, results) = self.block_signature(bt)?;
        if let Some(plan) = self.take_strip_plan(pos) {
            // A counted loop (empty block type): see `strip.rs`.
            self.fuel_flush();
            let destination = self.new_block_with_params(&results);
            let header = self.begin_strip_loop(plan);
            self.control.push(ControlFrame::Loop {
                destination,
                header,
                num_params: 0,
                num_results: 0,
                original_stack_size: self.stack.len(),
                prepaid: 0,
            });
            return Ok(());
        }
        let prepaid = self.frame_prepay(pos);
        self.fuel_flush_prepaying(prepaid);
        let header = self.new_block_with_params(&params);
        let destination = self.new_block_with_params(&results);
        let args = block_args(self.peekn(params.len()));
        self.builder.ins().jump(header, &args);
        self.builder.switch_to_block(header);
        // The header's first stretch is paid (see `prepay.rs`).
        self.fuel_pending = -prepaid;
        let n = self.stack.len();
        self.stack.truncate(n - params.len());
        let header_params = self.builder.block_params(header).to_vec();
        self.stack.extend(header_params);
        self.control.push(ControlFrame::Loop {
            destination,
            header,
            num_params: params.len(),
            num_results: results.len(),
            original_stack_size: self.stack.len() - params.len(),
            prepaid,
        });
        self.on_loop_header();
        Ok(())
    }

    pub(crate) fn translate_if(&mut self, bt: BlockType, pos: u64) -> WasmResult<()> {
        let prepaid = self.frame_prepay(pos);
        let cond = self.pop1();
        let (params, results) = self.block_signature(bt)?;
        let destination = self.new_block_with_params(&results);
        let then_block = self.builder.create_block();
        let else_block = self.builder.create_block();
        self.builder.ins().brif(cond, then_block, &[], else_block, &[]);
        self.builder.seal_block(then_block);
        self.builder.seal_block(else_block);
        self.builder.switch_to_block(then_block);
        let param_vals = self.peekn(params.len()).to_vec();
        self.control.push(ControlFrame::If {
            destination,
            else_block,
            params: param_vals,
            num_results: results.len(),
            original_stack_size: self.stack.len() - params.len(),
            exit_is_branched_to: false,
            head_is_reachable: true,
            then_end_reachable: None,
            exit_checked: true,
            head_checked: self.checked,
            then_end_checked: true,
            prepaid,
        });
        Ok(())
    }

    pub(crate) fn translate_else(&mut self) -> WasmResult<()> {
        let reachable = self.reachable;
        let frame = self.control.last_mut().expect("validated: else without if");
        let ControlFrame::If {
            destination,
            else_block,
            params,
            num_results,
            original_stack_size,
            head_is_reachable,
            then_end_reachable,
            head_checked,
            then_end_checked,
            ..
        } = frame
        else {
            unreachable!("validated: else outside if");
        };
        let (destination, else_block, num_results, original) = (*destination, *else_block, *num_results, *original_stack_size);
        *then_end_reachable = Some(reachable);
        *then_end_checked = !reachable || self.checked;
        self.checked = *head_checked;
        let head = *head_is_reachable;
        let params = params.clone();
        if reachable {
            let args = block_args(self.peekn(num_results));
            self.builder.ins().jump(destination, &args);
        }
        self.stack.truncate(original);
        self.reachable = head;
        if head {
            self.builder.switch_to_block(else_block);
            self.stack.extend(params);
        }
        Ok(())
    }

    pub(crate) fn translate_end(&mut self) -> WasmResult<()> {
        let frame = self.control.pop().expect("validated: end without frame");
        let num_results = frame.num_results();
        if self.reachable {
            let args = block_args(self.peekn(num_results));
            self.builder.ins().jump(frame.destination(), &args);
        }
        self.stack.truncate(frame.original_stack_size());

        let mut next_reachable = self.reachable;
        // The check state after `end`: every way in (fallthrough, branches
        // to the label, for `if` the other arm) must have checked.
        let fallthrough_checked = !self.reachable || self.checked;
        self.checked = match &frame {
            ControlFrame::Block { exit_checked, .. } => fallthrough_checked && *exit_checked,
            ControlFrame::Loop { .. } => fallthrough_checked,
            ControlFrame::If { exit_checked, head_checked, then_end_checked, then_end_reachable, .. } => {
                let other_arm = match then_end_reachable {
                    Some(_) => *then_end_checked,
                    None => *head_checked,
                };
                fallthrough_checked && *exit_checked && other_arm
            }
        };
        match &frame {
            ControlFrame::Block { exit_is_branched_to, .. } => next_reachable |= *exit_is_branched_to,
            ControlFrame::Loop { header, .. } => {
                self.builder.seal_block(*header);
                self.end_strip_loop(*header);
            }
            ControlFrame::If { else_block, params, exit_is_branched_to, head_is_reachable, then_end_reachable, destination, .. } => {
                next_reachable |= *exit_is_branched_to;
                if then_end_reachable.is_none() && *head_is_reachable {
                    // No else arm: a false condition passes the parameters
                    // straight through as the results.
                    self.builder.switch_to_block(*else_block);
                    self.fuel_flush_prepaying(frame.end_prepay());
                    let args = block_args(params);
                    self.builder.ins().jump(*destination, &args);
                    next_reachable = true;
                }
                if let Some(true) = then_end_reachable {
                    next_reachable = true;
                }
            }
        }

        let destination = frame.destination();
        self.builder.switch_to_block(destination);
        self.builder.seal_block(destination);
        if next_reachable {
            // Every way in paid the stretch that starts here (`prepay.rs`).
            self.fuel_pending -= frame.end_prepay();
        }
        self.reachable = next_reachable;
        if next_reachable {
            let vals = self.builder.block_params(destination).to_vec();
            self.stack.extend(vals);
        }
        Ok(())
    }

    /// Handles an operator while the current position is unreachable: only
    /// control structure matters.
    pub(crate) fn translate_unreachable_operator(&mut self, op: &wasmparser::Operator<'_>) -> WasmResult<()> {
        use wasmparser::Operator as O;
        match op {
            O::Block { .. } | O::Loop { .. } | O::If { .. } => self.unreachable_depth += 1,
            O::Else if self.unreachable_depth == 0 => self.translate_else()?,
            O::End if self.unreachable_depth == 0 => self.translate_end()?,
            O::End => self.unreachable_depth -= 1,
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn translate_br(&mut self, depth: u32) {
        let i = self.control.len() - 1 - depth as usize;
        let (target, n) = self.control[i].branch_target();
        self.control[i].mark_branched_to(self.checked);
        self.fuel_flush_prepaying(self.control[i].branch_prepay());
        let args = block_args(self.peekn(n));
        self.builder.ins().jump(target, &args);
        self.reachable = false;
    }

    pub(crate) fn translate_br_if(&mut self, depth: u32) {
        let cond = self.pop1();
        let i = self.control.len() - 1 - depth as usize;
        let (target, n) = self.control[i].branch_target();
        self.control[i].mark_branched_to(self.checked);
        // A back edge to a prepaid header pays its stretch here, folded
        // into this block's add; falling through takes it back.
        let prepay = self.control[i].branch_prepay();
        self.fuel_flush_prepaying(prepay);
        let args = block_args(self.peekn(n));
        let next = self.builder.create_block();
        self.builder.ins().brif(cond, target, &args, next, &[]);
        self.builder.seal_block(next);
        self.builder.switch_to_block(next);
        self.fuel_pending -= prepay;
    }

    pub(crate) fn translate_br_table(&mut self, table: &wasmparser::BrTable<'_>) -> WasmResult<()> {
        let index = self.pop1();
        let mut depths = Vec::with_capacity(table.len() as usize);
        for t in table.targets() {
            depths.push(t?);
        }
        let default = table.default();
        let mut calls = Vec::with_capacity(depths.len());
        let make_call = |this: &mut Self, depth: u32| {
            let i = this.control.len() - 1 - depth as usize;
            let (target, n) = this.control[i].branch_target();
            this.control[i].mark_branched_to(this.checked);
            let args = block_args(this.peekn(n));
            this.builder.func.dfg.block_call(target, &args)
        };
        for d in &depths {
            calls.push(make_call(self, *d));
        }
        let def = make_call(self, default);
        let jt = self.builder.create_jump_table(JumpTableData::new(def, &calls));
        self.builder.ins().br_table(index, jt);
        self.reachable = false;
        Ok(())
    }

    pub(crate) fn translate_return(&mut self) {
        let n = self.control[0].num_results();
        let vals = self.peekn(n).to_vec();
        self.interrupt_before_return();
        self.builder.ins().return_(&vals);
        self.reachable = false;
    }

    /// Hook at every loop header: fuel and epoch checks.
    fn on_loop_header(&mut self) {
        self.interrupt_loop_header();
    }
}
