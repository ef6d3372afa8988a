//! Structured control flow: frames, branches, and skipping unreachable code.
//! Fuel and epoch instrumentation is not here: the translation of each
//! control operator calls the interruption hooks for its points of the
//! control flow (see `interrupt/`).

use super::FuncTranslator;
use crate::abi::clif_type;
use cranelift_codegen::ir::{self, BlockArg, InstBuilder, JumpTableData, Value};
use kiln_environ::*;
use wasmparser::BlockType;

/// One entry of the control stack.
#[derive(Debug)]
pub(crate) enum ControlFrame {
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

    /// Records a branch to this frame.
    fn mark_branched_to(&mut self) {
        match self {
            ControlFrame::Block { exit_is_branched_to, .. } | ControlFrame::If { exit_is_branched_to, .. } => {
                *exit_is_branched_to = true;
            }
            // A branch to a loop goes back to its header.
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
            BlockType::Type(t) => (vec![], vec![WasmValType::from_wasmparser(t, self.module.types.as_slice())?]),
            BlockType::FuncType(i) => {
                let ft = self.module.func_type_at(TypeIndex::from_u32(i));
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
        self.interruption.on_block(pos);
        self.control.push(ControlFrame::Block {
            destination,
            num_results: results.len(),
            original_stack_size: self.stack.len() - params.len(),
            exit_is_branched_to: false,
        });
        Ok(())
    }

    pub(crate) fn translate_loop(&mut self, bt: BlockType, pos: u64) -> WasmResult<()> {
        let (params, results) = self.block_signature(bt)?;
        if let Some(plan) = self.hook(|i, e| i.enter_loop(e, pos)) {
            // A counted loop (empty block type), strip-mined: see
            // `interrupt/strip/`.
            let destination = self.new_block_with_params(&results);
            let header = self.hook(|i, e| i.begin_strip_loop(e, plan));
            self.control.push(ControlFrame::Loop {
                destination,
                header,
                num_params: 0,
                num_results: 0,
                original_stack_size: self.stack.len(),
            });
            return Ok(());
        }
        let header = self.new_block_with_params(&params);
        let destination = self.new_block_with_params(&results);
        let args = block_args(self.peekn(params.len()));
        self.builder.ins().jump(header, &args);
        self.osr_enter_loop(header, params.is_empty() && self.stack.is_empty())?;
        self.builder.switch_to_block(header);
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
        });
        self.hook(|i, e| i.on_loop_header(e));
        Ok(())
    }

