//! The engine's code generator: Cranelift, with the baseline compiler in
//! front of it when [`Config::baseline_compilation`](crate::Config::baseline_compilation)
//! asks for it.

use kiln_baseline::{CpuFeatures, RegisterLocals};
use kiln_cranelift::CraneliftCompiler;
use kiln_environ::{
    CompiledFunction, Compiler, FuncIndex, FuncType, FunctionBodyInput, FunctionCompileTimes, ModuleInfo, Tunables,
    VMOffsets, WasmResult,
};

/// Which functions the baseline compiler compiles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BaselineCompilation {
    /// None: every function is compiled by Cranelift (the default).
    #[default]
    Off,
    /// With [`CompileStrategy::Lazy`](crate::CompileStrategy::Lazy): a
    /// function's first call compiles it with the baseline compiler (if
    /// it can), and the background compiler replaces that code with
    /// Cranelift's, first the functions that run baseline code. The
    /// caches hold only Cranelift's code. With eager compilation this is
    /// [`BaselineCompilation::Off`].
    FirstCalls,
    /// Every function it can compile, and its code stays: the fastest
    /// compilation and the slowest code. Functions it declines (those
    /// using SIMD, GC, exceptions, tables, bulk memory and other
    /// operators it does not handle yet, or settings such as fuel and
    /// polled epochs whose instrumentation it does not emit) are compiled
    /// by Cranelift. Meant for testing the baseline compiler, and for
    /// short runs where compile time is everything.
    Always,
}

/// What a first call's baseline code needs beyond its body
/// ([`EngineCompiler::compile_first_call`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct FirstCall {
    /// Where the code counts its calls down (see `kiln_baseline::Options`).
    pub(crate) entry_counter: u64,
    /// The caller vouches that the body was validated (the baseline
    /// compiler does not validate; otherwise `compile_first_call` does
    /// first).
    pub(crate) validated: bool,
    /// The locals to keep in registers, if chosen while validating
    /// (`None`: the baseline compiler reads the body to choose them).
    pub(crate) register_locals: Option<RegisterLocals>,
}

/// Cranelift, and the baseline compiler when enabled.
pub(crate) struct EngineCompiler {
    cranelift: CraneliftCompiler,
    /// For [`BaselineCompilation::Always`]: every compilation tries it.
    baseline: Option<CpuFeatures>,
    /// For [`BaselineCompilation::FirstCalls`]: first calls try it.
    first_calls: Option<CpuFeatures>,
}

impl EngineCompiler {
    /// Cranelift alone, or with the baseline compiler in front of it.
    pub(crate) fn new(cranelift: CraneliftCompiler, baseline: BaselineCompilation) -> EngineCompiler {
        let x86_64 = cfg!(target_arch = "x86_64");
        let (always, first_calls) = match baseline {
            BaselineCompilation::Always if x86_64 => (Some(CpuFeatures::detect()), None),
            BaselineCompilation::FirstCalls if x86_64 => (None, Some(CpuFeatures::detect())),
            _ => (None, None),
        };
        EngineCompiler { cranelift, baseline: always, first_calls }
    }

    /// Baseline code for a first call of `func`, when first calls use
    /// the baseline compiler and it takes the function; `None` otherwise
    /// (the caller compiles it with Cranelift), as `first` says.
    ///
    /// # Errors
    ///
    /// The body is invalid.
    pub(crate) fn compile_first_call(
        &self,
        module: &ModuleInfo,
        offsets: &VMOffsets,
        func: FuncIndex,
        input: &FunctionBodyInput<'_>,
        first: FirstCall,
    ) -> WasmResult<Option<CompiledFunction>> {
        match self.first_calls {
            // Its code is replaced: loops check for code to move to, and
            // calls are counted to find what to replace first.
            Some(cpu) => {
                let options = kiln_baseline::Options {
                    osr: true,
                    entry_counter: Some(first.entry_counter),
                    register_locals: first.register_locals,
                };
                if !first.validated {
                    kiln_environ::validate_function_body(input, &mut Default::default())?;
                }
                self.compile_baseline(cpu, options, module, offsets, func, &input.body)
            }
            None => Ok(None),
        }
    }

