//! GC instructions: `ref.i31`, `i31.get_s/u`, `ref.eq`, the struct
//! operations, and the casts `ref.test`, `ref.cast`, `br_on_cast` and
//! `br_on_cast_fail` (see `kiln_environ::gc_ref` for the encoding and
//! `kiln_environ::gc_layout` for objects).
//!
//! An object reference is its offset in the store's GC heap, whose base
//! the store context holds; a field is at `base + ref + offset`. Accesses
//! check for null explicitly (a trap code per kind of reference) and need
//! no other check: the type system guarantees the object's layout.
//! Objects are bump-allocated inline from the store's allocation window,
//! or by the `gc_alloc*` builtins when it is full (which may collect and
//! move every object: references live across those calls are in stack
//! maps); the header and then every field are stored inline, defaults
//! included, since reused heap memory is not zero.
//!
//! Stores of references into existing objects (`struct.set`, `array.set`,
//! `array.fill`, `array.copy`) pass the generational *write barrier*: when
//! the object is old (its reference at or above `OLD_START`) and the value
//! may be young (an `any` value within the nursery's reservation; any
//! externref, whose word is not tested), and the object is not yet
//! remembered (a bit of its GC word), the `gc_remember` builtin puts it in
//! the heap's remembered set, so the next minor collection finds the
//! young object through it. Stores into an object just allocated need no
//! barrier: it is young, or the runtime allocated it old and remembered.
//!
//! A cast tests the value against its target type only: the value's own
//! static type is already below the target's hierarchy (validated). Null
//! passes exactly when the target is nullable. In the `any` hierarchy an
//! odd value is an i31 (admitted by `any`, `eq` and `i31`), any other
//! non-null value an object whose header says its kind (for `struct` and
//! `array`) and type id (for a concrete type: one compare for a final
//! type; for a non-final one, when the ids differ, one load from the
//! engine's display table and a compare, or the `is_subtype` builtin for
//! a type deeper than the table's rows). A function
//! reference is tested the same way by its record's type id; the abstract
//! tops admit everything non-null and the bottoms nothing.

use super::FuncTranslator;
use super::control::block_args;
use super::env::{funcref_flags, readonly};
use crate::trap_codes::to_clif;
use cranelift_codegen::ir::MemFlagsData;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{self, InstBuilder, Value, types};
use kiln_environ::gc_layout::{
    ARRAY_LENGTH, EXTERN_BOX_WORD, KIND_ARRAY, KIND_EXTERN_BOX, KIND_MASK, KIND_STRUCT, NURSERY_RESERVE, NURSERY_START,
    OBJECT_ALIGN, OLD_START, REMEMBERED, RefKind, StructLayout, array_elems_offset, field_size, header,
};
use kiln_environ::vmoffsets::{data_segment, func_ref, store_context, type_displays, vmctx_header};
use kiln_environ::{
    BuiltinFunctionIndex, TrapCode, WasmCompositeType, WasmHeapType, WasmRefType, WasmResult, WasmStorageType,
    WasmValType,
};

impl FuncTranslator<'_, '_> {
    /// Switches to block `b`, whose predecessors are all known.
    fn enter_sealed(&mut self, b: ir::Block) {
        self.builder.switch_to_block(b);
        self.builder.seal_block(b);
    }

    /// `ref.i31`: the low 31 bits of an `i32`, tagged.
    pub(crate) fn translate_ref_i31(&mut self) {
        let x = self.pop1();
        let shifted = self.builder.ins().ishl_imm_u(x, 1);
        let tagged = self.builder.ins().bor_imm_u(shifted, 1);
        let r = self.builder.ins().uextend(types::I64, tagged);
        self.push(r);
    }

    /// `i31.get_s` / `i31.get_u`: traps on null.
    pub(crate) fn translate_i31_get(&mut self, signed: bool) {
        let r = self.pop1();
        self.trap_if_null(r, TrapCode::NullI31Reference);
        let low = self.builder.ins().ireduce(types::I32, r);
        let v = if signed { self.builder.ins().sshr_imm_u(low, 1) } else { self.builder.ins().ushr_imm_u(low, 1) };
        self.push(v);
    }

    /// `ref.eq`: identity of the encodings (i31 values by value).
    pub(crate) fn translate_ref_eq(&mut self) {
        let (a, b) = self.pop2();
        let eq = self.builder.ins().icmp(IntCC::Equal, a, b);
        let v = self.builder.ins().uextend(types::I32, eq);
        self.push(v);
    }

