//! Trampolines between the host's C calling convention with arguments in a
//! `ValRaw` array ("array call") and the wasm calling convention.

use crate::abi::*;
use cranelift_codegen::ir::{self, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, UserFuncName, types};
use cranelift_codegen::isa::TargetIsa;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use kiln_environ::vmoffsets::{host_func_ctx, store_context, vmctx_header};
use kiln_environ::{FuncType, Tunables, VAL_RAW_SIZE};

fn trusted() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// Builds the entry trampoline for signature `ty`; see
/// `Compiler::compile_array_to_wasm_trampoline`.
pub fn array_to_wasm(
    isa: &dyn TargetIsa,
    tunables: &Tunables,
    ty: &FuncType,
    fctx: &mut FunctionBuilderContext,
) -> ir::Function {
    let mut func = ir::Function::with_name_signature(UserFuncName::user(1, 0), array_to_wasm_signature(isa));
    let mut b = FunctionBuilder::new(&mut func, fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let params = b.block_params(entry).to_vec();
    let (callee_vmctx, caller_vmctx, values, wasm_call) = (params[0], params[1], params[2], params[3]);

    // Record this frame as the boundary where backtraces of the wasm frames
    // above it stop.
    let store_ctx = b.ins().load(types::I64, trusted(), callee_vmctx, vmctx_header::STORE_CONTEXT as i32);
    let fp = b.ins().get_frame_pointer(types::I64);
    b.ins().store(trusted(), fp, store_ctx, store_context::LAST_WASM_ENTRY_FP as i32);
    // The pinned register holds, for the whole activation, the fuel counter
    // or else the store context (epoch checks); every function of the
    // activation belongs to this store, so nothing else changes it until
    // the host's own entry code (`kiln_enter`) restores the register.
    let fuel = tunables.consume_fuel;
    if fuel {
        let count = b.ins().load(types::I64, trusted(), store_ctx, store_context::FUEL_CONSUMED as i32);
        b.ins().set_pinned_reg(count);
    } else if isa.flags().enable_pinned_reg() {
        b.ins().set_pinned_reg(store_ctx);
    }

    let mut args = vec![callee_vmctx, caller_vmctx];
    for (i, t) in ty.params().iter().enumerate() {
        args.push(b.ins().load(clif_type(*t), trusted(), values, (i as u32 * VAL_RAW_SIZE) as i32));
    }
    let sig = b.import_signature(wasm_signature(isa, ty));
    let call = b.ins().call_indirect(sig, wasm_call, &args);
    let results = b.inst_results(call).to_vec();
    for (i, r) in results.into_iter().enumerate() {
        b.ins().store(trusted(), r, values, (i as u32 * VAL_RAW_SIZE) as i32);
    }
    if fuel {
        let count = b.ins().get_pinned_reg(types::I64);
        b.ins().store(trusted(), count, store_ctx, store_context::FUEL_CONSUMED as i32);
    }
    b.ins().return_(&[]);
    b.finalize(isa.frontend_config());
    func
}

/// Builds the wasm-to-host trampoline for signature `ty`; see
/// `Compiler::compile_wasm_to_array_trampoline`.
pub fn wasm_to_array(
    isa: &dyn TargetIsa,
    tunables: &Tunables,
    ty: &FuncType,
    fctx: &mut FunctionBuilderContext,
) -> ir::Function {
    let mut func = ir::Function::with_name_signature(UserFuncName::user(2, 0), wasm_signature(isa, ty));
    let mut b = FunctionBuilder::new(&mut func, fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let params = b.block_params(entry).to_vec();
    let (callee_vmctx, caller_vmctx) = (params[0], params[1]);

    let len = ty.array_len().max(1) as u32;
    let slot = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, len * VAL_RAW_SIZE, 4));
    let values = b.ins().stack_addr(types::I64, slot, 0);
    for (i, v) in params[2..].iter().enumerate() {
        b.ins().store(trusted(), *v, values, (i as u32 * VAL_RAW_SIZE) as i32);
    }

    // Record the wasm frame that is calling out, for backtraces and for the
    // runtime to find where wasm left off.
    let store_ctx = b.ins().load(types::I64, trusted(), caller_vmctx, vmctx_header::STORE_CONTEXT as i32);
    let fp = b.ins().get_frame_pointer(types::I64);
    let caller_fp = b.ins().load(types::I64, trusted(), fp, 0);
    b.ins().store(trusted(), caller_fp, store_ctx, store_context::LAST_WASM_EXIT_FP as i32);
    let ra = b.ins().get_return_address(types::I64);
    b.ins().store(trusted(), ra, store_ctx, store_context::LAST_WASM_EXIT_PC as i32);

    // The host reads and may change the fuel counter (see `array_to_wasm`).
    if tunables.consume_fuel {
        let count = b.ins().get_pinned_reg(types::I64);
        b.ins().store(trusted(), count, store_ctx, store_context::FUEL_CONSUMED as i32);
    }
    let host = b.ins().load(types::I64, trusted(), callee_vmctx, host_func_ctx::ARRAY_CALL as i32);
    let sig = b.import_signature(host_array_call_signature(isa));
    let len_val = b.ins().iconst(types::I64, i64::from(len));
    b.ins().call_indirect(sig, host, &[callee_vmctx, caller_vmctx, values, len_val]);
    if tunables.consume_fuel {
        let count = b.ins().load(types::I64, trusted(), store_ctx, store_context::FUEL_CONSUMED as i32);
        b.ins().set_pinned_reg(count);
    }

    let mut results = Vec::new();
    for (i, t) in ty.results().iter().enumerate() {
        results.push(b.ins().load(clif_type(*t), trusted(), values, (i as u32 * VAL_RAW_SIZE) as i32));
    }
    b.ins().return_(&results);
    b.finalize(isa.frontend_config());
    func
}
