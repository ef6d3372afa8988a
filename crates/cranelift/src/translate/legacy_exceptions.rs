//! Legacy exception handling (`try`, `catch`, `catch_all`, `rethrow`,
//! `delegate`), which LLVM still emits by default, on the machinery of
//! `exceptions.rs`.
//!
//! A legacy `try` is a block whose body has one handler in scope, a
//! catch-all going to the try's *dispatch block*: its clauses come after
//! the body, so they are not known while the body's calls are emitted.
//! At the first clause the dispatch block is filled in: it tests the
//! exception's tag against each `catch` clause's tag in order (the same
//! address comparison the runtime makes), entering the first that matches
//! with its payload pushed; an exception no clause matches is thrown on
//! (`throw_ref`) to the handlers outside the `try`. A `catch_all` clause
//! matches whatever is left. The caught object stays available to
//! `rethrow` inside the clauses. `delegate` ends a `try` whose dispatch
//! throws everything on to the handlers in scope at its label. An
//! exception that no clause catches thus costs one more trip through the
//! runtime; code that does not throw pays nothing, as with `try_table`.

use super::FuncTranslator;
use super::control::ControlFrame;
use cranelift_codegen::ir::{self, InstBuilder, Value, types};
use kiln_environ::vmoffsets::exn;
use kiln_environ::*;

/// An open legacy `try`.
#[derive(Debug)]
pub(crate) struct LegacyTry {
    /// The number of control frames outside the `try` (its frame's index).
    control_depth: usize,
    /// The handler stack's height outside the `try`.
    handlers_below: usize,
    /// Where every exception thrown in the body goes, with the object as
    /// its parameter.
    dispatch: ir::Block,
    /// The exception object, once the clauses started (for `rethrow`).
    exn: Option<Value>,
    /// The block where the next clause's tag test goes (the earlier tests
    /// failed there), until a `catch_all`.
    next_test: Option<ir::Block>,
}

impl LegacyTry {
    /// The handler stack's height below this `try`'s handler, if its
    /// handler is in scope (its body is being translated).
    pub(crate) fn body_handlers(&self) -> Option<(usize, usize)> {
        self.exn.is_none().then_some((self.control_depth, self.handlers_below))
    }
}

impl FuncTranslator<'_, '_> {
    /// `try bt` at `pos`.
    pub(crate) fn translate_legacy_try(&mut self, bt: wasmparser::BlockType, pos: u64) -> WasmResult<()> {
        let dispatch = self.builder.create_block();
        self.builder.append_block_param(dispatch, types::I64);
        let handlers_below = self.handlers.len();
        self.handlers.push((None, dispatch));
        self.legacy_tries.push(LegacyTry {
            control_depth: self.control.len(),
            handlers_below,
            dispatch,
            exn: None,
            next_test: None,
        });
        self.translate_block(bt, pos)
    }

    /// The index of the innermost legacy `try` if it is the innermost frame.
    fn innermost_try(&self) -> Option<usize> {
        let depth = self.control.len().checked_sub(1)?;
        let i = self.legacy_tries.len().checked_sub(1)?;
        (self.legacy_tries[i].control_depth == depth).then_some(i)
    }

    /// Ends the body or the previous clause of the innermost `try` (a jump
    /// to its end, when reachable); on leaving the body, takes its handler
    /// out of scope and starts the dispatch block. Returns the `try`.
    fn end_try_part(&mut self) -> usize {
        let i = self.innermost_try().expect("validated: a clause belongs to the innermost try");
        if self.reachable {
            self.translate_br(0);
        }
        if let ControlFrame::Block { original_stack_size, .. } = self.control[self.control.len() - 1] {
            self.stack.truncate(original_stack_size);
        }
        if self.legacy_tries[i].exn.is_none() {
            self.handlers.truncate(self.legacy_tries[i].handlers_below);
            let dispatch = self.legacy_tries[i].dispatch;
            self.builder.switch_to_block(dispatch);
            self.builder.seal_block(dispatch);
            self.hook(|i, e| i.on_handler_entry(e));
            let exn = self.builder.block_params(dispatch)[0];
            self.legacy_tries[i].exn = Some(exn);
            self.legacy_tries[i].next_test = Some(dispatch);
        }
        i
    }

    /// Switches to `block` unless it is the current block.
    fn switch_to(&mut self, block: ir::Block) {
        if self.builder.current_block() != Some(block) {
            self.builder.switch_to_block(block);
        }
    }

