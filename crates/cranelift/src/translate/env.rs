//! Access to the runtime through the VMContext: globals, tables, calls,
//! function references and builtins.

use super::FuncTranslator;
use super::exceptions::Callee;
use super::memory::state_flags;
use crate::abi::{clif_type, wasm_signature};
use crate::trap_codes::to_clif;
use cranelift_codegen::ir::{self, InstBuilder, MemFlagsData, Value, types};
use kiln_environ::vmoffsets::{definition, func_import, func_ref};
use kiln_environ::*;

/// Flags for loads of VMContext fields that never change after
/// instantiation: they may be hoisted and deduplicated freely.
pub(crate) fn readonly() -> MemFlagsData {
    MemFlagsData::trusted().with_readonly().with_can_move()
}

/// Flags for loads from a function reference's record: written before the
/// reference is ever handed to wasm and never changed afterwards, but only
/// valid once the reference is known to be non-null (so not hoistable).
pub(crate) fn funcref_flags() -> MemFlagsData {
    MemFlagsData::trusted().with_readonly()
}

/// Flags for VMContext fields that can change while wasm runs.
pub(crate) fn trusted() -> MemFlagsData {
    MemFlagsData::trusted()
}

impl FuncTranslator<'_, '_> {
    /// Address and static offset of global `g`'s storage.
    pub(crate) fn global_addr(&mut self, g: u32) -> (Value, i32) {
        let g = GlobalIndex::from_u32(g);
        match self.module.defined_global_index(g) {
            Some(d) => (self.vmctx, self.offsets.defined_global(d) as i32),
            None => {
                let p =
                    self.builder.ins().load(types::I64, readonly(), self.vmctx, self.offsets.imported_global(g) as i32);
                (p, 0)
            }
        }
    }

    pub(crate) fn global_get(&mut self, g: u32) {
        let gt = self.module.globals[g as usize];
        let (base, off) = self.global_addr(g);
        // An immutable global's value never changes for wasm, except that
        // the collector rewrites a GC reference when its object moves: such
        // a load must not be `readonly`, or Cranelift would merge and hoist
        // it across the safepoints where the object can move.
        let fixed = !gt.mutable && !super::is_gc_ref(gt.content);
        let flags = if fixed { readonly() } else { trusted().with_alias_region(Some(self.regions.globals)) };
        let v = self.builder.ins().load(clif_type(gt.content), flags, base, off);
        self.push(v);
    }

    pub(crate) fn global_set(&mut self, g: u32) {
        let v = self.pop1();
        let (base, off) = self.global_addr(g);
        self.builder.ins().store(trusted().with_alias_region(Some(self.regions.globals)), v, base, off);
    }

    /// Pointer to table `t`'s definition (`base`, `current_elements`).
    pub(crate) fn table_def(&mut self, t: u32) -> (Value, i32) {
        let t = TableIndex::from_u32(t);
        match self.module.defined_table_index(t) {
            Some(d) => (self.vmctx, self.offsets.defined_table(d) as i32),
            None => {
                let p =
                    self.builder.ins().load(types::I64, readonly(), self.vmctx, self.offsets.imported_table(t) as i32);
                (p, 0)
            }
        }
    }

    /// Extends a table index operand to 64 bits.
    pub(crate) fn table_index_to_i64(&mut self, t: u32, index: Value) -> Value {
        if self.module.tables[t as usize].table64 { index } else { self.builder.ins().uextend(types::I64, index) }
    }

    /// The address of element `index` of table `t`, trapping with
    /// `TableOutOfBounds` when the index is not below the current size.
    pub(crate) fn table_elem_addr(&mut self, t: u32, index: Value, trap: TrapCode) -> Value {
        let index = self.table_index_to_i64(t, index);
        let (def, off) = self.table_def(t);
        let len = self.builder.ins().load(types::I64, state_flags(self.regions), def, off + definition::LENGTH as i32);
        let in_bounds = self.builder.ins().icmp(ir::condcodes::IntCC::UnsignedLessThan, index, len);
        self.builder.ins().trapz(in_bounds, to_clif(trap));
        let base = self.builder.ins().load(types::I64, state_flags(self.regions), def, off + definition::BASE as i32);
        let scaled = self.builder.ins().ishl_imm_u(index, 3);
        self.builder.ins().iadd(base, scaled)
    }

    pub(crate) fn table_get(&mut self, t: u32) {
        let index = self.pop1();
        let v = self.load_table_element(t, index);
        self.push(v);
    }

