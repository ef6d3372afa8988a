//! Translation of one wasm function body to Cranelift IR.
//!
//! The translator keeps a value stack of SSA values mirroring the wasm
//! operand stack, and a control stack of frames for `block`, `loop` and `if`.
//! Each frame's continuation is a Cranelift block whose parameters are the
//! frame's results (for a loop, the header block takes the loop's
//! parameters). Code after an unconditional branch is unreachable: it is
//! skipped, counting nested frames, until the `else` or `end` that makes
//! code reachable again.
//!
//! Fuel and epoch instrumentation lives in one component,
//! [`Interruption`] (`interrupt/`), which owns all of its state. The
//! translator calls its hooks at fixed points (function entry, each
//! operator, loop headers, branches, `else`/`end`, calls, returns) through
//! [`FuncTranslator::hook`], which lends it an [`Emitter`]: the builder and
//! the function's fixed values, without the operand and control stacks.
//! Everything else here is the translation of wasm to CLIF.

mod atomics;
mod control;
mod emitter;
mod env;
mod exceptions;
mod func_refs;
mod gc;
mod interrupt;
mod legacy_exceptions;
mod memory;
mod ops;
mod simd;

use crate::abi::{clif_type, wasm_signature};
use cranelift_codegen::ir::{self, InstBuilder, JumpTableData, UserFuncName, Value};
use cranelift_codegen::isa::TargetIsa;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use emitter::Emitter;
use interrupt::Interruption;
use kiln_environ::*;
use std::collections::HashMap;

use control::ControlFrame;

/// Translates defined function `func` of `module` to Cranelift IR,
/// validating each operator as it goes.
pub fn translate_function(
    isa: &dyn TargetIsa,
    tunables: &Tunables,
    module: &ModuleInfo,
    offsets: &VMOffsets,
    func: FuncIndex,
    input: FunctionBodyInput<'_>,
    fctx: &mut FunctionBuilderContext,
) -> WasmResult<ir::Function> {
    translate(isa, tunables, module, offsets, func, input, fctx, false)
}

/// Translates the on-stack-replacement entry of `func`: a function of
/// the wasm convention taking the callee and caller VMContexts, the frame
/// pointer of a baseline-compiled activation of `func` stopped at the
/// head of a loop with nothing on its operand stack, and that loop's
/// index (an `i32`, counting every `loop` in the body, in order). It
/// loads every local from its slot in that frame
/// (`kiln_environ::vmoffsets::baseline_frame`), enters the loop and runs
/// the rest of the function, returning its results. One entry serves
/// every loop where baseline code checks (so a function whose
/// activations sit in many loops costs one compilation, not one per
/// loop); any other loop index traps as unreachable, which baseline code
/// never passes. It is the function's own translation
/// with another entry: the normal entry's code has no predecessor and
/// goes away as unreachable.
///
/// # Errors
///
/// As [`translate_function`]; [`WasmError::Unsupported`] when no loop
/// can be entered so (operands below it, loop parameters), when a loop
/// that baseline code checks at is in an exception handler's scope, with
/// instrumented loops (fuel, polled epochs), or when a local is of a type
/// a baseline frame does not hold.
pub fn translate_osr_entry(
    isa: &dyn TargetIsa,
    tunables: &Tunables,
    module: &ModuleInfo,
    offsets: &VMOffsets,
    func: FuncIndex,
    input: FunctionBodyInput<'_>,
    fctx: &mut FunctionBuilderContext,
) -> WasmResult<ir::Function> {
    translate(isa, tunables, module, offsets, func, input, fctx, true)
}

