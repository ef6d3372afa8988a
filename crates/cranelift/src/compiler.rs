//! `CraneliftCompiler`: configuration of the Cranelift ISA and the
//! per-function compile driver.

use crate::trap_codes;
use cranelift_codegen::binemit::Reloc;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{self, ExternalName, UserExternalName};
use cranelift_codegen::isa::{OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{Context, Final, FinalizedRelocTarget, MachBufferFinalized};
use cranelift_frontend::FunctionBuilderContext;
use kiln_environ::*;
use std::cell::RefCell;
use std::time::Instant;

/// Options for [`CraneliftCompiler::new`].
#[derive(Clone, Debug)]
pub struct CompilerOptions {
    /// Settings that change the generated code.
    pub tunables: Tunables,
    /// Run Cranelift's IR verifier on every function (slow; for tests).
    pub verifier: bool,
    /// Optimization level: "none", "speed" or "speed_and_size".
    pub opt_level: &'static str,
}

impl Default for CompilerOptions {
    fn default() -> Self {
        CompilerOptions { tunables: Tunables::default(), verifier: cfg!(debug_assertions), opt_level: "speed" }
    }
}

/// Kiln's Cranelift-based compiler for the host machine.
pub struct CraneliftCompiler {
    isa: OwnedTargetIsa,
    tunables: Tunables,
}

thread_local! {
    static CONTEXTS: RefCell<(Context, FunctionBuilderContext)> =
        RefCell::new((Context::new(), FunctionBuilderContext::new()));
}

impl CraneliftCompiler {
    /// Creates a compiler for the host, enabling every ISA extension the
    /// host CPU has.
    ///
    /// # Errors
    ///
    /// Fails if the host architecture is not supported by Cranelift, or if
    /// the host lacks the required baseline (SSE4.1 on x86-64).
    pub fn new(options: CompilerOptions) -> WasmResult<CraneliftCompiler> {
        let mut flags = settings::builder();
        let set = |flags: &mut settings::Builder, k: &str, v: &str| {
            flags.set(k, v).map_err(|e| WasmError::Codegen(format!("setting {k}={v}: {e}")))
        };
        set(&mut flags, "opt_level", options.opt_level)?;
        set(&mut flags, "enable_verifier", if options.verifier { "true" } else { "false" })?;
        set(&mut flags, "preserve_frame_pointers", "true")?;
        set(&mut flags, "enable_probestack", "false")?;
        set(&mut flags, "enable_multi_ret_implicit_sret", "true")?;
        set(&mut flags, "enable_heap_access_spectre_mitigation", "false")?;
        set(&mut flags, "enable_table_access_spectre_mitigation", "false")?;
        set(&mut flags, "unwind_info", "false")?;
        // With fuel, the fuel counter lives in the pinned register for the
        // whole activation; with only (polled) epoch interruption, the
        // store context does (see `translate/interrupt/`).
        let t = &options.tunables;
        let pinned = t.consume_fuel || (t.epoch_interruption && !t.epoch_signals);
        set(&mut flags, "enable_pinned_reg", if pinned { "true" } else { "false" })?;
        set(
            &mut flags,
            "enable_nan_canonicalization",
            if options.tunables.nan_canonicalization { "true" } else { "false" },
        )?;
        let isa_builder =
            cranelift_native::builder().map_err(|e| WasmError::Unsupported(format!("host architecture: {e}")))?;
        let isa = isa_builder
            .finish(settings::Flags::new(flags))
            .map_err(|e| WasmError::Codegen(format!("building the target ISA: {e}")))?;
        if isa.triple().architecture == target_lexicon::Architecture::X86_64
            && !isa.isa_flags().iter().any(|f| f.name == "has_sse41" && f.as_bool() == Some(true))
        {
            return Err(WasmError::Unsupported("x86-64 hosts without SSE4.1".into()));
        }
        Ok(CraneliftCompiler { isa, tunables: options.tunables })
    }

    /// The target ISA.
    pub fn isa(&self) -> &dyn TargetIsa {
        &*self.isa
    }

    /// The tunables this compiler generates code for.
    pub fn tunables(&self) -> &Tunables {
        &self.tunables
    }

    /// Runs Cranelift on `func` and converts the result.
    /// `own_index` is the wasm function's index (None for trampolines):
    /// its self-calls may be inlined (see `inline.rs`).
    fn finish(
        &self,
        func: ir::Function,
        own_index: Option<u32>,
        context: &mut Context,
    ) -> WasmResult<CompiledFunction> {
        context.clear();
        context.func = func;
        let dump = std::env::var_os("KILN_DUMP_CLIF");
        if let Some(dir) = &dump {
            dump_clif(dir, &context.func, "input");
        }
        if let Some(index) = own_index {
            crate::inline::inline_self_calls(context, index).map_err(WasmError::Codegen)?;
        }
        let mut ctrl = ControlPlane::default();
        context.set_disasm(dump.is_some());
        context.compile(&*self.isa, &mut ctrl).map_err(|e| WasmError::Codegen(format!("{:?}", e.inner)))?;
        if let Some(dir) = &dump {
            dump_clif(dir, &context.func, "optimized");
        }
        let compiled = context.compiled_code().expect("just compiled");
        if let (Some(dir), Some(vcode)) = (&dump, &compiled.vcode) {
            dump_text(dir, &context.func, "asm", vcode);
        }
        let buffer = &compiled.buffer;
        if let Some(dir) = &dump {
            dump_bytes(dir, &context.func, buffer.data());
        }
        let mut relocations = Vec::new();
        for r in buffer.relocs() {
            let kind = match r.kind {
                Reloc::X86CallPCRel4 => RelocKind::X86CallPCRel4,
                Reloc::Arm64Call => RelocKind::Arm64Call,
                other => return Err(WasmError::Codegen(format!("unexpected relocation {other:?}"))),
            };
            let target = match &r.target {
                FinalizedRelocTarget::ExternalName(ExternalName::User(name)) => {
                    let UserExternalName { namespace, index } = context.func.params.user_named_funcs()[*name];
                    if namespace != 0 {
                        return Err(WasmError::Codegen(format!("relocation in namespace {namespace}")));
                    }
                    index
                }
                other => return Err(WasmError::Codegen(format!("unexpected relocation target {other:?}"))),
            };
            relocations.push(Relocation {
                offset: r.offset,
                kind,
                target: FuncIndex::from_u32(target),
                addend: r.addend,
            });
        }
        let mut traps = Vec::new();
        for t in buffer.traps() {
            let code = trap_codes::from_clif(t.code)
                .ok_or_else(|| WasmError::Codegen(format!("unknown trap code {:?}", t.code)))?;
            traps.push((t.offset, code));
        }
        let address_map = address_map(buffer, &traps);
        let exn_sites = exn_sites(buffer)?;
        let stack_maps = stack_maps(buffer)?;
        Ok(CompiledFunction {
            code: buffer.data().to_vec(),
            alignment: self.isa.function_alignment().preferred.max(16),
            relocations,
            traps,
            address_map,
            exn_sites,
            stack_maps,
        })
    }

    fn with_contexts<R>(f: impl FnOnce(&mut Context, &mut FunctionBuilderContext) -> R) -> R {
        CONTEXTS.with(|c| {
            let mut c = c.borrow_mut();
            let (ctx, fctx) = &mut *c;
            f(ctx, fctx)
        })
    }
}

/// The calls of a compiled function made with exception handlers
/// (`try_call`), as the runtime's throw reads them. The translator gives
/// every such call the caller's VMContext as its first dynamic context
/// (where the handlers' tags are found) and no other; Cranelift spills it
/// to the stack, since every register is clobbered across a call to a
/// `tail` callee on its exceptional edge.
fn exn_sites(buffer: &MachBufferFinalized<Final>) -> WasmResult<Vec<ExnSite>> {
    use cranelift_codegen::{ExceptionContextLoc, FinalizedMachExceptionHandler as H};
    let mut sites = Vec::new();
    for site in buffer.call_sites() {
        let Some((first, rest)) = site.exception_handlers.split_first() else { continue };
        let H::Context(ExceptionContextLoc::SPOffset(vmctx_offset)) = first else {
            return Err(WasmError::Codegen(format!("exception handlers without a spilled context: {first:?}")));
        };
        let frame_offset = site
            .frame_offset
            .ok_or_else(|| WasmError::Codegen("a call with exception handlers has no frame offset".into()))?;
        let mut handlers = Vec::with_capacity(rest.len());
        for h in rest {
            handlers.push(match h {
                H::Tag(tag, offset) => ExnHandler { tag: tag.as_u32(), offset: *offset },
                H::Default(offset) => ExnHandler { tag: ExnHandler::CATCH_ALL, offset: *offset },
                H::Context(_) => return Err(WasmError::Codegen("a second exception context".into())),
            });
        }
        sites.push(ExnSite { ret: site.ret_addr, frame_offset, vmctx_offset: *vmctx_offset, handlers });
    }
    Ok(sites)
}

/// Where the GC references the translator declared live at each call
/// (Cranelift's user stack maps): the call's return offset, the size of
/// the caller's active frame at the call (its SP is its FP minus that),
/// and the SP-relative offsets of the slots, which hold the 64-bit
/// references.
fn stack_maps(buffer: &MachBufferFinalized<Final>) -> WasmResult<Vec<StackMapSite>> {
    let mut sites = Vec::with_capacity(buffer.user_stack_maps().len());
    for (ret, frame_offset, map) in buffer.user_stack_maps() {
        let mut slots = Vec::new();
        for (ty, offset) in map.entries() {
            if ty != ir::types::I64 {
                return Err(WasmError::Codegen(format!("a stack map entry of type {ty}")));
            }
            slots.push(offset);
        }
        slots.sort_unstable();
        slots.dedup();
        sites.push(StackMapSite { ret: *ret, frame_offset: *frame_offset, slots });
    }
    Ok(sites)
}

/// Debugging aid: with `KILN_DUMP_CLIF=DIR`, every function's IR as
/// translated and as optimized goes to `DIR/<name>.<stage>.clif`, and its
/// machine code (register-allocated, before encoding) to `DIR/<name>.asm.clif`
/// and, encoded, to `DIR/<name>.bin` (offsets as in profiles; disassemble
/// with `objdump -D -b binary -m i386:x86-64`).
fn dump_clif(dir: &std::ffi::OsStr, func: &ir::Function, stage: &str) {
    dump_text(dir, func, stage, &func.display().to_string());
}

fn dump_bytes(dir: &std::ffi::OsStr, func: &ir::Function, code: &[u8]) {
    let path = std::path::Path::new(dir).join(format!("{}.bin", func.name));
    if let Err(e) = std::fs::write(&path, code) {
        eprintln!("kiln: KILN_DUMP_CLIF: {}: {e}", path.display());
    }
}

fn dump_text(dir: &std::ffi::OsStr, func: &ir::Function, stage: &str, text: &str) {
    let path = std::path::Path::new(dir).join(format!("{}.{stage}.clif", func.name));
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!("kiln: KILN_DUMP_CLIF: {}: {e}", path.display());
    }
}

