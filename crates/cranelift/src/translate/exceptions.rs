//! Exception handling: `try_table`, `throw`, `throw_ref`, and calls made
//! while handlers are in scope.
//!
//! Handlers cost nothing until something throws: a call inside a
//! `try_table` is a Cranelift `try_call` (the same call instruction, plus
//! an entry in the module's exception table naming its handlers), and
//! code after it checks nothing. The handler stack lists the catch clauses
//! in scope, innermost `try_table` first and each table's clauses in
//! order, which is the order the runtime tries them in. Every `try_call`
//! also names the caller's VMContext as its dynamic context: the runtime
//! finds the tags of the handlers there (a handler's Cranelift tag encodes
//! the tag's place in the VMContext, see `kiln_environ::ExnHandler`), so an
//! imported tag matches the exception of the tag it was imported from.
//!
//! A catch clause gets a block of its own, entered from the runtime with
//! the exception object in its one parameter. The blocks are filled in at
//! the `try_table`'s `end`, once every call that may reach them is
//! emitted: fuel is reloaded (the thrower published it), the payload is
//! read from the object for `catch` and `catch_ref`, the object itself is
//! pushed for `catch_ref` and `catch_all_ref`, and the block branches to
//! the clause's label like a `br` from just outside the `try_table`.
//!
//! `throw` and `throw_ref` call builtins that never return; they are
//! `try_call`s too when handlers are in scope, so an exception thrown and
//! caught in the same function takes the same path as any other.

use super::FuncTranslator;
use crate::abi::clif_type;
use cranelift_codegen::ir::{
    self, BlockArg, ExceptionTableData, ExceptionTableItem, ExceptionTag, InstBuilder, StackSlotData, StackSlotKind,
    Value, types,
};
use kiln_environ::vmoffsets::exn;
use kiln_environ::*;
use wasmparser::{Catch, TryTable};

/// A catch clause of an open `try_table`, whose block is filled in at the
/// table's `end`.
#[derive(Debug)]
pub(crate) struct PendingCatch {
    /// The clause's tag (`None` for `catch_all` and `catch_all_ref`).
    tag: Option<TagIndex>,
    /// Whether the clause pushes the exception object too.
    with_ref: bool,
    /// The label, relative to the frames outside the `try_table`.
    label: u32,
    /// The block the runtime enters, with the object as its parameter.
    block: ir::Block,
}

/// An open `try_table`.
#[derive(Debug)]
pub(crate) struct TryScope {
    /// The number of control frames outside the `try_table`.
    control_depth: usize,
    /// The handler stack's height outside the `try_table`.
    handlers_below: usize,
    /// Its clauses.
    catches: Vec<PendingCatch>,
    /// Whether any call or throw inside can reach the clauses.
    used: bool,
}

impl TryScope {
    /// The index of the `try_table`'s frame and the handler stack's height
    /// below its handlers.
    pub(crate) fn handler_span(&self) -> (usize, usize) {
        (self.control_depth, self.handlers_below)
    }
}

/// One entry of the handler stack: the encoded tag (`None` catches
/// everything) and the clause's block.
pub(crate) type Handler = (Option<u32>, ir::Block);

impl FuncTranslator<'_, '_> {
    /// `try_table bt catch* ...` at `pos`.
    pub(crate) fn translate_try_table(&mut self, table: &TryTable, pos: u64) -> WasmResult<()> {
        let mut catches = Vec::with_capacity(table.catches.len());
        for c in &table.catches {
            let (tag, with_ref, label) = match *c {
                Catch::One { tag, label } => (Some(TagIndex::from_u32(tag)), false, label),
                Catch::OneRef { tag, label } => (Some(TagIndex::from_u32(tag)), true, label),
                Catch::All { label } => (None, false, label),
                Catch::AllRef { label } => (None, true, label),
            };
            let block = self.builder.create_block();
            self.builder.append_block_param(block, types::I64);
            catches.push(PendingCatch { tag, with_ref, label, block });
        }
        let handlers_below = self.handlers.len();
        // Innermost last; within the table, the first clause last (see the
        // module docs: the stack is read from the top).
        for c in catches.iter().rev() {
            let tag = c.tag.map(|t| self.encode_tag(t));
            self.handlers.push((tag, c.block));
        }
        self.try_scopes.push(TryScope { control_depth: self.control.len(), handlers_below, catches, used: false });
        self.translate_block(table.ty, pos)
    }