#[allow(clippy::too_many_arguments)]
fn translate(
    isa: &dyn TargetIsa,
    tunables: &Tunables,
    module: &ModuleInfo,
    offsets: &VMOffsets,
    func: FuncIndex,
    input: FunctionBodyInput<'_>,
    fctx: &mut FunctionBuilderContext,
    osr: bool,
) -> WasmResult<ir::Function> {
    let ty = module.func_type(func);
    let mut sig = wasm_signature(isa, ty);
    if osr && (tunables.consume_fuel || (tunables.epoch_interruption && !tunables.epoch_signals)) {
        // Instrumented loops' heads are not where baseline code checks.
        return Err(WasmError::Unsupported("on-stack replacement with fuel or polled epochs".into()));
    }
    if osr {
        // (callee vmctx, caller vmctx, baseline frame pointer, loop index)
        sig.params.truncate(2);
        sig.params.push(ir::AbiParam::new(ir::types::I64));
        sig.params.push(ir::AbiParam::new(ir::types::I32));
    }
    let mut clif = ir::Function::with_name_signature(UserFuncName::user(0, func.as_u32()), sig);
    let mut validator = input.validator.into_validator(Default::default());
    {
        let builder = FunctionBuilder::new(&mut clif, fctx);
        let mut t = FuncTranslator::new(isa, tunables, module, offsets, builder);
        if osr {
            t.osr = Some(Osr::default());
        }
        t.translate_body(func, &input.body, &mut validator)?;
        t.finish_osr_dispatch()?;
        t.builder.finalize(isa.frontend_config());
    }
    Ok(clif)
}

/// An on-stack-replacement translation's state (see
/// [`translate_osr_entry`]).
#[derive(Default)]
pub(crate) struct Osr {
    /// The block after the entry, which branches on the loop index once
    /// every loop is known, and the index.
    pub(crate) dispatch: Option<(ir::Block, Value)>,
    /// Each enterable loop's index and its landing block, which jumps to
    /// the loop's head.
    pub(crate) landings: Vec<(u32, ir::Block)>,
}

/// The per-function translation state.
pub struct FuncTranslator<'a, 'f> {
    pub(crate) isa: &'a dyn TargetIsa,
    pub(crate) tunables: &'a Tunables,
    pub(crate) module: &'a ModuleInfo,
    pub(crate) offsets: &'a VMOffsets,
    pub(crate) builder: FunctionBuilder<'f>,
    /// The callee VMContext parameter.
    pub(crate) vmctx: Value,
    /// The wasm operand stack.
    pub(crate) stack: Vec<Value>,
    /// The control stack.
    pub(crate) control: Vec<ControlFrame>,
    /// Whether the current position is reachable.
    pub(crate) reachable: bool,
    /// Depth of frames opened while unreachable (skipped).
    pub(crate) unreachable_depth: u32,
    /// Wasm locals, params first.
    pub(crate) locals: Vec<(Variable, WasmValType)>,
    pub(crate) sig_refs: HashMap<u32, ir::SigRef>,
    pub(crate) func_refs: HashMap<u32, ir::FuncRef>,
    pub(crate) builtin_sigs: HashMap<u32, ir::SigRef>,
    /// Alias regions of this function's memory accesses.
    pub(crate) regions: Regions,
    /// Fuel and epoch instrumentation, called at its hooks (see
    /// `interrupt/`).
    pub(crate) interruption: Interruption,
    /// The exception handlers in scope, innermost on top (see
    /// `exceptions.rs`).
    pub(crate) handlers: Vec<exceptions::Handler>,
    /// The open `try_table`s, innermost last.
    pub(crate) try_scopes: Vec<exceptions::TryScope>,
    /// The open legacy `try`s, innermost last.
    pub(crate) legacy_tries: Vec<legacy_exceptions::LegacyTry>,
    /// Whether the module is compiled with GC: GC references then get
    /// stack maps.
    pub(crate) gc: bool,
    /// The operand values already looked at for stack maps.
    pub(crate) stack_map_checked: std::collections::HashSet<Value>,
    /// Values the validator types as non-nullable references: their null
    /// checks are left out (an SSA value never changes, so one that was
    /// non-null once always is).
    pub(crate) non_null: std::collections::HashSet<Value>,
    /// `loop` operators seen so far, reachable or not.
    pub(crate) loops_seen: u32,
    /// Set when translating an on-stack-replacement entry.
    pub(crate) osr: Option<Osr>,
}

