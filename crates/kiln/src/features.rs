//! The WebAssembly proposals Kiln can switch on or off: the one list that
//! `Config`, the CLI's `-W` options and the fuzz generators read.

use kiln_environ::wasmparser::WasmFeatures;

/// `on` → `true`, `off` → `false` (the feature table's default column).
macro_rules! is_on {
    (on) => {
        true
    };
    (off) => {
        false
    };
}

/// Defines [`WasmFeature`] from one table: variant, name (as the CLI and
/// [`Config::wasm_feature`](crate::Config::wasm_feature) spell it), other
/// accepted spellings, one line of help, whether it is on by default
/// (`on`/`off`) and the validator flags it switches.
macro_rules! wasm_features {
    ($(
        $(#[$doc:meta])*
        $variant:ident => $name:literal [$($alias:literal),*], $summary:literal, $default:ident, $flags:expr;
    )*) => {
        /// A WebAssembly proposal that can be switched on or off with
        /// [`Config::wasm_feature_set`](crate::Config::wasm_feature_set).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum WasmFeature {
            $($(#[$doc])* $variant,)*
        }

        impl WasmFeature {
            /// Every feature, in the order help texts list them.
            pub const ALL: &'static [WasmFeature] = &[$(WasmFeature::$variant),*];

            /// The feature's name (`simd`, `tail-call`, ...).
            pub fn name(self) -> &'static str {
                match self { $(WasmFeature::$variant => $name,)* }
            }

            /// The feature named `name` (its name or another accepted
            /// spelling, such as `sign-extension-ops`).
            pub fn from_name(name: &str) -> Option<WasmFeature> {
                match name {
                    $($name $(| $alias)* => Some(WasmFeature::$variant),)*
                    _ => None,
                }
            }

            /// One line saying what the feature adds, ending with whether it
            /// is on by default: `"128-bit SIMD (on)"`.
            pub fn summary(self) -> &'static str {
                match self { $(WasmFeature::$variant => concat!($summary, " (", stringify!($default), ")"),)* }
            }

            /// Whether `Config::new()` enables the feature.
            pub fn enabled_by_default(self) -> bool {
                match self { $(WasmFeature::$variant => is_on!($default),)* }
            }

            /// The validator's flags for the feature.
            pub(crate) fn flags(self) -> WasmFeatures {
                match self { $(WasmFeature::$variant => $flags,)* }
            }
        }
    };
}

