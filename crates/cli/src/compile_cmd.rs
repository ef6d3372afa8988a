//! `kiln compile`.

use crate::engine_flags::EngineFlags;
use crate::progress::CompileProgress;
use anyhow::{Context, Result, bail};
use clap::Args;
use kiln::Engine;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// `kiln compile FILE [-o OUT]`: compiles a module ahead of time into a
/// `.cwasm` artifact that `kiln run --allow-precompiled` (and
/// `Module::deserialize_file`) load without compiling. The artifact only
/// loads in a Kiln of the same version, on the same kind of CPU, with the
/// same code-generation settings (`-W` features, and whether fuel or a
/// timeout is on: compile with the `--fuel`/`--timeout` you will run with).
/// OUT is replaced by renaming a new file over it, so a process running the
/// old artifact is not disturbed. Compiling goes through the compilation
/// cache, as `kiln run` does.
#[derive(Args)]
pub struct CompileCommand {
    /// The module (.wasm or .wat).
    file: PathBuf,

    /// Where to write the artifact (default: FILE with the extension `.cwasm`).
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,

    #[command(flatten)]
    engine: EngineFlags,
}

impl CompileCommand {
    pub fn execute(mut self) -> Result<ExitCode> {
        let (config, _) = self.engine.resolve()?;
        let engine = Engine::new(&config)?;
        let progress = CompileProgress::new(&self.file, self.engine.timings);
        let bytes = std::fs::read(&self.file).with_context(|| format!("failed to read {}", self.file.display()))?;
        if kiln::Module::is_precompiled(&bytes) {
            bail!("{} is already a precompiled artifact; `kiln compile` takes WebAssembly", self.file.display());
        }
        let module = crate::load::compile(&engine, &self.file, &bytes, &progress)?;
        drop(bytes);
        let out = self.output.clone().unwrap_or_else(|| self.file.with_extension("cwasm"));
        let write_start = Instant::now();
        let bytes = module.serialize()?;
        crate::load::write_replacing(&out, &bytes)?;
        let write = write_start.elapsed();
        // The cache stores a newly compiled module in the background; make
        // sure it is on disk before the process ends.
        if let Some(cache) = engine.cache() {
            cache.flush();
        }
        if let Some(t) = progress.timings() {
            eprint!("{}", crate::timings_report::format(t, Some(write), progress.elapsed()));
        }
        Ok(ExitCode::SUCCESS)
    }
}