/// Disjoint alias regions for Cranelift's alias analysis (redundant-load
/// elimination, store-to-load forwarding, dead-store elimination). A store
/// without a region acts as a barrier for every load, so tagging each
/// access lets, e.g., a global read be reused across linear-memory stores.
///
/// Invariant: every location is only ever accessed under one region.
/// Linear memories share one region (two memory indices can name the same
/// imported memory), as do all globals (two imports can be one global) and
/// all table elements; `vmctx` covers the remaining mutable runtime state
/// that compiled code touches (memory and table definitions, the fuel
/// counter, epoch fields).
#[derive(Clone, Copy)]
pub(crate) struct Regions {
    pub(crate) heap: ir::AliasRegion,
    pub(crate) globals: ir::AliasRegion,
    pub(crate) tables: ir::AliasRegion,
    pub(crate) vmctx: ir::AliasRegion,
}

impl Regions {
    fn new(func: &mut ir::Function) -> Regions {
        let mut region = |user_id, description: &'static str| {
            func.dfg.alias_regions.insert(ir::AliasRegionData { user_id, description: description.into() })
        };
        Regions {
            heap: region(1, "linear memory"),
            globals: region(2, "globals"),
            tables: region(3, "table elements"),
            vmctx: region(4, "runtime state"),
        }
    }
}

impl<'a, 'f> FuncTranslator<'a, 'f> {
    fn new(
        isa: &'a dyn TargetIsa,
        tunables: &'a Tunables,
        module: &'a ModuleInfo,
        offsets: &'a VMOffsets,
        builder: FunctionBuilder<'f>,
    ) -> Self {
        let regions = Regions::new(builder.func);
        FuncTranslator {
            isa,
            tunables,
            module,
            offsets,
            builder,
            vmctx: Value::from_u32(0),
            stack: Vec::new(),
            control: Vec::new(),
            reachable: true,
            unreachable_depth: 0,
            locals: Vec::new(),
            sig_refs: HashMap::new(),
            func_refs: HashMap::new(),
            builtin_sigs: HashMap::new(),
            regions,
            interruption: Interruption::new(tunables, isa),
            handlers: Vec::new(),
            try_scopes: Vec::new(),
            legacy_tries: Vec::new(),
            gc: wasmparser::WasmFeatures::from_bits_truncate(tunables.features).gc(),
            stack_map_checked: Default::default(),
            non_null: Default::default(),
            loops_seen: 0,
            osr: None,
        }
    }

    /// Runs `hook` on the interruption component with an emitter over the
    /// rest of the translator: `self.hook(|i, e| i.before_call(e))`.
    pub(crate) fn hook<R>(&mut self, hook: impl FnOnce(&mut Interruption, &mut Emitter<'_, 'f>) -> R) -> R {
        let mut e = Emitter {
            isa: self.isa,
            builder: &mut self.builder,
            vmctx: self.vmctx,
            regions: self.regions,
            locals: &self.locals,
            builtin_sigs: &mut self.builtin_sigs,
        };
        hook(&mut self.interruption, &mut e)
    }