    /// `catch tag`.
    pub(crate) fn translate_legacy_catch(&mut self, tag: u32) {
        let i = self.end_try_part();
        let (exn, test) = (self.legacy_tries[i].exn, self.legacy_tries[i].next_test);
        let (Some(exn), Some(test)) = (exn, test) else { unreachable!("validated: no catch after catch_all") };
        self.switch_to(test);
        let flags = ir::MemFlagsData::trusted().with_readonly();
        let thrown = self.builder.ins().load(types::I64, flags, exn, exn::TAG as i32);
        let t = TagIndex::from_u32(tag);
        let expected = match self.module.defined_tag_index(t) {
            Some(d) => self.builder.ins().iadd_imm_s(self.vmctx, i64::from(self.offsets.defined_tag(d))),
            None => self.builder.ins().load(types::I64, flags, self.vmctx, self.offsets.imported_tag(t) as i32),
        };
        let is = self.builder.ins().icmp(ir::condcodes::IntCC::Equal, thrown, expected);
        let (body, next) = (self.builder.create_block(), self.builder.create_block());
        self.builder.ins().brif(is, body, &[], next, &[]);
        self.builder.seal_block(body);
        self.builder.seal_block(next);
        self.builder.switch_to_block(body);
        self.legacy_tries[i].next_test = Some(next);
        self.reachable = true;
        self.push_payload(t, exn);
    }

    /// `catch_all`.
    pub(crate) fn translate_legacy_catch_all(&mut self) {
        let i = self.end_try_part();
        let test = self.legacy_tries[i].next_test.take().expect("validated: one catch_all, last");
        self.switch_to(test);
        self.reachable = true;
    }

    /// `rethrow label`.
    pub(crate) fn translate_rethrow(&mut self, label: u32) {
        let frame = self.control.len() - 1 - label as usize;
        let exn = self
            .legacy_tries
            .iter()
            .rev()
            .find(|t| t.control_depth == frame)
            .and_then(|t| t.exn)
            .expect("validated: rethrow names a catch clause");
        self.call_throwing_builtin(BuiltinFunctionIndex::throw_ref, &[exn]);
    }

    /// `delegate label`: ends the innermost `try` like `end`; its body's
    /// exceptions go to the handlers in scope at `label` (counted from
    /// outside the `try`), or to the caller.
    pub(crate) fn translate_legacy_delegate(&mut self, label: u32) -> WasmResult<()> {
        let i = self.innermost_try().expect("validated: delegate ends a try");
        let t = self.legacy_tries.remove(i);
        self.handlers.truncate(t.handlers_below);
        self.translate_end()?;
        let target = self.control.len() - 1 - label as usize;
        self.builder.seal_block(t.dispatch);
        let exn = self.builder.block_params(t.dispatch)[0];
        self.rethrow_out_of_line(t.dispatch, exn, Some(target), true);
        Ok(())
    }

    /// After the `end` of a frame (the current block being its
    /// continuation, not yet written to): if it was a legacy `try`, throws
    /// what no clause caught on to the outer handlers, and forgets it.
    pub(crate) fn close_legacy_try(&mut self) {
        let Some(i) = self.legacy_tries.len().checked_sub(1) else { return };
        if self.legacy_tries[i].control_depth != self.control.len() {
            return;
        }
        let t = self.legacy_tries.remove(i);
        match t.exn {
            // No clause: everything the body throws goes on.
            None => {
                self.handlers.truncate(t.handlers_below);
                self.builder.seal_block(t.dispatch);
                let exn = self.builder.block_params(t.dispatch)[0];
                self.rethrow_out_of_line(t.dispatch, exn, None, true);
            }
            Some(exn) => {
                if let Some(test) = t.next_test {
                    self.rethrow_out_of_line(test, exn, None, false);
                }
            }
        }
    }

    /// In `block` (away from the current one, which is left unchanged, as
    /// is the instrumentation's state), throws `exn` on: to the handlers in
    /// scope, or to those in scope inside control frame `target`. `entry`
    /// says whether the runtime enters the block (it then reloads fuel).
    fn rethrow_out_of_line(&mut self, block: ir::Block, exn: Value, target: Option<usize>, entry: bool) {
        self.out_of_line(|t| {
            t.builder.switch_to_block(block);
            if entry {
                t.hook(|i, e| i.on_handler_entry(e));
            }
            let outer = target.map(|k| {
                let keep = t.handlers_inside(k);
                t.handlers.split_off(keep)
            });
            t.call_throwing_builtin(BuiltinFunctionIndex::throw_ref, &[exn]);
            if let Some(rest) = outer {
                t.handlers.extend(rest);
            }
        });
    }

    /// The height of the handler stack as it is directly inside control
    /// frame `k`: without the handlers of scopes nested deeper.
    fn handlers_inside(&self, k: usize) -> usize {
        let tables = self.try_scopes.iter().map(|s| s.handler_span());
        let tries = self.legacy_tries.iter().filter_map(LegacyTry::body_handlers);
        tables.chain(tries).filter(|(depth, _)| *depth > k).map(|(_, below)| below).min().unwrap_or(self.handlers.len())
    }
}
