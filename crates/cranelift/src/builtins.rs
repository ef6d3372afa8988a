//! Signatures of the runtime builtins, derived from the one list in
//! `kiln-environ`.

use cranelift_codegen::ir::{AbiParam, Signature, types};
use cranelift_codegen::isa::{CallConv, TargetIsa};
use kiln_environ::BuiltinFunctionIndex;

macro_rules! param {
    (vmctx) => {
        AbiParam::new(types::I64)
    };
    (i32) => {
        AbiParam::new(types::I32)
    };
    (i64) => {
        AbiParam::new(types::I64)
    };
    (ptr) => {
        AbiParam::new(types::I64)
    };
}

macro_rules! define_signatures {
    ($( $(#[$attr:meta])* $name:ident( $($pname:ident: $pty:ident),* ) $(-> $ret:ident)?; )*) => {
        /// The native signature of builtin `index` under `call_conv`.
        pub fn builtin_signature(index: BuiltinFunctionIndex, call_conv: CallConv) -> Signature {
            $(
                if index == BuiltinFunctionIndex::$name {
                    let mut sig = Signature::new(call_conv);
                    $( sig.params.push(param!($pty)); )*
                    $( sig.returns.push(param!($ret)); )?
                    return sig;
                }
            )*
            unreachable!("unknown builtin {index:?}")
        }
    };
}

kiln_environ::foreach_builtin_function!(define_signatures);

/// The calling convention compiled code uses for builtin `index`:
/// `tail` for the builtins that throw (see `BuiltinFunctionIndex::throws`),
/// `preserve_all` for the builtins that allow it on x86-64 (the runtime has
/// register-saving stubs for them there), the platform's default otherwise.
pub fn builtin_call_conv(isa: &dyn TargetIsa, index: BuiltinFunctionIndex) -> CallConv {
    if index.throws() {
        CallConv::Tail
    } else if index.preserves_all_registers() && isa.triple().architecture == target_lexicon::Architecture::X86_64 {
        CallConv::PreserveAll
    } else {
        isa.default_call_conv()
    }
}
