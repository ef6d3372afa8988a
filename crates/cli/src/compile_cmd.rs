//! `kiln compile`.

use crate::features::FeatureFlags;
use anyhow::Result;
use clap::Args;
use kiln::{Engine, Module};
use std::path::PathBuf;
use std::process::ExitCode;

/// `kiln compile FILE [-o OUT]`: compiles a module ahead of time into a
/// `.cwasm` artifact that `kiln run --allow-precompiled` (and
/// `Module::deserialize_file`) load without compiling. The artifact only
/// loads in a Kiln of the same version, on the same kind of CPU, with the
/// same `-W` settings. OUT is replaced by renaming a new file over it, so
/// a process running the old artifact is not disturbed.
#[derive(Args)]
pub struct CompileCommand {
    /// The module (.wasm or .wat).
    file: PathBuf,

    /// Where to write the artifact (default: FILE with the extension `.cwasm`).
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,

    #[command(flatten)]
    features: FeatureFlags,
}

impl CompileCommand {
    pub fn execute(self) -> Result<ExitCode> {
        let engine = Engine::new(&self.features.config()?)?;
        let module = Module::from_file(&engine, &self.file)?;
        let out = self.output.clone().unwrap_or_else(|| self.file.with_extension("cwasm"));
        let bytes = module.serialize()?;
        crate::load::write_replacing(&out, &bytes)?;
        Ok(ExitCode::SUCCESS)
    }
}
