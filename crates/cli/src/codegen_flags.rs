//! `-C KEY[=VAL]`: compilation options, Wasmtime's spelling (only those
//! Kiln has: the cache, parallel compilation, Cranelift's verifier).

use crate::opt_group::{self, OptionHelp};
use crate::options::CacheFlags;
use anyhow::Result;
use clap::Args;
use kiln::{CompileStrategy, Config};
use std::path::PathBuf;

/// The `-C` arguments.
#[derive(Args, Clone, Default)]
pub struct CodegenFlags {
    /// Compilation options, Wasmtime's spelling: `-C cache=n`,
    /// `-C cache-config=FILE`, `-C parallel-compilation=n`, and Kiln's
    /// `-C lazy=y|n`, `-C tiering=y|n` and `-C baseline=y|n`. Comma-separated,
    /// repeatable; `-C help` lists them.
    #[arg(short = 'C', long = "codegen", value_name = "KEY[=VAL][,..]", value_parser = codegen_spec, help_heading = "Compilation and cache")]
    codegen_specs: Vec<String>,
}

const OPTIONS: &[OptionHelp] = &[
    OptionHelp {
        key: "cache",
        value: "[=y|n]",
        help: "use the compilation cache (default y); `cache=n` is --no-cache",
    },
    OptionHelp {
        key: "cache-config",
        value: "=FILE",
        help: "Wasmtime cache configuration (TOML): its [cache] directory and files-total-size-soft-limit",
    },
    OptionHelp {
        key: "lazy",
        value: "[=y|n]",
        help: "compile each function at its first call, and ahead of it on spare cores (default y for `run`, n elsewhere)",
    },
    OptionHelp {
        key: "background-compilation",
        value: "[=y|n]",
        help: "with lazy compilation, compile functions not called yet on spare cores (default y)",
    },
    OptionHelp {
        key: "tiering",
        value: "[=y|n]",
        help: "with lazy compilation, first calls use the baseline compiler and spare cores replace its code with Cranelift's (default y for `run`, n elsewhere)",
    },
    OptionHelp {
        key: "baseline",
        value: "[=y|n]",
        help: "compile every function the baseline compiler handles with it, for good: code ready much sooner, running slower (default n)",
    },
    OptionHelp { key: "parallel-compilation", value: "[=y|n]", help: "compile functions on all cores (default y)" },
    OptionHelp {
        key: "cranelift-debug-verifier",
        value: "[=y|n]",
        help: "check Cranelift's IR of every function (slow)",
    },
];

impl CodegenFlags {
    /// What `-C lazy` says, if it was given (the last one wins).
    ///
    /// # Errors
    ///
    /// A bad value.
    pub fn lazy(&self) -> Result<Option<bool>> {
        let mut lazy = None;
        for item in opt_group::items('C', &self.codegen_specs) {
            if item.key == "lazy" {
                lazy = Some(item.bool()?);
            }
        }
        Ok(lazy)
    }

    /// What `-C tiering` says, if it was given (the last one wins).
    ///
    /// # Errors
    ///
    /// A bad value.
    pub fn tiering(&self) -> Result<Option<bool>> {
        let mut tiering = None;
        for item in opt_group::items('C', &self.codegen_specs) {
            if item.key == "tiering" {
                tiering = Some(item.bool()?);
            }
        }
        Ok(tiering)
    }

    /// Applies the options to `config` and `cache`.
    ///
    /// # Errors
    ///
    /// An unknown key, a bad value, or a cache configuration file that
    /// cannot be read or says something Kiln cannot do.
    pub fn configure(&self, config: &mut Config, cache: &mut CacheFlags) -> Result<()> {
        for item in opt_group::items('C', &self.codegen_specs) {
            match item.key {
                "cache" => cache.set_enabled(item.bool()?),
                "cache-config" => {
                    let path = PathBuf::from(item.value()?);
                    let file = crate::cache_config::read(&path)?;
                    cache.merge_config(file.directory, file.max_bytes)?;
                }
                "lazy" => {
                    let strategy = if item.bool()? { CompileStrategy::Lazy } else { CompileStrategy::Eager };
                    config.compile_strategy(strategy);
                }
                "background-compilation" => {
                    config.background_compilation(item.bool()?);
                }
                "tiering" => {
                    let which = if item.bool()? {
                        kiln::BaselineCompilation::FirstCalls
                    } else {
                        kiln::BaselineCompilation::Off
                    };
                    config.baseline_compilation(which);
                }
                "baseline" => {
                    let which =
                        if item.bool()? { kiln::BaselineCompilation::Always } else { kiln::BaselineCompilation::Off };
                    config.baseline_compilation(which);
                }
                "parallel-compilation" => {
                    config.parallel_compilation(item.bool()?);
                }
                "cranelift-debug-verifier" => {
                    config.cranelift_debug_verifier(item.bool()?);
                }
                _ => return Err(item.unknown("-C option")),
            }
        }
        Ok(())
    }
}

/// `-C`'s value parser: the argument, or `help`.
fn codegen_spec(arg: &str) -> Result<String> {
    opt_group::spec_or_help(arg, || opt_group::help_text('C', "codegen", &[("Compilation", OPTIONS)]))
}