    /// `extern.convert_any`: null stays null, an extern box gives back the
    /// host word it holds, and any other GC reference `r` becomes the
    /// tagged word `(r << 32) | 1` (`gc_ref::externalize`).
    pub(crate) fn translate_extern_convert_any(&mut self) {
        let r = self.pop1();
        let done = self.builder.create_block();
        let result = self.builder.append_block_param(done, types::I64);
        let non_null = self.builder.create_block();
        let object = self.builder.create_block();
        let tagged = self.builder.create_block();
        self.builder.ins().brif(r, non_null, &[], done, &block_args(&[r]));
        self.enter_sealed(non_null);
        let bit = self.builder.ins().band_imm_u(r, 1);
        self.builder.ins().brif(bit, tagged, &[], object, &[]);
        self.enter_sealed(object);
        let obj = self.object_address(r);
        let word = self.builder.ins().load(types::I32, funcref_flags(), obj, header::GC_WORD as i32);
        let kind = self.builder.ins().band_imm_u(word, i64::from(KIND_MASK));
        let is_box = self.builder.ins().icmp_imm_u(IntCC::Equal, kind, i64::from(KIND_EXTERN_BOX));
        let unboxed = self.builder.create_block();
        self.builder.ins().brif(is_box, unboxed, &[], tagged, &[]);
        self.enter_sealed(unboxed);
        let host = self.builder.ins().load(types::I64, funcref_flags(), obj, EXTERN_BOX_WORD as i32);
        self.builder.ins().jump(done, &block_args(&[host]));
        self.enter_sealed(tagged);
        let shifted = self.builder.ins().ishl_imm_u(r, 32);
        let word = self.builder.ins().bor_imm_u(shifted, 1);
        self.builder.ins().jump(done, &block_args(&[word]));
        self.enter_sealed(done);
        self.push(result);
    }

    /// `any.convert_extern`: null stays null, a tagged word gives back the
    /// GC reference in it, and a host word gets a new extern box (the
    /// `gc_box_extern` builtin).
    pub(crate) fn translate_any_convert_extern(&mut self) {
        let e = self.pop1();
        let done = self.builder.create_block();
        let result = self.builder.append_block_param(done, types::I64);
        let non_null = self.builder.create_block();
        let host = self.builder.create_block();
        let tagged = self.builder.create_block();
        self.builder.ins().brif(e, non_null, &[], done, &block_args(&[e]));
        self.enter_sealed(non_null);
        let bit = self.builder.ins().band_imm_u(e, 1);
        self.builder.ins().brif(bit, tagged, &[], host, &[]);
        self.enter_sealed(tagged);
        let r = self.builder.ins().ushr_imm_u(e, 32);
        self.builder.ins().jump(done, &block_args(&[r]));
        self.enter_sealed(host);
        let boxed = self.call_builtin(BuiltinFunctionIndex::gc_box_extern, &[e]).expect("returns");
        self.builder.ins().jump(done, &block_args(&[boxed]));
        self.enter_sealed(done);
        self.push(result);
    }

    /// `ref.test` against `target`: 1 or 0 as an `i32`.
    pub(crate) fn translate_ref_test(&mut self, target: WasmRefType) {
        let r = self.pop1();
        let t = self.ref_matches(r, target);
        let v = self.builder.ins().uextend(types::I32, t);
        self.push(v);
    }

    /// `ref.cast` to `target`: traps `cast failure` unless the value is
    /// one of `target`, and leaves it.
    pub(crate) fn translate_ref_cast(&mut self, target: WasmRefType) {
        let r = self.pop1();
        let t = self.ref_matches(r, target);
        self.builder.ins().trapz(t, to_clif(TrapCode::CastFailure));
        self.push(r);
    }

    /// `br_on_cast depth _ target` (or `br_on_cast_fail` when `on_fail`):
    /// branches with the reference if it is (is not) one of `target`,
    /// otherwise continues with it.
    pub(crate) fn translate_br_on_cast(&mut self, depth: u32, target: WasmRefType, on_fail: bool) {
        let r = *self.stack.last().expect("validated: a reference operand");
        let t = self.ref_matches(r, target);
        // The target takes the reference as its last value.
        let (label, args) = self.conditional_branch(depth);
        let next = self.builder.create_block();
        if on_fail {
            self.builder.ins().brif(t, next, &[], label, &args);
        } else {
            self.builder.ins().brif(t, label, &args, next, &[]);
        }
        self.builder.seal_block(next);
        self.builder.switch_to_block(next);
    }

