//! Naming JIT code for external profilers.
//!
//! With [`ProfilingStrategy::PerfMap`], every module's functions and entry
//! trampolines are appended to `/tmp/perf-<pid>.map` as they are loaded,
//! one `START SIZE NAME` line each (hex start and size), the format
//! `perf report` reads to symbolize code outside any ELF file.

use kiln_environ::{CompiledModuleInfo, DefinedFuncIndex, ModuleInfo};
use std::io::Write;
use std::sync::Mutex;

/// Which profiler, if any, Kiln describes its generated code to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProfilingStrategy {
    /// None (the default).
    #[default]
    None,
    /// `perf`'s map files: `/tmp/perf-<pid>.map`.
    PerfMap,
}

/// Appends the functions of a module whose text starts at `text_start` to
/// the perf map. Failures to write are reported once on stderr and
/// otherwise ignored: profiling is best-effort and never fails a load.
pub(crate) fn register_perf_map(info: &CompiledModuleInfo, text_start: usize) {
    let module = &info.module;
    let mut out = String::new();
    for (i, loc) in info.funcs.iter().enumerate() {
        // A lazily compiled module's functions without code yet are
        // appended when they get some (`register_perf_map_function`).
        if loc.length > 0 {
            out.push_str(&function_line(
                module,
                kiln_environ::DefinedFuncIndex::from_u32(i as u32),
                text_start + loc.start as usize,
                loc.length,
            ));
        }
    }
    for (ty, loc) in &info.array_to_wasm_trampolines {
        out.push_str(&format!(
            "{:x} {:x} kiln-entry-trampoline[type {ty}]\n",
            text_start + loc.start as usize,
            loc.length
        ));
    }
    append(&out);
}

/// Appends one function compiled after its module was loaded, at `start`,
/// `len` bytes long; `kind`, if any, follows its name in brackets (a
/// lazily compiled function's `baseline` code, or its on-stack-replacement
/// `osr` entry), so a profile tells the pieces of one function apart.
pub(crate) fn register_perf_map_function(
    module: &ModuleInfo,
    index: DefinedFuncIndex,
    start: usize,
    len: u32,
    kind: Option<&str>,
) {
    let mut line = function_line(module, index, start, len);
    if let Some(kind) = kind {
        line.pop();
        line.push_str(&format!(" [{kind}]\n"));
    }
    append(&line);
}

fn function_line(module: &ModuleInfo, defined: DefinedFuncIndex, start: usize, len: u32) -> String {
    let index = module.func_index(defined);
    match module.func_name(index) {
        Some(n) => format!("{start:x} {len:x} wasm[{index}]::{n}\n"),
        None => format!("{start:x} {len:x} wasm[{index}]\n"),
    }
}

/// Appends `lines` to the perf map.
fn append(lines: &str) {
    static FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);
    let mut file = FILE.lock().unwrap_or_else(|e| e.into_inner());
    if file.is_none() {
        let path = format!("/tmp/perf-{}.map", std::process::id());
        match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
            Ok(f) => *file = Some(f),
            Err(e) => {
                eprintln!("kiln: cannot open {path} for the perf map: {e}");
                return;
            }
        }
    }
    let Some(f) = file.as_mut() else { return };
    let _ = f.write_all(lines.as_bytes());
}