    /// Whether first calls use the baseline compiler
    /// ([`BaselineCompilation::FirstCalls`] on a host it supports).
    pub(crate) fn baseline_first_calls(&self) -> bool {
        self.first_calls.is_some()
    }

    /// The settings code is generated for.
    pub(crate) fn tunables(&self) -> &Tunables {
        self.cranelift.tunables()
    }

    /// The on-stack-replacement entry of `func`, for all of its loops,
    /// compiled by Cranelift (see
    /// `kiln_cranelift::CraneliftCompiler::compile_osr_entry`).
    ///
    /// # Errors
    ///
    /// No loop can be entered so, or code generation failed.
    pub(crate) fn compile_osr_entry(
        &self,
        module: &ModuleInfo,
        offsets: &VMOffsets,
        func: FuncIndex,
        input: FunctionBodyInput<'_>,
    ) -> WasmResult<CompiledFunction> {
        self.cranelift.compile_osr_entry(module, offsets, func, input)
    }

    /// Compiles `func`'s body `body`, which must be valid (the baseline
    /// compiler does not validate), with the baseline compiler if it
    /// takes it.
    fn compile_baseline(
        &self,
        cpu: CpuFeatures,
        options: kiln_baseline::Options,
        module: &ModuleInfo,
        offsets: &VMOffsets,
        func: FuncIndex,
        body: &wasmparser::FunctionBody<'_>,
    ) -> WasmResult<Option<CompiledFunction>> {
        let r = kiln_baseline::compile_function(self.tunables(), cpu, options, module, offsets, func, body);
        if crate::vm::lazy_code::debug_trace() {
            // Defined-function indices, as the rest of the trace.
            let d = module.defined_func_index(func).map_or(u32::MAX, |d| d.as_u32());
            let at = crate::vm::lazy_code::debug_clock();
            match &r {
                Ok(f) => eprintln!("kiln tiering: {at:.1} ms: baseline code for {d} ({} bytes)", f.code.len()),
                Err(e) => eprintln!("kiln tiering: {at:.1} ms: no baseline code for {d}: {e}"),
            }
        }
        Ok(r.ok())
    }
}

impl Compiler for EngineCompiler {
    fn compile_function(
        &self,
        module: &ModuleInfo,
        offsets: &VMOffsets,
        func: FuncIndex,
        input: FunctionBodyInput<'_>,
    ) -> WasmResult<CompiledFunction> {
        self.compile_function_timed(module, offsets, func, input).map(|(f, _)| f)
    }

    fn compile_function_timed(
        &self,
        module: &ModuleInfo,
        offsets: &VMOffsets,
        func: FuncIndex,
        input: FunctionBodyInput<'_>,
    ) -> WasmResult<(CompiledFunction, FunctionCompileTimes)> {
        if let Some(cpu) = self.baseline {
            let start = std::time::Instant::now();
            kiln_environ::validate_function_body(&input, &mut Default::default())?;
            let options = kiln_baseline::Options::default();
            if let Some(f) = self.compile_baseline(cpu, options, module, offsets, func, &input.body)? {
                return Ok((
                    f,
                    FunctionCompileTimes { translate: std::time::Duration::ZERO, codegen: start.elapsed() },
                ));
            }
        }
        self.cranelift.compile_function_timed(module, offsets, func, input)
    }

    fn compile_array_to_wasm_trampoline(&self, ty: &FuncType) -> WasmResult<CompiledFunction> {
        self.cranelift.compile_array_to_wasm_trampoline(ty)
    }

    fn compile_wasm_to_array_trampoline(&self, ty: &FuncType) -> WasmResult<CompiledFunction> {
        self.cranelift.compile_wasm_to_array_trampoline(ty)
    }

    fn triple(&self) -> String {
        self.cranelift.triple()
    }

    fn fingerprint(&self) -> String {
        // Baseline code is other code: artifacts and cache entries of one
        // setting are never taken for the other's.
        match self.baseline {
            Some(_) => format!("{};{}", self.cranelift.fingerprint(), kiln_baseline::fingerprint()),
            None => self.cranelift.fingerprint(),
        }
    }
}