    fn translate_body(
        &mut self,
        func: FuncIndex,
        body: &wasmparser::FunctionBody<'_>,
        validator: &mut wasmparser::FuncValidator<wasmparser::ValidatorResources>,
    ) -> WasmResult<()> {
        let ty = self.module.func_type(func).clone();
        let entry = self.builder.create_block();
        self.builder.append_block_params_for_function_params(entry);
        self.builder.switch_to_block(entry);
        self.builder.seal_block(entry);
        let params = self.builder.block_params(entry).to_vec();
        self.vmctx = params[0];

        // Stack limit: vmctx -> store context -> stack limit. Cranelift
        // compares the stack pointer against it in every prologue.
        let vmctx_gv = self.builder.func.create_global_value(ir::GlobalValueData::VMContext);
        let flags = self.builder.func.dfg.mem_flags.insert_unchecked(ir::MemFlagsData::trusted().with_readonly());
        let store_gv = self.builder.func.create_global_value(ir::GlobalValueData::Load {
            base: vmctx_gv,
            offset: (vmoffsets::vmctx_header::STORE_CONTEXT as i32).into(),
            global_type: ir::types::I64,
            flags,
        });
        let flags = self.builder.func.dfg.mem_flags.insert_unchecked(ir::MemFlagsData::trusted());
        let limit_gv = self.builder.func.create_global_value(ir::GlobalValueData::Load {
            base: store_gv,
            offset: (vmoffsets::store_context::STACK_LIMIT as i32).into(),
            global_type: ir::types::I64,
            flags,
        });
        self.builder.func.stack_limit = Some(limit_gv);

        // Parameters become the first locals.
        for (i, t) in ty.params().iter().enumerate() {
            let var = self.builder.declare_var(clif_type(*t));
            if self.gc && is_gc_ref(*t) {
                self.builder.declare_var_needs_stack_map(var);
            }
            if self.osr.is_none() {
                self.builder.def_var(var, params[2 + i]);
            }
            self.locals.push((var, *t));
        }

        // Declared locals, zero-initialized.
        let mut locals = body.get_locals_reader()?;
        for _ in 0..locals.get_count() {
            let pos = locals.original_position();
            let (count, vt) = locals.read()?;
            validator.define_locals(pos, count, vt)?;
            let wt = WasmValType::from_wasmparser(vt, self.module.types.as_slice())?;
            for _ in 0..count {
                let var = self.builder.declare_var(clif_type(wt));
                if self.gc && is_gc_ref(wt) {
                    self.builder.declare_var_needs_stack_map(var);
                }
                if self.osr.is_none() {
                    let zero = self.zero_value(wt);
                    self.builder.def_var(var, zero);
                }
                self.locals.push((var, wt));
            }
        }
        if self.osr.is_some() {
            self.begin_osr_entry(params[2], params[3])?;
        }

        self.hook(|i, e| i.on_function_entry(e, body));

        // The function body is a block whose continuation returns.
        let exit = self.builder.create_block();
        for r in ty.results() {
            self.builder.append_block_param(exit, clif_type(*r));
        }
        self.control.push(ControlFrame::Block {
            destination: exit,
            num_results: ty.results().len(),
            original_stack_size: 0,
            exit_is_branched_to: false,
        });

        // Source locations are relative to the start of the body, so that
        // compiled code does not depend on where the function sits in the
        // module (the function-level cache reuses it elsewhere); `link`
        // adds each body's offset back.
        let body_start = body.range().start;
        let mut ops = body.get_operators_reader()?;
        while !ops.eof() {
            let (op, pos) = ops.read_with_offset()?;
            validator.op(pos, &op)?;
            if let wasmparser::Operator::Loop { .. } = op {
                self.loops_seen += 1;
            }
            self.builder.set_srcloc(ir::SourceLoc::new((pos - body_start) as u32));
            if self.reachable {
                self.interruption.on_operator(&op);
                self.translate_operator(&op, pos)?;
                // (In unreachable code the validator's operand stack is
                // polymorphic and no longer matches this one.)
                if self.gc && self.reachable {
                    self.declare_new_gc_refs(validator);
                }
            } else {
                self.translate_unreachable_operator(&op)?;
            }
        }
        ops.finish()?;

        // The final `end` left us in the exit block (or unreachable).
        if self.reachable {
            let n = ty.results().len();
            let vals = self.stack.split_off(self.stack.len() - n);
            self.hook(|i, e| i.before_exit(e));
            self.builder.ins().return_(&vals);
        }
        Ok(())
    }

