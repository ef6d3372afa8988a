//! Reading a module from a file, and writing artifacts.

use crate::progress::CompileProgress;
use anyhow::{Context, Result, bail};
use kiln::{Engine, Module};
use std::io::Write;
use std::path::Path;

/// Loads `path` for `engine`: WebAssembly (binary or text) is compiled
/// (through the engine's cache, if any), reporting to `progress`. A
/// precompiled artifact is native code that runs as is, so it is loaded
/// only with `allow_precompiled` (the `--allow-precompiled` flag),
/// whatever the file is called.
///
/// # Errors
///
/// The file cannot be read, does not compile, is an artifact without
/// `allow_precompiled`, or is an artifact this Kiln cannot load.
pub fn load_module(
    engine: &Engine,
    path: &Path,
    allow_precompiled: bool,
    progress: &CompileProgress,
) -> Result<Module> {
    let bytes = std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
    if !Module::is_precompiled(&bytes) {
        return compile(engine, path, &bytes, progress);
    }
    if !allow_precompiled {
        bail!(
            "{} is a precompiled Kiln artifact (native code made by `kiln compile`), not WebAssembly. Kiln runs \
             precompiled code only when told to, because it runs as is: a tampered artifact can do anything this \
             process can. If you trust whoever produced the file as much as Kiln itself, pass --allow-precompiled.",
            path.display()
        );
    }
    drop(bytes);
    // SAFETY: the user vouched for the file with `--allow-precompiled`
    // (`deserialize_file` still refuses damaged or foreign artifacts). Its
    // code is mapped from the file, which must not change while the
    // program runs: `kiln compile` replaces outputs by renaming a new file
    // over them, which leaves this mapping intact.
    unsafe { Module::deserialize_file(engine, path) }
}

/// Compiles `bytes`, the WebAssembly (binary or text) read from `path`,
/// reporting to `progress` and removing its bar when done.
///
/// # Errors
///
/// The module does not compile (the message names `path`).
pub fn compile(engine: &Engine, path: &Path, bytes: &[u8], progress: &CompileProgress) -> Result<Module> {
    let module = Module::new_with_observer(engine, bytes, progress);
    progress.finish();
    module.with_context(|| format!("failed to compile {}", path.display()))
}

/// Writes `bytes` to `out` through a temporary file in the same directory
/// renamed over it, so a process that has the old file mapped (a running
/// `kiln run --allow-precompiled`) keeps its own copy intact, and `out`
/// never holds a partial artifact.
///
/// # Errors
///
/// The temporary file cannot be created or written, or the rename fails.
pub fn write_replacing(out: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::options().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, out)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("failed to write {}", out.display()));
    }
    Ok(())
}