    /// An `I8`: whether reference `r` is a value of `target` (in module
    /// form; `r` is of a type in `target`'s hierarchy).
    fn ref_matches(&mut self, r: Value, target: WasmRefType) -> Value {
        use WasmHeapType as H;
        match target.heap {
            // Every value of the hierarchy but extern boxes.
            H::Eq => self.object_matches_or_i31(r, target.nullable, |s, obj| {
                let word = s.builder.ins().load(types::I32, funcref_flags(), obj, header::GC_WORD as i32);
                let k = s.builder.ins().band_imm_u(word, i64::from(KIND_MASK));
                s.builder.ins().icmp_imm_u(IntCC::NotEqual, k, i64::from(KIND_EXTERN_BOX))
            }),
            // Every value of the hierarchy (null only if nullable).
            H::Any | H::Func | H::Extern | H::Exn => {
                if target.nullable {
                    self.builder.ins().iconst(types::I8, 1)
                } else {
                    self.builder.ins().icmp_imm_u(IntCC::NotEqual, r, 0)
                }
            }
            H::I31 => {
                let bit = self.builder.ins().band_imm_u(r, 1);
                let i31 = self.builder.ins().icmp_imm_u(IntCC::NotEqual, bit, 0);
                if target.nullable {
                    let null = self.builder.ins().icmp_imm_u(IntCC::Equal, r, 0);
                    self.builder.ins().bor(i31, null)
                } else {
                    i31
                }
            }
            // Only null: the bottoms.
            H::None | H::NoFunc | H::NoExtern | H::NoExn => {
                if target.nullable {
                    self.builder.ins().icmp_imm_u(IntCC::Equal, r, 0)
                } else {
                    self.builder.ins().iconst(types::I8, 0)
                }
            }
            H::Struct | H::Array => {
                let kind = if target.heap == H::Struct { KIND_STRUCT } else { KIND_ARRAY };
                self.object_matches(r, target.nullable, |s, obj| {
                    let word = s.builder.ins().load(types::I32, funcref_flags(), obj, header::GC_WORD as i32);
                    let k = s.builder.ins().band_imm_u(word, i64::from(KIND_MASK));
                    s.builder.ins().icmp_imm_u(IntCC::Equal, k, i64::from(kind))
                })
            }
            H::ConcreteStruct(t) | H::ConcreteArray(t) => {
                let t = t.as_u32();
                self.object_matches(r, target.nullable, |s, obj| {
                    let actual = s.builder.ins().load(types::I32, funcref_flags(), obj, header::TYPE_ID as i32);
                    s.type_id_matches(actual, t)
                })
            }
            H::ConcreteFunc(t) => self.func_ref_matches(r, t.as_u32(), target.nullable),
            // Never in a module's code.
            H::EngineFunc(_) | H::EngineStruct(_) | H::EngineArray(_) | H::RecLocal(_) => {
                self.builder.ins().iconst(types::I8, 0)
            }
        }
    }

    /// An `I8`: whether function reference `r` is null (and `nullable`) or
    /// a function whose type is module type `type_index` or below it.
    fn func_ref_matches(&mut self, r: Value, type_index: u32, nullable: bool) -> Value {
        let done = self.builder.create_block();
        let result = self.builder.append_block_param(done, types::I8);
        let non_null = self.builder.create_block();
        let if_null = self.builder.ins().iconst(types::I8, i64::from(nullable));
        self.builder.ins().brif(r, non_null, &[], done, &block_args(&[if_null]));
        self.enter_sealed(non_null);
        let actual = self.builder.ins().load(types::I32, funcref_flags(), r, func_ref::TYPE_ID as i32);
        let matches = self.type_id_matches(actual, type_index);
        self.builder.ins().jump(done, &block_args(&[matches]));
        self.enter_sealed(done);
        result
    }

    /// An `I8`: whether engine type id `actual` is module type
    /// `type_index` or (for a non-final type) declared below it: one
    /// compare; for a non-final type, when the ids differ, a look into the
    /// engine's display table (row `actual`, entry at the type's depth:
    /// `vmoffsets::type_displays`), or the `is_subtype` builtin in a cold
    /// block for an id past the table or a type deeper than its rows.
    pub(crate) fn type_id_matches(&mut self, actual: Value, type_index: u32) -> Value {
        let expected = self.engine_type_id(type_index);
        let eq = self.builder.ins().icmp(IntCC::Equal, actual, expected);
        if self.module.types[type_index as usize].is_final {
            return eq;
        }
        let done = self.builder.create_block();
        let result = self.builder.append_block_param(done, types::I8);
        let slow = self.builder.create_block();
        self.builder.set_cold_block(slow);
        let depth = self.type_depth(type_index);
        if depth < type_displays::DEPTH {
            let lookup = self.builder.create_block();
            let table = self.builder.create_block();
            self.builder.ins().brif(eq, done, &block_args(&[eq]), lookup, &[]);
            self.enter_sealed(lookup);
            let in_table =
                self.builder.ins().icmp_imm_u(IntCC::UnsignedLessThan, actual, i64::from(type_displays::TYPES));
            self.builder.ins().brif(in_table, table, &[], slow, &[]);
            self.enter_sealed(table);
            let ctx = self.builder.ins().load(types::I64, readonly(), self.vmctx, vmctx_header::STORE_CONTEXT as i32);
            let base = self.builder.ins().load(types::I64, readonly(), ctx, store_context::TYPE_DISPLAYS as i32);
            let row = self.builder.ins().uextend(types::I64, actual);
            let row = self.builder.ins().imul_imm_u(row, i64::from(type_displays::ROW));
            let at = self.builder.ins().iadd(base, row);
            let entry = self.builder.ins().load(types::I32, readonly(), at, (depth * 4) as i32);
            let below = self.builder.ins().icmp(IntCC::Equal, entry, expected);
            self.builder.ins().jump(done, &block_args(&[below]));
        } else {
            self.builder.ins().brif(eq, done, &block_args(&[eq]), slow, &[]);
        }
        self.enter_sealed(slow);
        let sub = self.call_builtin(BuiltinFunctionIndex::is_subtype, &[actual, expected]).expect("returns");
        let sub = self.builder.ins().icmp_imm_u(IntCC::NotEqual, sub, 0);
        self.builder.ins().jump(done, &block_args(&[sub]));
        self.enter_sealed(done);
        result
    }