    /// Declares the values an operator just pushed that are GC references
    /// (their types as the validator has them) as needing stack maps, so
    /// that Cranelift records where each one lives at every call it is
    /// live across. New values are on top of the stack, above those
    /// already looked at.
    fn declare_new_gc_refs(&mut self, validator: &wasmparser::FuncValidator<wasmparser::ValidatorResources>) {
        let n = self.stack.len();
        for depth in 0..n {
            let v = self.stack[n - 1 - depth];
            if !self.stack_map_checked.insert(v) {
                break;
            }
            let Some(Some(wasmparser::ValType::Ref(r))) = validator.get_operand_type(depth) else { continue };
            if self.builder.func.dfg.value_type(v) != ir::types::I64 {
                continue;
            }
            if !r.is_nullable() {
                self.non_null.insert(v);
            }
            if heap_is_gc(r.heap_type(), validator.resources()) {
                self.builder.declare_value_needs_stack_map(v);
            }
        }
    }

    /// The entry of an on-stack-replacement translation: loads every
    /// local from its slot in the baseline frame at `frame`, then jumps to
    /// a dispatch block that will branch on `loop_index` to the loops'
    /// landing blocks ([`Self::finish_osr_dispatch`]); the function's
    /// normal entry code continues in a block of its own, with no
    /// predecessor (its locals read as zeros, and it is removed as
    /// unreachable).
    fn begin_osr_entry(&mut self, frame: Value, loop_index: Value) -> WasmResult<()> {
        use kiln_environ::vmoffsets::baseline_frame;
        let flags = ir::MemFlagsData::trusted();
        for (i, (var, t)) in self.locals.clone().into_iter().enumerate() {
            let ty = match t {
                WasmValType::I32 | WasmValType::I64 | WasmValType::F32 | WasmValType::F64 => clif_type(t),
                _ => return Err(WasmError::Unsupported("a local a baseline frame does not hold".into())),
            };
            let at = baseline_frame::local(i as u32);
            let v = self.builder.ins().load(ty, flags, frame, at);
            self.builder.def_var(var, v);
        }
        let dispatch = self.builder.create_block();
        self.builder.ins().jump(dispatch, &[]);
        // Its one predecessor is the entry; it is filled last.
        self.builder.seal_block(dispatch);
        let normal = self.builder.create_block();
        self.builder.seal_block(normal);
        self.builder.switch_to_block(normal);
        if let Some(osr) = &mut self.osr {
            osr.dispatch = Some((dispatch, loop_index));
        }
        Ok(())
    }

    /// At the head `header` of a loop (`can_enter`: with nothing below it
    /// on the operand stack and no parameters, where baseline code
    /// checks), in an on-stack-replacement translation: gives the loop a
    /// landing block that jumps to its head. The landing stays unsealed
    /// until the dispatch branches to it, so the locals the loop reads
    /// come from the entry's loads. The caller has just ended the block
    /// before the loop.
    ///
    /// # Errors
    ///
    /// [`WasmError::Unsupported`] when such a loop is inside an exception
    /// handler's scope: the entry cannot take over every loop where
    /// baseline code may ask for it, so there is none.
    pub(crate) fn osr_enter_loop(&mut self, header: ir::Block, can_enter: bool) -> WasmResult<()> {
        let index = self.loops_seen - 1;
        if self.osr.is_none() || !can_enter {
            return Ok(());
        }
        if !self.try_scopes.is_empty() || !self.legacy_tries.is_empty() {
            return Err(WasmError::Unsupported("a loop in an exception handler's scope".into()));
        }
        let landing = self.builder.create_block();
        self.builder.switch_to_block(landing);
        self.builder.ins().jump(header, &[]);
        if let Some(osr) = &mut self.osr {
            osr.landings.push((index, landing));
        }
        Ok(())
    }