    /// Loads element `index` of table `t` (bounds-checked) as an untagged
    /// reference. Funcref elements are tagged (see
    /// `kiln_environ::FUNCREF_INIT_BIT`): an initialized element has the
    /// tag bit set and is returned with it cleared; an element of 0 was
    /// never initialized and is computed by the `table_get_lazy` builtin.
    pub(crate) fn load_table_element(&mut self, t: u32, index: Value) -> Value {
        let addr = self.table_elem_addr(t, index, TrapCode::TableOutOfBounds);
        let raw = self.builder.ins().load(types::I64, trusted().with_alias_region(Some(self.regions.tables)), addr, 0);
        if !self.module.tables[t as usize].element.is_func() {
            return raw;
        }
        let init = self.builder.ins().band_imm_u(raw, FUNCREF_INIT_BIT as i64);
        let lazy = self.builder.create_block();
        let done = self.builder.create_block();
        let result = self.builder.append_block_param(done, types::I64);
        self.builder.set_cold_block(lazy);
        let untagged = self.builder.ins().band_imm_s(raw, !(FUNCREF_INIT_BIT as i64));
        self.builder.ins().brif(init, done, &[ir::BlockArg::Value(untagged)], lazy, &[]);
        self.builder.switch_to_block(lazy);
        self.builder.seal_block(lazy);
        let ti = self.i32c(t);
        let index64 = self.table_index_to_i64(t, index);
        let computed = self.call_builtin(BuiltinFunctionIndex::table_get_lazy, &[ti, index64]).expect("returns");
        self.builder.ins().jump(done, &[ir::BlockArg::Value(computed)]);
        self.builder.switch_to_block(done);
        self.builder.seal_block(done);
        result
    }

    pub(crate) fn table_set(&mut self, t: u32) {
        let (index, v) = self.pop2();
        let addr = self.table_elem_addr(t, index, TrapCode::TableOutOfBounds);
        let stored = if self.module.tables[t as usize].element.is_func() {
            self.builder.ins().bor_imm_u(v, FUNCREF_INIT_BIT as i64)
        } else {
            v
        };
        self.builder.ins().store(trusted().with_alias_region(Some(self.regions.tables)), stored, addr, 0);
    }

    pub(crate) fn table_size(&mut self, t: u32) {
        let (def, off) = self.table_def(t);
        let len = self.builder.ins().load(types::I64, state_flags(self.regions), def, off + definition::LENGTH as i32);
        let v = if self.module.tables[t as usize].table64 { len } else { self.builder.ins().ireduce(types::I32, len) };
        self.push(v);
    }

    /// Calls builtin `index` with the VMContext prepended to `args`. These
    /// builtins may trap (`raise` unwinds from Rust, where the pinned
    /// register is out of reach), so the fuel counter is published first.
    pub(crate) fn call_builtin(&mut self, index: BuiltinFunctionIndex, args: &[Value]) -> Option<Value> {
        self.hook(|i, e| i.before_builtin(e));
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(self.vmctx);
        all.extend_from_slice(args);
        self.call_builtin_raw(index, &all)
    }

    /// Calls builtin `index` with exactly `args` (raw builtins take no
    /// VMContext).
    pub(crate) fn call_builtin_raw(&mut self, index: BuiltinFunctionIndex, args: &[Value]) -> Option<Value> {
        self.hook(|i, e| {
            let result = e.call_builtin(index, args);
            i.after_builtin(e, index);
            result
        })
    }

    fn wasm_sig_ref(&mut self, type_index: TypeIndex) -> ir::SigRef {
        let type_index = type_index.as_u32();
        if let Some(s) = self.sig_refs.get(&type_index) {
            return *s;
        }
        let sig = wasm_signature(self.isa, self.module.func_type_at(TypeIndex::from_u32(type_index)));
        let s = self.builder.import_signature(sig);
        self.sig_refs.insert(type_index, s);
        s
    }

    fn direct_func_ref(&mut self, func: FuncIndex) -> ir::FuncRef {
        if let Some(f) = self.func_refs.get(&func.as_u32()) {
            return *f;
        }
        let sig = self.wasm_sig_ref(self.module.func_type_index(func));
        let name = self.builder.func.declare_imported_user_function(ir::UserExternalName::new(0, func.as_u32()));
        let f = self.builder.import_function(ir::ExtFuncData {
            name: ir::ExternalName::user(name),
            signature: sig,
            colocated: true,
            patchable: false,
        });
        self.func_refs.insert(func.as_u32(), f);
        f
    }

