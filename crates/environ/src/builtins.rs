//! The list of runtime functions ("builtins" or libcalls) that compiled code
//! may call. It is defined once here, as a macro, and consumed both by the
//! compiler (to build call signatures and the index used to load the function
//! pointer from the VMContext's builtin array) and by the runtime (to fill
//! that array with its implementations).
//!
//! Argument type tokens: `vmctx` (the calling instance's VMContext pointer),
//! `i32`, `i64`, `ptr` (a pointer-sized integer).

/// Invokes `$mac! { name(arg: ty, ...) [-> ret]; ... }` with every builtin.
#[macro_export]
macro_rules! foreach_builtin_function {
    ($mac:ident) => {
        $mac! {
            /// `memory.grow`: returns the old size in pages, or -1 on failure.
            memory_grow(vmctx: vmctx, memory: i32, delta: i64) -> i64;
            /// `memory.init`.
            memory_init(vmctx: vmctx, memory: i32, data: i32, dst: i64, src: i32, len: i32);
            /// `data.drop`.
            data_drop(vmctx: vmctx, data: i32);
            /// `table.grow` for any reference table: returns the old size or -1.
            table_grow(vmctx: vmctx, table: i32, delta: i64, init: ptr) -> i64;
            /// `table.fill` for any reference table.
            table_fill(vmctx: vmctx, table: i32, dst: i64, val: ptr, len: i64);
            /// `table.copy`.
            table_copy(vmctx: vmctx, dst_table: i32, src_table: i32, dst: i64, src: i64, len: i64);
            /// Reads funcref table element `index`, computing it first if it
            /// was never initialized (see `FUNCREF_INIT_BIT`); returns the
            /// untagged reference.
            table_get_lazy(vmctx: vmctx, table: i32, index: i64) -> ptr;
            /// `table.init`.
            table_init(vmctx: vmctx, table: i32, elem: i32, dst: i64, src: i32, len: i32);
            /// `elem.drop`.
            elem_drop(vmctx: vmctx, elem: i32);
            /// `ref.func`: returns the (initialized) `VMFuncRef` of a function.
            ref_func(vmctx: vmctx, func: i32) -> ptr;
            /// Whether engine type `actual` is engine type `expected` or one
            /// of its declared subtypes (GC subtyping): 1 or 0. The slow
            /// path of a signature check against a non-final type.
            is_subtype(vmctx: vmctx, actual: i32, expected: i32) -> i32;
            /// Allocates a struct of module type `type_index`, `size` bytes
            /// with its header, in the store's GC heap: writes the header
            /// and returns the reference (the object's offset in the heap;
            /// its fields are zero). Traps `allocation failed` when the
            /// heap is full.
            gc_alloc(vmctx: vmctx, type_index: i32, size: i32) -> i64;
            /// Allocates an array of module type `type_index` with `len`
            /// zeroed elements (length written); returns the reference.
            /// Traps `allocation failed` when it does not fit.
            gc_alloc_array(vmctx: vmctx, type_index: i32, len: i32) -> i64;
            /// `any.convert_extern` of host externref word `word`: a new
            /// extern box holding it (the store keeps the host value alive).
            gc_box_extern(vmctx: vmctx, word: ptr) -> i64;
            /// The write barrier's slow path: a reference that may be young
            /// was stored into old object `obj`, not yet remembered; puts
            /// it in the heap's remembered set. Never collects.
            gc_remember(vmctx: vmctx, obj: i64);
            /// `array.new_data`: an array of module type `type_index` of
            /// `len` elements read from data segment `data` at byte `offset`.
            array_new_data(vmctx: vmctx, type_index: i32, data: i32, offset: i32, len: i32) -> i64;
            /// `array.new_elem`: an array of `len` references from element
            /// segment `elem` at index `offset`.
            array_new_elem(vmctx: vmctx, type_index: i32, elem: i32, offset: i32, len: i32) -> i64;
            /// `array.init_data`: copies `len` elements' bytes from data
            /// segment `data` at byte `src` into `array` from index `dst`.
            array_init_data(vmctx: vmctx, type_index: i32, data: i32, array: i64, dst: i32, src: i32, len: i32);
            /// `array.init_elem`: copies `len` references from element
            /// segment `elem` at `src` into `array` from index `dst`.
            array_init_elem(vmctx: vmctx, type_index: i32, elem: i32, array: i64, dst: i32, src: i32, len: i32);
            /// Externref written into a table or global: takes a reference count.
            externref_retain(vmctx: vmctx, externref: ptr);
            /// Externref overwritten in a table or global: drops a reference count.
            externref_release(vmctx: vmctx, externref: ptr);
            /// `memory.atomic.notify` at effective address `addr`: returns the number woken.
            memory_atomic_notify(vmctx: vmctx, memory: i32, addr: i64, count: i32) -> i32;
            /// `memory.atomic.wait32`: 0 woken, 1 value differed, 2 timed out.
            memory_atomic_wait32(vmctx: vmctx, memory: i32, addr: i64, expected: i32, timeout: i64) -> i32;
            /// `memory.atomic.wait64`: 0 woken, 1 value differed, 2 timed out.
            memory_atomic_wait64(vmctx: vmctx, memory: i32, addr: i64, expected: i64, timeout: i64) -> i32;
            /// The epoch deadline passed: traps, or continues with a new deadline
            /// in the store context.
            new_epoch(vmctx: vmctx);
            /// The fuel counter (published in the store context) reached
            /// `threshold`: refuels from the store's reserve (yielding to
            /// the executor first when the store asks for fuel yields)
            /// until it is below it, or traps `all fuel consumed`.
            out_of_fuel(vmctx: vmctx, threshold: i64);
            /// `throw`: creates an exception of tag `tag` (a module tag
            /// index) whose payload is the tag's parameters, one 16-byte
            /// slot each at `values`, and throws it. Never returns.
            throw(vmctx: vmctx, tag: i32, values: ptr);
            /// `throw_ref`: throws exception object `exn` again, or traps
            /// on null. Never returns.
            throw_ref(vmctx: vmctx, exn: ptr);
            /// On-stack replacement: baseline code of defined function
            /// `func`, at the head of its `loop_index`th loop, asks whether
            /// optimized code can take its activation over there. Returns
            /// that code's address (a function of the wasm convention
            /// taking the callee and caller VMContexts and the baseline
            /// frame's frame pointer, returning the function's results), or
            /// 0 while there is none (asking for it to be compiled).
            /// With `loop_index` [`OSR_HOT_CALLS`] the function reports
            /// that it was called often (see `kiln_baseline::Options`);
            /// that returns 0.
            osr_entry(vmctx: vmctx, func: i32, loop_index: i32) -> ptr;
            /// `memmove` on native addresses that compiled code has already
            /// bounds-checked (the body of `memory.copy`, and of
            /// `array.copy` and `array.new_data` on GC arrays). Builtins whose
            /// first parameter is not `vmctx` are called directly, with no
            /// stub, and must never trap.
            raw_memmove(dst: ptr, src: ptr, len: i64);
            /// `memset` on bounds-checked native addresses (`memory.fill`).
            raw_memset(dst: ptr, val: i32, len: i64);
        }
    };
}