    /// Where tag `t` is found in this function's VMContext, encoded for
    /// the runtime (`ExnHandler::encode_tag`).
    fn encode_tag(&self, t: TagIndex) -> u32 {
        match self.module.defined_tag_index(t) {
            Some(d) => ExnHandler::encode_tag(self.offsets.defined_tag(d), false),
            None => ExnHandler::encode_tag(self.offsets.imported_tag(t), true),
        }
    }

    /// After the `end` of a frame (already translated, the current block
    /// being the continuation): if the frame was a `try_table`, closes its
    /// handlers and fills in its catch blocks.
    pub(crate) fn close_try_scope(&mut self) {
        if self.try_scopes.last().is_none_or(|s| s.control_depth != self.control.len()) {
            return;
        }
        let Some(scope) = self.try_scopes.pop() else { return };
        self.handlers.truncate(scope.handlers_below);
        if !scope.used {
            return;
        }
        self.out_of_line(|t| {
            let stack_height = t.stack.len();
            for c in scope.catches {
                t.builder.switch_to_block(c.block);
                t.builder.seal_block(c.block);
                t.reachable = true;
                t.hook(|i, e| i.on_handler_entry(e));
                let exn = t.builder.block_params(c.block)[0];
                if let Some(tag) = c.tag {
                    t.push_payload(tag, exn);
                }
                if c.with_ref {
                    t.push(exn);
                }
                t.translate_br(c.label);
                t.stack.truncate(stack_height);
            }
        });
    }

    /// Runs `emit`, which writes code in other blocks than the current
    /// one (handlers the runtime enters), then returns to the current
    /// block with its reachability and instrumentation state as they were.
    pub(crate) fn out_of_line(&mut self, emit: impl FnOnce(&mut Self)) {
        let here = self.builder.current_block();
        let reachable = self.reachable;
        let saved = self.hook(|i, _| i.save_for_handler());
        emit(self);
        self.hook(|i, _| i.restore_after_handler(saved));
        self.reachable = reachable;
        if let Some(b) = here {
            self.builder.switch_to_block(b);
        }
    }

    /// Pushes the payload of exception object `exn`, of tag `tag`.
    pub(crate) fn push_payload(&mut self, tag: TagIndex, exn: Value) {
        let ty = self.module.func_type_at(self.module.tags[tag.index()]);
        let params = ty.params().to_vec();
        if params.is_empty() {
            return;
        }
        let flags = ir::MemFlagsData::trusted().with_readonly();
        let payload = self.builder.ins().load(types::I64, flags, exn, exn::PAYLOAD as i32);
        for (i, t) in params.iter().enumerate() {
            let v = self.builder.ins().load(clif_type(*t), flags, payload, (i as u32 * VAL_RAW_SIZE) as i32);
            self.push(v);
        }
    }

    /// The exception table of a call of signature `sig` with the handlers
    /// in scope, whose normal return goes to `normal` with the `results`
    /// return values. Marks the handlers' `try_table`s used.
    fn exception_table(&mut self, sig: ir::SigRef, normal: ir::Block, results: usize) -> ir::ExceptionTable {
        let rets: Vec<BlockArg> = (0..results as u32).map(BlockArg::TryCallRet).collect();
        let normal = self.builder.func.dfg.block_call(normal, &rets);
        let mut items = vec![ExceptionTableItem::Context(self.vmctx)];
        for &(tag, block) in self.handlers.iter().rev() {
            let call = self.builder.func.dfg.block_call(block, &[BlockArg::TryCallExn(0)]);
            match tag {
                Some(t) => items.push(ExceptionTableItem::Tag(ExceptionTag::from_u32(t), call)),
                None => {
                    // Nothing after a catch-all is ever tried.
                    items.push(ExceptionTableItem::Default(call));
                    break;
                }
            }
        }
        for s in &mut self.try_scopes {
            s.used = true;
        }
        self.builder.func.dfg.exception_tables.push(ExceptionTableData::new(sig, normal, items))
    }