    /// `call func`.
    pub(crate) fn translate_call(&mut self, func: u32) {
        let func = FuncIndex::from_u32(func);
        let ty = self.module.func_type(func);
        let n = ty.params().len();
        let args = self.popn(n);
        let mut all = Vec::with_capacity(n + 2);
        self.hook(|i, e| i.before_call(e));
        let results = if self.module.is_imported_func(func) {
            let off = self.offsets.imported_function(func) as i32;
            let code = self.builder.ins().load(types::I64, readonly(), self.vmctx, off + func_import::WASM_CALL as i32);
            let callee = self.builder.ins().load(types::I64, readonly(), self.vmctx, off + func_import::VMCTX as i32);
            all.push(callee);
            all.push(self.vmctx);
            all.extend_from_slice(&args);
            let sig = self.wasm_sig_ref(self.module.func_type_index(func));
            self.emit_call(Callee::Indirect(sig, code), &all)
        } else {
            all.push(self.vmctx);
            all.push(self.vmctx);
            all.extend_from_slice(&args);
            let f = self.direct_func_ref(func);
            self.emit_call(Callee::Direct(f), &all)
        };
        self.stack.extend(results);
        self.hook(|i, e| i.after_call(e));
    }

    /// `return_call func`: a tail call, in constant stack space.
    pub(crate) fn translate_return_call(&mut self, func: u32) {
        let func = FuncIndex::from_u32(func);
        let ty = self.module.func_type(func);
        let n = ty.params().len();
        let args = self.popn(n);
        let mut all = Vec::with_capacity(n + 2);
        self.hook(|i, e| i.before_call(e));
        if self.module.is_imported_func(func) {
            let off = self.offsets.imported_function(func) as i32;
            let code = self.builder.ins().load(types::I64, readonly(), self.vmctx, off + func_import::WASM_CALL as i32);
            let callee = self.builder.ins().load(types::I64, readonly(), self.vmctx, off + func_import::VMCTX as i32);
            all.push(callee);
            all.push(self.vmctx);
            all.extend_from_slice(&args);
            let sig = self.wasm_sig_ref(self.module.func_type_index(func));
            self.builder.ins().return_call_indirect(sig, code, &all);
        } else {
            all.push(self.vmctx);
            all.push(self.vmctx);
            all.extend_from_slice(&args);
            let f = self.direct_func_ref(func);
            self.builder.ins().return_call(f, &all);
        }
        self.reachable = false;
    }

    /// `return_call_indirect type_index table`.
    pub(crate) fn translate_return_call_indirect(&mut self, type_index: u32, table: u32) {
        let (code, callee) = self.indirect_callee(type_index, table);
        self.return_call_through(type_index, code, callee);
    }

    /// Pops the arguments of signature `type_index` and calls `code` with
    /// callee context `callee` (after `call_indirect`'s or `call_ref`'s
    /// checks), pushing the results.
    pub(crate) fn call_through(&mut self, type_index: u32, code: Value, callee: Value) {
        let all = self.indirect_args(type_index, callee);
        let sig = self.wasm_sig_ref(TypeIndex::from_u32(type_index));
        self.hook(|i, e| i.before_call(e));
        let results = self.emit_call(Callee::Indirect(sig, code), &all);
        self.stack.extend(results);
        self.hook(|i, e| i.after_call(e));
    }

    /// As [`Self::call_through`], as a tail call.
    pub(crate) fn return_call_through(&mut self, type_index: u32, code: Value, callee: Value) {
        let all = self.indirect_args(type_index, callee);
        let sig = self.wasm_sig_ref(TypeIndex::from_u32(type_index));
        self.hook(|i, e| i.before_call(e));
        self.builder.ins().return_call_indirect(sig, code, &all);
        self.reachable = false;
    }

    /// The arguments of a call of signature `type_index` to `callee`:
    /// callee context, caller context, then the wasm arguments (popped).
    fn indirect_args(&mut self, type_index: u32, callee: Value) -> Vec<Value> {
        let n = self.module.func_type_at(TypeIndex::from_u32(type_index)).params().len();
        let args = self.popn(n);
        let mut all = Vec::with_capacity(n + 2);
        all.push(callee);
        all.push(self.vmctx);
        all.extend_from_slice(&args);
        all
    }