    pub(crate) fn translate_if(&mut self, bt: BlockType, pos: u64) -> WasmResult<()> {
        self.hook(|i, e| i.on_if(e, pos));
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
        });
        Ok(())
    }

    pub(crate) fn translate_else(&mut self) -> WasmResult<()> {
        let reachable = self.reachable;
        self.hook(|i, e| i.on_else(e, reachable));
        let frame = self.control.last_mut().expect("validated: else without if");
        let ControlFrame::If {
            destination,
            else_block,
            params,
            num_results,
            original_stack_size,
            head_is_reachable,
            then_end_reachable,
            ..
        } = frame
        else {
            unreachable!("validated: else outside if");
        };
        let (destination, else_block, num_results, original) =
            (*destination, *else_block, *num_results, *original_stack_size);
        *then_end_reachable = Some(reachable);
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
        let reachable = self.reachable;
        self.hook(|i, e| i.on_end(e, reachable));
        let frame = self.control.pop().expect("validated: end without frame");
        let num_results = frame.num_results();
        if self.reachable {
            let args = block_args(self.peekn(num_results));
            self.builder.ins().jump(frame.destination(), &args);
        }
        self.stack.truncate(frame.original_stack_size());

        let mut next_reachable = self.reachable;
        match &frame {
            ControlFrame::Block { exit_is_branched_to, .. } => next_reachable |= *exit_is_branched_to,
            ControlFrame::Loop { header, .. } => {
                self.builder.seal_block(*header);
                let header = *header;
                self.hook(|i, e| i.on_loop_end(e, header));
            }
            ControlFrame::If {
                else_block,
                params,
                exit_is_branched_to,
                head_is_reachable,
                then_end_reachable,
                destination,
                ..
            } => {
                next_reachable |= *exit_is_branched_to;
                if then_end_reachable.is_none() && *head_is_reachable {
                    // No else arm: a false condition passes the parameters
                    // straight through as the results.
                    self.builder.switch_to_block(*else_block);
                    self.hook(|i, e| i.on_missing_else(e));
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
        self.interruption.after_end(next_reachable);
        self.reachable = next_reachable;
        if next_reachable {
            let vals = self.builder.block_params(destination).to_vec();
            self.stack.extend(vals);
        }
        self.close_try_scope();
        self.close_legacy_try();
        Ok(())
    }

    /// Handles an operator while the current position is unreachable: only
    /// control structure matters.
    pub(crate) fn translate_unreachable_operator(&mut self, op: &wasmparser::Operator<'_>) -> WasmResult<()> {
        use wasmparser::Operator as O;
        match op {
            O::Block { .. } | O::Loop { .. } | O::If { .. } | O::TryTable { .. } | O::Try { .. } => {
                self.unreachable_depth += 1
            }
            O::Else if self.unreachable_depth == 0 => self.translate_else()?,
            O::Catch { tag_index } if self.unreachable_depth == 0 => self.translate_legacy_catch(*tag_index),
            O::CatchAll if self.unreachable_depth == 0 => self.translate_legacy_catch_all(),
            O::Delegate { relative_depth } if self.unreachable_depth == 0 => {
                self.translate_legacy_delegate(*relative_depth)?
            }
            O::Delegate { .. } => self.unreachable_depth -= 1,
            O::End if self.unreachable_depth == 0 => self.translate_end()?,
            O::End => self.unreachable_depth -= 1,
            _ => {}
        }
        Ok(())
    }

    /// The target of a conditional branch to the frame `depth` levels out
    /// (`br_if`, `br_on_null`, `br_on_non_null`) and its arguments, the
    /// label's values on top of the stack; marks the frame branched to and
    /// runs the interruption hook for the branch.
    pub(crate) fn conditional_branch(&mut self, depth: u32) -> (ir::Block, Vec<BlockArg>) {
        let index = self.control.len() - 1 - depth as usize;
        let frame = &mut self.control[index];
        let (target, n) = frame.branch_target();
        frame.mark_branched_to();
        self.hook(|i, e| i.on_br_if(e, depth));
        (target, block_args(self.peekn(n)))
    }

    pub(crate) fn translate_br(&mut self, depth: u32) {
        let index = self.control.len() - 1 - depth as usize;
        let frame = &mut self.control[index];
        let (target, n) = frame.branch_target();
        frame.mark_branched_to();
        self.hook(|i, e| i.on_br(e, depth));
        let args = block_args(self.peekn(n));
        self.builder.ins().jump(target, &args);
        self.reachable = false;
    }

    /// `br_if` at `pos`.
    pub(crate) fn translate_br_if(&mut self, depth: u32, pos: u64) {
        let cond = self.pop1();
        if self.interruption.is_strip_latch(pos) {
            self.hook(|i, e| i.on_strip_latch(e, cond));
            return;
        }
        let (target, args) = self.conditional_branch(depth);
        let next = self.builder.create_block();
        self.builder.ins().brif(cond, target, &args, next, &[]);
        self.builder.seal_block(next);
        self.builder.switch_to_block(next);
    }

    pub(crate) fn translate_br_table(&mut self, table: &wasmparser::BrTable<'_>) -> WasmResult<()> {
        let index = self.pop1();
        let mut depths = Vec::with_capacity(table.len() as usize);
        for t in table.targets() {
            depths.push(t?);
        }
        let default = table.default();
        let targets: Vec<u32> = depths.iter().copied().chain([default]).collect();
        self.hook(|i, e| i.on_br_table(e, &targets));
        let mut calls = Vec::with_capacity(depths.len());
        let make_call = |this: &mut Self, depth: u32| {
            let i = this.control.len() - 1 - depth as usize;
            let (target, n) = this.control[i].branch_target();
            this.control[i].mark_branched_to();
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
        self.hook(|i, e| i.before_exit(e));
        self.builder.ins().return_(&vals);
        self.reachable = false;
    }
}
