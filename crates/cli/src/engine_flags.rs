//! The flags `kiln run` and `kiln compile` share: `-W`, `-C`, the limits,
//! the cache and `--timings`, resolved into one engine configuration.

use crate::codegen_flags::CodegenFlags;
use crate::options::{CacheFlags, LimitFlags};
use crate::wasm_flags::{WasmFlags, WasmSettings};
use anyhow::Result;
use clap::Args;
use kiln::Config;

/// Everything that shapes the engine, both spellings.
#[derive(Args)]
pub struct EngineFlags {
    #[command(flatten)]
    pub wasm: WasmFlags,

    #[command(flatten)]
    pub limits: LimitFlags,

    #[command(flatten)]
    pub codegen: CodegenFlags,

    #[command(flatten)]
    pub cache: CacheFlags,

    /// After compiling, print to stderr how long each phase took (parse and
    /// validate, translate, Cranelift, link, write) and the ten slowest
    /// functions.
    #[arg(long, help_heading = "Compilation and cache")]
    pub timings: bool,
}

impl EngineFlags {
    /// Parses `-W` and `-C`, takes what they set into the limits and cache
    /// flags (so the rest of the CLI reads one value whichever spelling
    /// gave it), and builds the engine's configuration.
    ///
    /// # Errors
    ///
    /// A bad `-W` or `-C` option, or one given both ways with different values.
    pub fn resolve(&mut self) -> Result<(Config, WasmSettings)> {
        let wasm = self.wasm.parse()?;
        self.limits.merge_wasm(&wasm)?;
        let mut config = Config::new();
        wasm.configure(&mut config)?;
        self.limits.configure(&mut config);
        self.codegen.configure(&mut config, &mut self.cache)?;
        self.cache.configure(&mut config);
        Ok((config, wasm))
    }
}