    /// Traps with `code` if reference `r` is null, unless the validator
    /// typed it non-nullable.
    fn trap_if_null(&mut self, r: Value, code: TrapCode) {
        if !self.non_null.contains(&r) {
            self.builder.ins().trapz(r, to_clif(code));
        }
    }

    /// How many supertypes module type `type_index` declares, transitively
    /// (its position in its subtypes' displays).
    fn type_depth(&self, type_index: u32) -> u32 {
        let mut depth = 0;
        let mut t = type_index;
        while let Some(s) = self.module.types[t as usize].supertype.and_then(|s| s.concrete_index()) {
            depth += 1;
            t = s.as_u32();
        }
        depth
    }

    /// An `I8`: whether GC reference `r` is null (and `nullable`), or an
    /// object (not an i31) for which `test` (given the object's address)
    /// says so.
    fn object_matches(&mut self, r: Value, nullable: bool, test: impl FnOnce(&mut Self, Value) -> Value) -> Value {
        self.gc_ref_matches(r, nullable, false, test)
    }

    /// As [`Self::object_matches`], but an i31 matches too.
    fn object_matches_or_i31(
        &mut self,
        r: Value,
        nullable: bool,
        test: impl FnOnce(&mut Self, Value) -> Value,
    ) -> Value {
        self.gc_ref_matches(r, nullable, true, test)
    }

    /// An `I8`: whether GC reference `r` is null (and `nullable`), an i31
    /// (and `i31`), or an object for which `test` says so.
    fn gc_ref_matches(
        &mut self,
        r: Value,
        nullable: bool,
        i31: bool,
        test: impl FnOnce(&mut Self, Value) -> Value,
    ) -> Value {
        let done = self.builder.create_block();
        let result = self.builder.append_block_param(done, types::I8);
        let non_null = self.builder.create_block();
        let object = self.builder.create_block();
        let if_null = self.builder.ins().iconst(types::I8, i64::from(nullable));
        self.builder.ins().brif(r, non_null, &[], done, &block_args(&[if_null]));
        self.enter_sealed(non_null);
        let bit = self.builder.ins().band_imm_u(r, 1);
        let if_i31 = self.builder.ins().iconst(types::I8, i64::from(i31));
        self.builder.ins().brif(bit, done, &block_args(&[if_i31]), object, &[]);
        self.enter_sealed(object);
        let obj = self.object_address(r);
        let matches = test(self, obj);
        self.builder.ins().jump(done, &block_args(&[matches]));
        self.enter_sealed(done);
        result
    }

    /// The address of object `r` (non-null, not an i31): the GC heap's
    /// base plus the reference. The base is not loaded `readonly`: the
    /// heap may be created by a call (its first allocation), so the load
    /// must not be hoisted across calls (Cranelift reuses it until the
    /// next call or store).
    fn object_address(&mut self, r: Value) -> Value {
        let ctx = self.builder.ins().load(types::I64, readonly(), self.vmctx, vmctx_header::STORE_CONTEXT as i32);
        let base =
            self.builder.ins().load(types::I64, MemFlagsData::trusted(), ctx, store_context::GC_HEAP_BASE as i32);
        self.builder.ins().iadd(base, r)
    }

    /// The struct type at module type `type_index` and its layout.
    fn struct_layout(&self, type_index: u32) -> (Vec<WasmStorageType>, StructLayout) {
        match &self.module.types[type_index as usize].composite {
            WasmCompositeType::Struct(s) => (s.fields.iter().map(|f| f.storage).collect(), StructLayout::of(s)),
            _ => unreachable!("validated: a struct type index names a struct type"),
        }
    }

    /// `struct.new $t` (`struct.new_default $t` when `default`).
    pub(crate) fn translate_struct_new(&mut self, type_index: u32, default: bool) {
        let (fields, layout) = self.struct_layout(type_index);
        let values = if default {
            fields.iter().map(|f| self.zero_value(f.unpacked())).collect()
        } else {
            self.popn(fields.len())
        };
        let size = self.builder.ins().iconst(types::I64, i64::from(layout.size));
        let r = self.alloc_object(type_index, KIND_STRUCT, size, |s| {
            let ti = s.i32c(type_index);
            let size = s.i32c(layout.size);
            s.call_builtin(BuiltinFunctionIndex::gc_alloc, &[ti, size]).expect("returns")
        });
        let obj = self.object_address(r);
        for ((f, off), v) in fields.iter().zip(&layout.offsets).zip(values) {
            self.store_field(*f, obj, *off, v);
        }
        self.push(r);
    }