impl CraneliftCompiler {
    /// Compiles the on-stack-replacement entry of `func`, which enters
    /// any of its loops where baseline code checks (see
    /// `translate::translate_osr_entry`).
    ///
    /// # Errors
    ///
    /// [`WasmError::Unsupported`] when no loop can be entered from a
    /// baseline frame; validation or code generation errors.
    pub fn compile_osr_entry(
        &self,
        module: &ModuleInfo,
        offsets: &VMOffsets,
        func: FuncIndex,
        input: FunctionBodyInput<'_>,
    ) -> WasmResult<CompiledFunction> {
        Self::with_contexts(|ctx, fctx| {
            let clif =
                crate::translate::translate_osr_entry(&*self.isa, &self.tunables, module, offsets, func, input, fctx);
            match clif {
                // Not `Some(func)`: its calls to itself are not calls to
                // this entry, so they must not be spliced with its body.
                Ok(clif) => self.finish(clif, None, ctx),
                Err(e) => {
                    *fctx = FunctionBuilderContext::new();
                    Err(e)
                }
            }
        })
    }
}

impl Compiler for CraneliftCompiler {
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
        Self::with_contexts(|ctx, fctx| {
            let start = Instant::now();
            let clif =
                crate::translate::translate_function(&*self.isa, &self.tunables, module, offsets, func, input, fctx);
            let translated = Instant::now();
            match clif {
                Ok(clif) => {
                    let f = self.finish(clif, Some(func.as_u32()), ctx)?;
                    Ok((f, FunctionCompileTimes { translate: translated - start, codegen: translated.elapsed() }))
                }
                Err(e) => {
                    // A body that failed validation leaves the builder
                    // context mid-function; start the next one afresh.
                    *fctx = FunctionBuilderContext::new();
                    Err(e)
                }
            }
        })
    }

    fn compile_array_to_wasm_trampoline(&self, ty: &FuncType) -> WasmResult<CompiledFunction> {
        Self::with_contexts(|ctx, fctx| {
            let clif = crate::trampolines::array_to_wasm(&*self.isa, &self.tunables, ty, fctx);
            self.finish(clif, None, ctx)
        })
    }

    fn compile_wasm_to_array_trampoline(&self, ty: &FuncType) -> WasmResult<CompiledFunction> {
        Self::with_contexts(|ctx, fctx| {
            let clif = crate::trampolines::wasm_to_array(&*self.isa, &self.tunables, ty, fctx);
            self.finish(clif, None, ctx)
        })
    }

    fn triple(&self) -> String {
        self.isa.triple().to_string()
    }

    fn fingerprint(&self) -> String {
        // The source hash changes with any edit to the translator or the
        // environment (VMContext layout, builtin list), so artifacts of
        // another build are never mistaken for this one's.
        let mut s = format!(
            "cranelift-0.135.8;sources-{};{};{}",
            env!("KILN_CODEGEN_SOURCE_HASH"),
            self.isa.triple(),
            self.isa.flags()
        );
        for f in self.isa.isa_flags() {
            s.push_str(&format!(";{f}"));
        }
        s
    }
}