macro_rules! declare_indices {
    ($( $(#[$attr:meta])* $name:ident( $($pname:ident: $pty:ident),* ) $(-> $ret:ident)?; )*) => {
        /// Index of a builtin in the VMContext's builtin-function array.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct BuiltinFunctionIndex(u32);

        #[allow(non_upper_case_globals, missing_docs)]
        impl BuiltinFunctionIndex {
            declare_indices!(@consts 0; $($name)*);
        }

        impl BuiltinFunctionIndex {
            /// Number of builtins.
            pub const COUNT: u32 = declare_indices!(@count $($name)*);

            /// The index as a `u32`.
            pub const fn index(self) -> u32 {
                self.0
            }

            /// Whether compiled code may call this builtin with a calling
            /// convention that clobbers no register (Cranelift's
            /// `preserve_all`, where the target supports it; the runtime's
            /// stub then saves everything). True for the epoch and fuel
            /// builtins, which sit on cold paths inside hot loops: no value
            /// in the loop has to be spilled around them.
            pub const fn preserves_all_registers(self) -> bool {
                self.0 == Self::new_epoch.0 || self.0 == Self::out_of_fuel.0
            }

            /// Whether the builtin throws wasm exceptions (and never
            /// returns normally). Compiled code calls these with
            /// Cranelift's `tail` convention, as `try_call`s when handlers
            /// are in scope: across the exceptional edge of a call to a
            /// `tail` callee no register survives, so the runtime's jump
            /// into a handler restores only the stack and frame pointers.
            /// Their arguments are integers in the registers where the C
            /// convention has them too.
            pub const fn throws(self) -> bool {
                self.0 == Self::throw.0 || self.0 == Self::throw_ref.0
            }

            /// The builtin's name.
            pub fn name(self) -> &'static str {
                const NAMES: &[&str] = &[$(stringify!($name)),*];
                NAMES[self.0 as usize]
            }
        }
    };
    (@consts $n:expr; $first:ident $($rest:ident)*) => {
        pub const $first: BuiltinFunctionIndex = BuiltinFunctionIndex($n);
        declare_indices!(@consts $n + 1; $($rest)*);
    };
    (@consts $n:expr;) => {};
    (@count $($name:ident)*) => { 0 $(+ { let _ = stringify!($name); 1 })* };
}

foreach_builtin_function!(declare_indices);

/// The `loop_index` with which baseline code reports to
/// [`BuiltinFunctionIndex::osr_entry`] that its function was called often
/// (its entry counter ran out), rather than asking for an entry at a loop.
pub const OSR_HOT_CALLS: u32 = u32::MAX;