    /// Allocates an object of module type `type_index` and header kind
    /// `kind`, `size` bytes (an `I64`, a multiple of 8 with the header):
    /// inline from the store's allocation window when it fits (bump the
    /// window's start, write the header; the fields are not zeroed: the
    /// caller writes every one), else
    /// by `slow`, a builtin call in a cold block that moves the window or
    /// traps. Returns the reference.
    fn alloc_object(
        &mut self,
        type_index: u32,
        kind: u32,
        size: Value,
        slow: impl FnOnce(&mut Self) -> Value,
    ) -> Value {
        let ctx = self.builder.ins().load(types::I64, readonly(), self.vmctx, vmctx_header::STORE_CONTEXT as i32);
        let next =
            self.builder.ins().load(types::I64, MemFlagsData::trusted(), ctx, store_context::GC_ALLOC_NEXT as i32);
        let limit =
            self.builder.ins().load(types::I64, MemFlagsData::trusted(), ctx, store_context::GC_ALLOC_LIMIT as i32);
        let end = self.builder.ins().iadd(next, size);
        let fits = self.builder.ins().icmp(IntCC::UnsignedLessThanOrEqual, end, limit);
        let done = self.builder.create_block();
        let result = self.builder.append_block_param(done, types::I64);
        let fast = self.builder.create_block();
        let call = self.builder.create_block();
        self.builder.set_cold_block(call);
        self.builder.ins().brif(fits, fast, &[], call, &[]);
        self.enter_sealed(fast);
        self.builder.ins().store(MemFlagsData::trusted(), end, ctx, store_context::GC_ALLOC_NEXT as i32);
        let obj = self.object_address(next);
        let type_id = self.engine_type_id(type_index);
        self.builder.ins().store(MemFlagsData::trusted(), type_id, obj, header::TYPE_ID as i32);
        let kind = self.builder.ins().iconst(types::I32, i64::from(kind));
        self.builder.ins().store(MemFlagsData::trusted(), kind, obj, header::GC_WORD as i32);
        self.builder.ins().jump(done, &block_args(&[next]));
        self.enter_sealed(call);
        let r = slow(self);
        self.builder.ins().jump(done, &block_args(&[r]));
        self.enter_sealed(done);
        result
    }

    /// Allocates an array of module type `type_index` with `len` (an
    /// `I32`) elements (not zeroed) of `elem_size` bytes starting at
    /// `elems_offset`, and writes its length; returns the reference. A
    /// length too large for the window always takes the runtime's path,
    /// which traps `allocation failed` if it cannot fit at all.
    fn alloc_array(&mut self, type_index: u32, elem_size: u32, elems_offset: u32, len: Value) -> Value {
        let n = self.builder.ins().uextend(types::I64, len);
        let bytes = self.builder.ins().imul_imm_u(n, i64::from(elem_size));
        let unrounded = self.builder.ins().iadd_imm_u(bytes, i64::from(elems_offset + OBJECT_ALIGN - 1));
        let size = self.builder.ins().band_imm_s(unrounded, -i64::from(OBJECT_ALIGN));
        let r = self.alloc_object(type_index, KIND_ARRAY, size, |s| {
            let ti = s.i32c(type_index);
            s.call_builtin(BuiltinFunctionIndex::gc_alloc_array, &[ti, len]).expect("returns")
        });
        let obj = self.object_address(r);
        self.builder.ins().store(MemFlagsData::trusted(), len, obj, ARRAY_LENGTH as i32);
        r
    }

    /// `struct.get $t $f` and its packed forms (`signed` for `get_s`).
    pub(crate) fn translate_struct_get(&mut self, type_index: u32, field: u32, signed: bool) {
        let (fields, layout) = self.struct_layout(type_index);
        let r = self.pop1();
        self.trap_if_null(r, TrapCode::NullStructReference);
        let obj = self.object_address(r);
        let v = self.load_field(fields[field as usize], obj, layout.offsets[field as usize], signed);
        self.push(v);
    }

    /// `struct.set $t $f`.
    pub(crate) fn translate_struct_set(&mut self, type_index: u32, field: u32) {
        let (fields, layout) = self.struct_layout(type_index);
        let (r, v) = self.pop2();
        self.trap_if_null(r, TrapCode::NullStructReference);
        let obj = self.object_address(r);
        let s = fields[field as usize];
        self.store_field(s, obj, layout.offsets[field as usize], v);
        self.write_barrier(s, r, obj, v);
    }