wasm_features! {
    /// `v128` and its operators.
    Simd => "simd" [], "128-bit SIMD", on, WasmFeatures::SIMD;
    /// Relaxed SIMD operators (results may differ between hosts).
    RelaxedSimd => "relaxed-simd" [], "relaxed SIMD", on, WasmFeatures::RELAXED_SIMD;
    /// `memory.copy`, `memory.fill`, passive segments and their operators.
    BulkMemory => "bulk-memory" [], "bulk memory operations", on, WasmFeatures::BULK_MEMORY;
    /// `funcref`/`externref` values, several tables, table operators.
    ReferenceTypes => "reference-types" [], "funcref/externref values and tables", on,
        WasmFeatures::REFERENCE_TYPES.union(WasmFeatures::GC_TYPES);
    /// Several results from functions and blocks, block parameters.
    MultiValue => "multi-value" [], "several results and block results", on, WasmFeatures::MULTI_VALUE;
    /// `i32`/`i64` `add`, `sub`, `mul` in constant expressions.
    ExtendedConst => "extended-const" [], "arithmetic in constant expressions", on, WasmFeatures::EXTENDED_CONST;
    /// `return_call` and `return_call_indirect`.
    TailCall => "tail-call" [], "return_call, return_call_indirect", on, WasmFeatures::TAIL_CALL;
    /// Shared memories, atomics, `memory.atomic.wait`/`notify`.
    Threads => "threads" [], "shared memories and atomics", on, WasmFeatures::THREADS;
    /// The sign-extension operators (`i32.extend8_s`, ...).
    SignExtension => "sign-extension" ["sign-extension-ops"], "sign-extension operators", on,
        WasmFeatures::SIGN_EXTENSION;
    /// Saturating float-to-int conversions (`i32.trunc_sat_f32_s`, ...).
    NontrappingFloatToInt => "nontrapping-float-to-int"
        ["nontrapping-float-to-int-conversions", "saturating-float-to-int"], "saturating float-to-int", on,
        WasmFeatures::SATURATING_FLOAT_TO_INT;
    /// Importing and exporting mutable globals.
    MutableGlobal => "mutable-global" [], "importing and exporting mutable globals", on, WasmFeatures::MUTABLE_GLOBAL;
    /// Memories whose page size is 1 byte instead of 64 KiB (off by
    /// default: not part of WebAssembly 3.0).
    CustomPageSizes => "custom-page-sizes" [], "memories with 1-byte pages", off, WasmFeatures::CUSTOM_PAGE_SIZES;
    /// Typed function references: `(ref $t)`, `call_ref`,
    /// `return_call_ref`, `ref.as_non_null`, `br_on_null`,
    /// `br_on_non_null`, non-nullable locals, table initializers
    /// (WebAssembly 3.0).
    FunctionReferences => "function-references" [], "typed function references", on,
        WasmFeatures::FUNCTION_REFERENCES;
    /// Exception handling (WebAssembly 3.0): tags, `throw`, `throw_ref`,
    /// `try_table`, `exnref`.
    Exceptions => "exceptions" [], "exception handling", on, WasmFeatures::EXCEPTIONS;
    /// Legacy exception handling (`try`, `catch`, `catch_all`, `rethrow`,
    /// `delegate`), which LLVM's `-fwasm-exceptions` emits by default:
    /// translated onto the same handlers as `try_table`, so it costs
    /// nothing where it is not used (on by default, as in V8).
    LegacyExceptions => "legacy-exceptions" [], "legacy exception handling (try/catch/rethrow/delegate)", on,
        WasmFeatures::LEGACY_EXCEPTIONS;
    /// `i64.add128`, `i64.sub128`, `i64.mul_wide_s`, `i64.mul_wide_u`
    /// (off by default: not part of WebAssembly 3.0).
    WideArithmetic => "wide-arithmetic" [], "128-bit add/sub and widening multiply", off,
        WasmFeatures::WIDE_ARITHMETIC;
    /// Garbage collection (WebAssembly 3.0): struct and array types,
    /// recursion groups canonicalized engine-wide, declared subtyping
    /// (`sub`, `final`; used by `call_indirect`, imports and casts), the
    /// abstract reference types, unboxed `i31` values, struct and array
    /// objects with all their instructions, `ref.eq`, `ref.test`,
    /// `ref.cast`, `br_on_cast(_fail)`, `any.convert_extern` and
    /// `extern.convert_any`, in a per-store heap with a generational
    /// collector (see `Config::max_gc_heap_size`, `Store::gc`).
    Gc => "gc" [], "garbage collection (structs, arrays, i31, casts; a generational collector)", on,
        WasmFeatures::GC;
    /// Several memories per module (WebAssembly 3.0).
    MultiMemory => "multi-memory" [], "several memories per module", on, WasmFeatures::MULTI_MEMORY;
    /// 64-bit memory and table indices (WebAssembly 3.0).
    Memory64 => "memory64" [], "64-bit memories and tables", on, WasmFeatures::MEMORY64;
}

/// The features of `Config::new()`: floats and every feature on by default.
pub(crate) fn default_features() -> WasmFeatures {
    WasmFeature::ALL.iter().filter(|f| f.enabled_by_default()).fold(WasmFeatures::FLOATS, |all, f| all | f.flags())
}

/// The features of [`Config::wasm_mvp_only`](crate::Config::wasm_mvp_only):
/// WebAssembly 1.0 plus mutable globals.
pub(crate) fn mvp_features() -> WasmFeatures {
    WasmFeatures::FLOATS | WasmFeature::MutableGlobal.flags()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_defaults_match_summaries() {
        for &f in WasmFeature::ALL {
            assert_eq!(WasmFeature::from_name(f.name()), Some(f));
            let suffix = if f.enabled_by_default() { "(on)" } else { "(off)" };
            assert!(f.summary().ends_with(suffix), "{}", f.summary());
        }
        assert_eq!(WasmFeature::from_name("sign-extension-ops"), Some(WasmFeature::SignExtension));
        assert_eq!(WasmFeature::from_name("gc"), Some(WasmFeature::Gc));
        assert!(default_features().contains(WasmFeatures::GC));
        assert!(default_features().contains(WasmFeatures::MEMORY64 | WasmFeatures::FUNCTION_REFERENCES));
        assert!(default_features().contains(WasmFeatures::EXCEPTIONS | WasmFeatures::LEGACY_EXCEPTIONS));
        assert!(default_features().contains(WasmFeatures::THREADS | WasmFeatures::GC_TYPES));
    }
}