    /// Ends an on-stack-replacement translation: fills the dispatch block
    /// with a branch on the loop index to each enterable loop's landing
    /// (any other index traps as unreachable) and seals the landings.
    ///
    /// # Errors
    ///
    /// [`WasmError::Unsupported`] when no loop can be entered.
    fn finish_osr_dispatch(&mut self) -> WasmResult<()> {
        let Some(osr) = self.osr.take() else { return Ok(()) };
        let Some((dispatch, loop_index)) = osr.dispatch else { return Ok(()) };
        let Some(last) = osr.landings.iter().map(|&(i, _)| i).max() else {
            return Err(WasmError::Unsupported("no loop can be entered from a baseline frame".into()));
        };
        let trap = self.builder.create_block();
        let mut table = vec![trap; last as usize + 1];
        for &(i, landing) in &osr.landings {
            table[i as usize] = landing;
        }
        self.builder.switch_to_block(dispatch);
        let calls: Vec<_> = table.iter().map(|&b| self.builder.func.dfg.block_call(b, &[])).collect();
        let default = self.builder.func.dfg.block_call(trap, &[]);
        let jt = self.builder.create_jump_table(JumpTableData::new(default, &calls));
        self.builder.ins().br_table(loop_index, jt);
        self.builder.seal_block(trap);
        self.builder.switch_to_block(trap);
        self.builder.ins().trap(crate::trap_codes::to_clif(TrapCode::UnreachableCodeReached));
        for &(_, landing) in &osr.landings {
            self.builder.seal_block(landing);
        }
        Ok(())
    }

    /// A zero of wasm type `t` (the default value of locals).
    pub(crate) fn zero_value(&mut self, t: WasmValType) -> Value {
        match t {
            WasmValType::I32 => self.builder.ins().iconst(ir::types::I32, 0),
            WasmValType::I64 | WasmValType::Ref(_) => self.builder.ins().iconst(ir::types::I64, 0),
            WasmValType::F32 => self.builder.ins().f32const(0.0),
            WasmValType::F64 => self.builder.ins().f64const(0.0),
            WasmValType::V128 => {
                let c = self.builder.func.dfg.constants.insert(vec![0u8; 16].into());
                self.builder.ins().vconst(ir::types::I8X16, c)
            }
        }
    }

    pub(crate) fn pop1(&mut self) -> Value {
        self.stack.pop().expect("validated: operand stack underflow")
    }

    pub(crate) fn pop2(&mut self) -> (Value, Value) {
        let b = self.pop1();
        let a = self.pop1();
        (a, b)
    }

    pub(crate) fn pop3(&mut self) -> (Value, Value, Value) {
        let c = self.pop1();
        let (a, b) = self.pop2();
        (a, b, c)
    }

    pub(crate) fn popn(&mut self, n: usize) -> Vec<Value> {
        self.stack.split_off(self.stack.len() - n)
    }

    pub(crate) fn peekn(&self, n: usize) -> &[Value] {
        &self.stack[self.stack.len() - n..]
    }

    pub(crate) fn push(&mut self, v: Value) {
        self.stack.push(v);
    }
}

/// Whether values of type `t` are GC references the collector must find
/// and update, with GC on: the `any` hierarchy (i31s, structs, arrays,
/// extern boxes) and externrefs (which may hold a GC reference that
/// `extern.convert_any` tagged).
fn is_gc_ref(t: WasmValType) -> bool {
    matches!(t, WasmValType::Ref(r) if r.is_any() || r.is_extern())
}

/// Whether references to heap type `h` (in the validator's terms, whose
/// concrete types may be its own interned ids) are GC references the
/// collector must find, as [`is_gc_ref`] says: their top type is `any` or
/// `extern`.
fn heap_is_gc(h: wasmparser::HeapType, resources: &impl wasmparser::WasmModuleResources) -> bool {
    use wasmparser::AbstractHeapType as A;
    matches!(resources.top_type(&h), wasmparser::HeapType::Abstract { ty: A::Any | A::Extern, .. })
}