    /// The generational write barrier after a store of `v` (of storage
    /// `s`) into object `r` (at address `obj`): see the module docs.
    /// Nothing for a field that holds no GC reference. `v` is `None` when
    /// the values stored are not known (`array.copy`).
    fn write_barrier(&mut self, s: WasmStorageType, r: Value, obj: Value, v: impl Into<Option<Value>>) {
        let Some(kind) = RefKind::of(s) else { return };
        let old = self.builder.ins().icmp_imm_u(IntCC::UnsignedGreaterThanOrEqual, r, i64::from(OLD_START));
        let cond = match (kind, v.into()) {
            (RefKind::Any, Some(v)) => {
                let from_nursery = self.builder.ins().iadd_imm_s(v, -i64::from(NURSERY_START));
                let young =
                    self.builder.ins().icmp_imm_u(IntCC::UnsignedLessThan, from_nursery, i64::from(NURSERY_RESERVE));
                self.builder.ins().band(old, young)
            }
            (RefKind::Exn, _) => return,
            _ => old,
        };
        let check = self.builder.create_block();
        let slow = self.builder.create_block();
        let done = self.builder.create_block();
        self.builder.set_cold_block(slow);
        self.builder.ins().brif(cond, check, &[], done, &[]);
        self.enter_sealed(check);
        let word = self.builder.ins().load(types::I32, MemFlagsData::trusted(), obj, header::GC_WORD as i32);
        let bit = self.builder.ins().band_imm_u(word, i64::from(REMEMBERED));
        self.builder.ins().brif(bit, done, &[], slow, &[]);
        self.enter_sealed(slow);
        self.call_builtin(BuiltinFunctionIndex::gc_remember, &[r]);
        self.builder.ins().jump(done, &[]);
        self.enter_sealed(done);
    }

    /// The element storage of array type `type_index`, its size, and the
    /// offset of element 0.
    fn array_layout(&self, type_index: u32) -> (WasmStorageType, u32, u32) {
        match &self.module.types[type_index as usize].composite {
            WasmCompositeType::Array(a) => {
                let size = field_size(a.element.storage);
                (a.element.storage, size, array_elems_offset(size))
            }
            _ => unreachable!("validated: an array type index names an array type"),
        }
    }

    /// Traps `null array reference` on null `r`; returns the object's
    /// address and its length.
    fn array_object(&mut self, r: Value) -> (Value, Value) {
        self.trap_if_null(r, TrapCode::NullArrayReference);
        let obj = self.object_address(r);
        let len = self.builder.ins().load(types::I32, funcref_flags(), obj, ARRAY_LENGTH as i32);
        (obj, len)
    }

    /// Traps `out of bounds array access` unless `[i, i + n)` (as 64-bit
    /// numbers) lies within `len`.
    fn array_range_check(&mut self, i: Value, n: Value, len: Value) {
        let i = self.builder.ins().uextend(types::I64, i);
        let n = self.builder.ins().uextend(types::I64, n);
        let len = self.builder.ins().uextend(types::I64, len);
        let end = self.builder.ins().iadd(i, n);
        let out = self.builder.ins().icmp(IntCC::UnsignedGreaterThan, end, len);
        self.builder.ins().trapnz(out, to_clif(TrapCode::ArrayOutOfBounds));
    }

    /// The address of element `i` of array object `obj`: `obj + i × size`
    /// (the elements' offset is added by the access).
    fn element_address(&mut self, obj: Value, i: Value, size: u32) -> Value {
        let i = self.builder.ins().uextend(types::I64, i);
        let scaled = self.builder.ins().imul_imm_u(i, i64::from(size));
        self.builder.ins().iadd(obj, scaled)
    }

    /// Stores `v` into `n` elements of storage `s` (`size` bytes each)
    /// from address `first + offset` on, in a loop.
    fn fill_elements(&mut self, s: WasmStorageType, size: u32, first: Value, offset: u32, n: Value, v: Value) {
        let n = self.builder.ins().uextend(types::I64, n);
        let bytes = self.builder.ins().imul_imm_u(n, i64::from(size));
        let end = self.builder.ins().iadd(first, bytes);
        let header = self.builder.create_block();
        let p = self.builder.append_block_param(header, types::I64);
        let body = self.builder.create_block();
        let exit = self.builder.create_block();
        self.builder.ins().jump(header, &block_args(&[first]));
        self.builder.switch_to_block(header);
        let at_end = self.builder.ins().icmp(IntCC::Equal, p, end);
        self.builder.ins().brif(at_end, exit, &[], body, &[]);
        self.enter_sealed(body);
        self.store_field(s, p, offset, v);
        let next = self.builder.ins().iadd_imm_u(p, i64::from(size));
        self.builder.ins().jump(header, &block_args(&[next]));
        self.builder.seal_block(header);
        self.enter_sealed(exit);
    }

    /// `array.new $t` (`array.new_default $t` when `default`).
    pub(crate) fn translate_array_new(&mut self, type_index: u32, default: bool) {
        let (s, size, offset) = self.array_layout(type_index);
        let (value, len) = if default {
            (None, self.pop1())
        } else {
            let (v, len) = self.pop2();
            (Some(v), len)
        };
        let r = self.alloc_array(type_index, size, offset, len);
        let obj = self.object_address(r);
        match value {
            Some(v) => self.fill_elements(s, size, obj, offset, len, v),
            None => {
                // Reused heap memory is not zero: the default value is
                // written like any other.
                let first = self.builder.ins().iadd_imm_u(obj, i64::from(offset));
                let n = self.builder.ins().uextend(types::I64, len);
                let bytes = self.builder.ins().imul_imm_u(n, i64::from(size));
                let zero = self.i32c(0);
                self.call_builtin_raw(BuiltinFunctionIndex::raw_memset, &[first, zero, bytes]);
            }
        }
        self.push(r);
    }