    /// Pops the table index of an indirect call and checks the element
    /// (bounds, null, signature); returns its code pointer and callee vmctx.
    fn indirect_callee(&mut self, type_index: u32, table: u32) -> (Value, Value) {
        let index = self.pop1();
        let fref = self.load_table_element(table, index);
        self.builder.ins().trapz(fref, to_clif(TrapCode::IndirectCallToNull));
        let actual = self.builder.ins().load(types::I32, funcref_flags(), fref, func_ref::TYPE_ID as i32);
        let expected = self.engine_type_id(type_index);
        self.check_signature(type_index, actual, expected);
        let code = self.builder.ins().load(types::I64, funcref_flags(), fref, func_ref::WASM_CALL as i32);
        let callee = self.builder.ins().load(types::I64, funcref_flags(), fref, func_ref::VMCTX as i32);
        (code, callee)
    }

    /// Traps `BadSignature` unless engine type `actual` matches `expected`,
    /// the engine id of module type `type_index`: equal ids when the type
    /// is final (every type written without `sub`: one compare), else
    /// equal or a declared subtype (`type_id_matches`: the display table).
    fn check_signature(&mut self, type_index: u32, actual: Value, expected: Value) {
        if self.module.types[type_index as usize].is_final {
            let mismatch = self.builder.ins().icmp(ir::condcodes::IntCC::NotEqual, actual, expected);
            self.builder.ins().trapnz(mismatch, to_clif(TrapCode::BadSignature));
            return;
        }
        let ok = self.type_id_matches(actual, type_index);
        self.builder.ins().trapz(ok, to_clif(TrapCode::BadSignature));
    }

    /// `call_indirect type_index table`.
    pub(crate) fn translate_call_indirect(&mut self, type_index: u32, table: u32) {
        let (code, callee) = self.indirect_callee(type_index, table);
        self.call_through(type_index, code, callee);
    }

    /// `ref.func func`: a pointer to the function's `VMFuncRef`.
    pub(crate) fn translate_ref_func(&mut self, func: u32) {
        let v = if self.module.is_imported_func(FuncIndex::from_u32(func)) {
            let off = self.offsets.imported_function(FuncIndex::from_u32(func)) + func_import::FUNC_REF;
            self.builder.ins().load(types::I64, readonly(), self.vmctx, off as i32)
        } else {
            let f = self.builder.ins().iconst(types::I32, i64::from(func));
            self.call_builtin(BuiltinFunctionIndex::ref_func, &[f]).expect("ref_func returns a value")
        };
        self.push(v);
    }

    /// An `i32` constant.
    pub(crate) fn i32c(&mut self, v: u32) -> Value {
        self.builder.ins().iconst(types::I32, i64::from(v))
    }

    /// `table.grow`, `table.fill`, `table.copy`, `table.init`, `elem.drop`.
    pub(crate) fn translate_table_grow(&mut self, t: u32) {
        let (init, delta) = self.pop2();
        let delta = self.table_index_to_i64(t, delta);
        let ti = self.i32c(t);
        let r = self.call_builtin(BuiltinFunctionIndex::table_grow, &[ti, delta, init]).expect("returns");
        let r = if self.module.tables[t as usize].table64 { r } else { self.builder.ins().ireduce(types::I32, r) };
        self.push(r);
    }

    pub(crate) fn translate_table_fill(&mut self, t: u32) {
        let (dst, val, len) = self.pop3();
        let dst = self.table_index_to_i64(t, dst);
        let len = self.table_index_to_i64(t, len);
        let ti = self.i32c(t);
        self.call_builtin(BuiltinFunctionIndex::table_fill, &[ti, dst, val, len]);
    }

    pub(crate) fn translate_table_copy(&mut self, dst_t: u32, src_t: u32) {
        let (dst, src, len) = self.pop3();
        let dst = self.table_index_to_i64(dst_t, dst);
        let src = self.table_index_to_i64(src_t, src);
        // The length has the smaller of the two index types.
        let len = if self.module.tables[dst_t as usize].table64 && self.module.tables[src_t as usize].table64 {
            len
        } else {
            self.builder.ins().uextend(types::I64, len)
        };
        let d = self.i32c(dst_t);
        let s = self.i32c(src_t);
        self.call_builtin(BuiltinFunctionIndex::table_copy, &[d, s, dst, src, len]);
    }

    pub(crate) fn translate_table_init(&mut self, elem: u32, t: u32) {
        let (dst, src, len) = self.pop3();
        let dst = self.table_index_to_i64(t, dst);
        let ti = self.i32c(t);
        let e = self.i32c(elem);
        self.call_builtin(BuiltinFunctionIndex::table_init, &[ti, e, dst, src, len]);
    }

    pub(crate) fn translate_elem_drop(&mut self, elem: u32) {
        let e = self.i32c(elem);
        self.call_builtin(BuiltinFunctionIndex::elem_drop, &[e]);
    }
}