/// The function's `(code offset, wasm offset)` map, kept only where the
/// runtime ever asks: at trapping instructions (a trap's own location) and
/// at the last byte of each call (a frame's return address looks up the
/// call before it). Lookups take the entry at or below an address, so one
/// entry per such point answers exactly what the full per-instruction map
/// would; keeping only these makes the map of a large module about half
/// as big, and with it the artifact that every warm start checksums.
fn address_map(buffer: &MachBufferFinalized<Final>, traps: &[(u32, TrapCode)]) -> Vec<(u32, u32)> {
    let mut full: Vec<(u32, u32)> = Vec::new();
    for loc in buffer.get_srclocs_sorted() {
        if !loc.loc.is_default() && full.last().is_none_or(|(_, w)| *w != loc.loc.bits()) {
            full.push((loc.start, loc.loc.bits()));
        }
    }
    let mut points: Vec<u32> = traps.iter().map(|(o, _)| *o).collect();
    points.extend(buffer.call_sites().filter_map(|c| c.ret_addr.checked_sub(1)));
    points.sort_unstable();
    points.dedup();
    let mut map: Vec<(u32, u32)> = Vec::with_capacity(points.len());
    for p in points {
        let i = full.partition_point(|(o, _)| *o <= p);
        if let Some(&(_, w)) = i.checked_sub(1).and_then(|i| full.get(i))
            && map.last().is_none_or(|(_, last)| *last != w)
        {
            map.push((p, w));
        }
    }
    map
}