    /// Calls `callee` (a direct function reference, or an address with
    /// signature `sig`) with `args`: a plain call with no handlers in
    /// scope, a `try_call` otherwise. Returns the results.
    pub(crate) fn emit_call(&mut self, callee: Callee, args: &[Value]) -> Vec<Value> {
        if self.handlers.is_empty() {
            let call = match callee {
                Callee::Direct(f) => self.builder.ins().call(f, args),
                Callee::Indirect(sig, addr) => self.builder.ins().call_indirect(sig, addr, args),
            };
            return self.builder.inst_results(call).to_vec();
        }
        let sig = match callee {
            Callee::Direct(f) => self.builder.func.dfg.ext_funcs[f].signature,
            Callee::Indirect(sig, _) => sig,
        };
        let result_types: Vec<ir::Type> =
            self.builder.func.dfg.signatures[sig].returns.iter().map(|r| r.value_type).collect();
        let normal = self.builder.create_block();
        for t in &result_types {
            self.builder.append_block_param(normal, *t);
        }
        let table = self.exception_table(sig, normal, result_types.len());
        match callee {
            Callee::Direct(f) => self.builder.ins().try_call(f, args, table),
            Callee::Indirect(_, addr) => self.builder.ins().try_call_indirect(addr, args, table),
        };
        self.builder.switch_to_block(normal);
        self.builder.seal_block(normal);
        self.builder.block_params(normal).to_vec()
    }

    /// Calls throwing builtin `index` with `args` (the VMContext is
    /// prepended), as a `try_call` when handlers are in scope; it never
    /// returns, so the code after it is a trap nothing reaches.
    pub(crate) fn call_throwing_builtin(&mut self, index: BuiltinFunctionIndex, args: &[Value]) {
        self.hook(|i, e| i.before_throw(e));
        let (sig, addr) = self.hook(|_, e| e.builtin_target(index));
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(self.vmctx);
        all.extend_from_slice(args);
        self.emit_call(Callee::Indirect(sig, addr), &all);
        self.builder.ins().trap(crate::trap_codes::to_clif(TrapCode::UnreachableCodeReached));
        self.reachable = false;
    }

    /// `throw tag`.
    pub(crate) fn translate_throw(&mut self, tag: u32) {
        let t = TagIndex::from_u32(tag);
        let n = self.module.func_type_at(self.module.tags[t.index()]).params().len();
        let values = self.popn(n);
        let slot = self.builder.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            (n.max(1) as u32) * VAL_RAW_SIZE,
            4,
        ));
        for (i, v) in values.iter().enumerate() {
            self.builder.ins().stack_store(types::I64, *v, slot, (i as u32 * VAL_RAW_SIZE) as i32);
        }
        let addr = self.builder.ins().stack_addr(types::I64, slot, 0);
        let tag = self.i32c(tag);
        self.call_throwing_builtin(BuiltinFunctionIndex::throw, &[tag, addr]);
    }

    /// `throw_ref`.
    pub(crate) fn translate_throw_ref(&mut self) {
        let exn = self.pop1();
        self.call_throwing_builtin(BuiltinFunctionIndex::throw_ref, &[exn]);
    }
}

/// What a call calls.
#[derive(Clone, Copy)]
pub(crate) enum Callee {
    /// A function of the module, by reference.
    Direct(ir::FuncRef),
    /// A code address with this signature.
    Indirect(ir::SigRef, Value),
}