    /// `array.new_fixed $t n`.
    pub(crate) fn translate_array_new_fixed(&mut self, type_index: u32, n: u32) {
        let (s, size, offset) = self.array_layout(type_index);
        let values = self.popn(n as usize);
        let len = self.i32c(n);
        let r = self.alloc_array(type_index, size, offset, len);
        let obj = self.object_address(r);
        for (k, v) in values.into_iter().enumerate() {
            self.store_field(s, obj, offset + k as u32 * size, v);
        }
        self.push(r);
    }

    /// `array.get $t` and its packed forms (`signed` for `get_s`).
    pub(crate) fn translate_array_get(&mut self, type_index: u32, signed: bool) {
        let (s, size, offset) = self.array_layout(type_index);
        let (r, i) = self.pop2();
        let (obj, len) = self.array_object(r);
        let inside = self.builder.ins().icmp(IntCC::UnsignedLessThan, i, len);
        self.builder.ins().trapz(inside, to_clif(TrapCode::ArrayOutOfBounds));
        let at = self.element_address(obj, i, size);
        let v = self.load_field(s, at, offset, signed);
        self.push(v);
    }

    /// `array.set $t`.
    pub(crate) fn translate_array_set(&mut self, type_index: u32) {
        let (s, size, offset) = self.array_layout(type_index);
        let (r, i, v) = self.pop3();
        let (obj, len) = self.array_object(r);
        let inside = self.builder.ins().icmp(IntCC::UnsignedLessThan, i, len);
        self.builder.ins().trapz(inside, to_clif(TrapCode::ArrayOutOfBounds));
        let at = self.element_address(obj, i, size);
        self.store_field(s, at, offset, v);
        self.write_barrier(s, r, obj, v);
    }

    /// `array.len`.
    pub(crate) fn translate_array_len(&mut self) {
        let r = self.pop1();
        let (_, len) = self.array_object(r);
        self.push(len);
    }

    /// `array.fill $t`.
    pub(crate) fn translate_array_fill(&mut self, type_index: u32) {
        let (s, size, offset) = self.array_layout(type_index);
        let args = self.popn(4);
        let (r, i, v, n) = (args[0], args[1], args[2], args[3]);
        let (obj, len) = self.array_object(r);
        self.array_range_check(i, n, len);
        let first = self.element_address(obj, i, size);
        self.fill_elements(s, size, first, offset, n, v);
        self.write_barrier(s, r, obj, v);
    }

    /// `array.copy $dst $src`: a `memmove` of the elements (references are
    /// plain words, so a byte copy is exact), then the write barrier for
    /// the destination.
    pub(crate) fn translate_array_copy(&mut self, dst_type: u32, src_type: u32) {
        let (dst_storage, size, offset) = self.array_layout(dst_type);
        let (_, _, src_offset) = self.array_layout(src_type);
        let args = self.popn(5);
        let (dst, di, src, si, n) = (args[0], args[1], args[2], args[3], args[4]);
        let (dst_obj, dst_len) = self.array_object(dst);
        let (src_obj, src_len) = self.array_object(src);
        self.array_range_check(di, n, dst_len);
        self.array_range_check(si, n, src_len);
        let d = self.element_address(dst_obj, di, size);
        let d = self.builder.ins().iadd_imm_u(d, i64::from(offset));
        let s = self.element_address(src_obj, si, size);
        let s = self.builder.ins().iadd_imm_u(s, i64::from(src_offset));
        let n = self.builder.ins().uextend(types::I64, n);
        let bytes = self.builder.ins().imul_imm_u(n, i64::from(size));
        self.call_builtin_raw(BuiltinFunctionIndex::raw_memmove, &[d, s, bytes]);
        self.write_barrier(dst_storage, dst, dst_obj, None);
    }

    /// `array.new_data $t $d` (`array.new_elem $t $e` when `elem`). The
    /// data form is inline: the bounds check against the segment's record
    /// in the VMContext (`vmoffsets::data_segment`; length 0 once
    /// dropped), the allocation, and a copy of the bytes.
    pub(crate) fn translate_array_new_segment(&mut self, type_index: u32, segment: u32, elem: bool) {
        if !elem && segment < self.offsets.num_data_segments() {
            return self.translate_array_new_data(type_index, segment);
        }
        let (offset, len) = self.pop2();
        let ti = self.i32c(type_index);
        let seg = self.i32c(segment);
        let f = if elem { BuiltinFunctionIndex::array_new_elem } else { BuiltinFunctionIndex::array_new_data };
        let r = self.call_builtin(f, &[ti, seg, offset, len]).expect("returns");
        self.push(r);
    }

