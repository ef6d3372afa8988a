//! Inlining of a small function's direct calls to itself, one level deep.
//!
//! Recursive code (`fib`, tree walks, divide-and-conquer sorts) spends much
//! of its time in call overhead: argument moves, the frame, the stack-limit
//! check, the return. Splicing the function's own body once into each of
//! its self-calls halves the number of calls a recursion makes, the way
//! native compilers unroll recursion. The callee body is the function as
//! translated, before optimization, so the splice is exact; calls inside the
//! spliced copy stay calls (one level only), which bounds code growth to
//! twice the body per self-call site.
//!
//! Cranelift's inliner does not carry source locations over, and Kiln maps
//! machine code back to wasm offsets (traps, backtraces) through them:
//! every instruction the splice adds takes the location of the call it
//! replaced, so a trap inside the spliced body is reported at that call, in
//! the same function, as if the inner frame had been folded into it.

use cranelift_codegen::Context;
use cranelift_codegen::entity::EntityRef;
use cranelift_codegen::inline::{Inline, InlineCommand};
use cranelift_codegen::ir::{self, ExternalName, InstructionData, Opcode};
use std::borrow::Cow;

/// Functions with more instructions than this are not spliced into
/// themselves: the call overhead is small next to the body.
const MAX_BODY_INSTS: usize = 120;

/// At most this many self-call sites are spliced per function.
const MAX_SITES: usize = 4;

/// Splices `ctx.func` into each of its direct self-calls (see the module
/// docs). Returns whether anything was inlined.
///
/// # Errors
///
/// Cranelift's inliner failed, which means the function was malformed.
pub fn inline_self_calls(ctx: &mut Context, own_index: u32) -> Result<bool, String> {
    let sites = self_call_sites(&ctx.func, own_index);
    if sites.is_empty()
        || sites.len() > MAX_SITES
        || inst_count(&ctx.func) > MAX_BODY_INSTS
        || has_tail_calls(&ctx.func)
        || has_try_calls(&ctx.func)
    {
        return Ok(false);
    }
    let body = ctx.func.clone();
    let mut any = false;
    for site in sites {
        let srcloc = ctx.func.srcloc(site);
        let first_new = ctx.func.dfg.num_insts();
        let inlined = ctx.inline(SpliceAt { site, body: &body }).map_err(|e| format!("inlining: {e:?}"))?;
        if inlined {
            any = true;
            let added: Vec<ir::Inst> = ctx
                .func
                .layout
                .blocks()
                .flat_map(|b| ctx.func.layout.block_insts(b))
                .filter(|i| i.index() >= first_new)
                .collect();
            for i in added {
                if ctx.func.srcloc(i).is_default() {
                    ctx.func.set_srcloc(i, srcloc);
                }
            }
        }
    }
    Ok(any)
}

/// Direct `call`s whose callee is the function itself.
fn self_call_sites(func: &ir::Function, own_index: u32) -> Vec<ir::Inst> {
    let mut sites = Vec::new();
    for block in func.layout.blocks() {
        for inst in func.layout.block_insts(block) {
            if let InstructionData::Call { opcode: Opcode::Call, func_ref, .. } = func.dfg.insts[inst]
                && is_self(func, func_ref, own_index)
            {
                sites.push(inst);
            }
        }
    }
    sites
}

fn is_self(func: &ir::Function, func_ref: ir::FuncRef, own_index: u32) -> bool {
    match &func.dfg.ext_funcs[func_ref].name {
        ExternalName::User(r) => {
            let name = &func.params.user_named_funcs()[*r];
            name.namespace == 0 && name.index == own_index
        }
        _ => false,
    }
}

fn inst_count(func: &ir::Function) -> usize {
    func.layout.blocks().map(|b| func.layout.block_insts(b).count()).sum()
}

fn has_tail_calls(func: &ir::Function) -> bool {
    func.layout
        .blocks()
        .flat_map(|b| func.layout.block_insts(b))
        .any(|i| matches!(func.dfg.insts[i].opcode(), Opcode::ReturnCall | Opcode::ReturnCallIndirect))
}

/// Whether `func` makes calls with exception handlers (they are left
/// alone: a handler must stay in the frame whose table names it).
fn has_try_calls(func: &ir::Function) -> bool {
    func.layout
        .blocks()
        .flat_map(|b| func.layout.block_insts(b))
        .any(|i| matches!(func.dfg.insts[i].opcode(), Opcode::TryCall | Opcode::TryCallIndirect))
}

/// Inlines `body` at exactly one call instruction.
struct SpliceAt<'a> {
    site: ir::Inst,
    body: &'a ir::Function,
}

impl Inline for SpliceAt<'_> {
    fn inline(
        &mut self,
        _caller: &ir::Function,
        call_inst: ir::Inst,
        _opcode: Opcode,
        _callee: ir::FuncRef,
        _args: &[ir::Value],
    ) -> InlineCommand<'_> {
        if call_inst == self.site {
            InlineCommand::Inline { callee: Cow::Borrowed(self.body), visit_callee: false }
        } else {
            InlineCommand::KeepCall
        }
    }
}