    /// `array.new_data $t $d`, inline (see
    /// [`Self::translate_array_new_segment`]).
    fn translate_array_new_data(&mut self, type_index: u32, segment: u32) {
        let (_, size, elems_offset) = self.array_layout(type_index);
        let (offset, len) = self.pop2();
        let record = self.offsets.data_segment(segment) as i32;
        let available =
            self.builder.ins().load(types::I64, MemFlagsData::trusted(), self.vmctx, record + data_segment::LEN as i32);
        let start = self.builder.ins().uextend(types::I64, offset);
        let n = self.builder.ins().uextend(types::I64, len);
        let bytes = self.builder.ins().imul_imm_u(n, i64::from(size));
        let end = self.builder.ins().iadd(start, bytes);
        let out = self.builder.ins().icmp(IntCC::UnsignedGreaterThan, end, available);
        self.builder.ins().trapnz(out, to_clif(TrapCode::MemoryOutOfBounds));
        let r = self.alloc_array(type_index, size, elems_offset, len);
        let obj = self.object_address(r);
        let dst = self.builder.ins().iadd_imm_u(obj, i64::from(elems_offset));
        let base = self.builder.ins().load(types::I64, readonly(), self.vmctx, record + data_segment::PTR as i32);
        let src = self.builder.ins().iadd(base, start);
        self.call_builtin_raw(BuiltinFunctionIndex::raw_memmove, &[dst, src, bytes]);
        self.push(r);
    }

    /// `array.init_data $t $d` (`array.init_elem $t $e` when `elem`).
    pub(crate) fn translate_array_init_segment(&mut self, type_index: u32, segment: u32, elem: bool) {
        let args = self.popn(4);
        let ti = self.i32c(type_index);
        let seg = self.i32c(segment);
        let f = if elem { BuiltinFunctionIndex::array_init_elem } else { BuiltinFunctionIndex::array_init_data };
        self.call_builtin(f, &[ti, seg, args[0], args[1], args[2], args[3]]);
    }

    /// Stores `v` into a field of storage `s` at `obj + offset`.
    fn store_field(&mut self, s: WasmStorageType, obj: Value, offset: u32, v: Value) {
        let off = offset as i32;
        let flags = field_flags(s);
        match s {
            WasmStorageType::I8 => self.builder.ins().istore8(flags, v, obj, off),
            WasmStorageType::I16 => self.builder.ins().istore16(flags, v, obj, off),
            WasmStorageType::Val(WasmValType::Ref(r)) if r.is_any() => self.builder.ins().istore32(flags, v, obj, off),
            WasmStorageType::Val(_) => self.builder.ins().store(flags, v, obj, off),
        };
    }

    /// Loads a field of storage `s` at `obj + offset` as its unpacked
    /// value (packed integers extended as `signed` says).
    fn load_field(&mut self, s: WasmStorageType, obj: Value, offset: u32, signed: bool) -> Value {
        let off = offset as i32;
        let flags = field_flags(s);
        let ins = self.builder.ins();
        match s {
            WasmStorageType::I8 if signed => ins.sload8(types::I32, flags, obj, off),
            WasmStorageType::I8 => ins.uload8(types::I32, flags, obj, off),
            WasmStorageType::I16 if signed => ins.sload16(types::I32, flags, obj, off),
            WasmStorageType::I16 => ins.uload16(types::I32, flags, obj, off),
            WasmStorageType::Val(WasmValType::Ref(r)) if r.is_any() => ins.uload32(flags, obj, off),
            WasmStorageType::Val(t) => ins.load(crate::abi::clif_type(t), flags, obj, off),
        }
    }

    /// The engine type id of module type `type_index`, from the
    /// VMContext's type-id array (a hoistable read-only load).
    pub(crate) fn engine_type_id(&mut self, type_index: u32) -> Value {
        let ids = self.builder.ins().load(types::I64, readonly(), self.vmctx, vmctx_header::TYPE_IDS as i32);
        self.builder.ins().load(types::I32, readonly(), ids, (type_index * 4) as i32)
    }
}

/// The target of a cast instruction, in module form.
///
/// # Errors
///
/// As [`WasmRefType::from_wasmparser`].
pub(crate) fn cast_target(
    heap: wasmparser::HeapType,
    nullable: bool,
    types: &[kiln_environ::WasmSubType],
) -> WasmResult<WasmRefType> {
    let r = wasmparser::RefType::new(nullable, heap)
        .ok_or_else(|| kiln_environ::WasmError::Unsupported(format!("reference type {heap:?}")))?;
    Ok(WasmRefType::from_wasmparser(r, types)?)
}

/// Flags for a field access: never traps (null is checked first), aligned
/// except for `v128` (8-aligned in objects).
fn field_flags(s: WasmStorageType) -> MemFlagsData {
    match s {
        WasmStorageType::Val(WasmValType::V128) => MemFlagsData::new().with_notrap(),
        _ => MemFlagsData::trusted(),
    }
}
