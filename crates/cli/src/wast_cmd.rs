//! `kiln wast`.

use crate::wasm_flags::WasmFlags;
use anyhow::{Result, bail};
use clap::Args;
use kiln_wast::WastContext;
use std::path::PathBuf;
use std::process::ExitCode;

/// `kiln wast FILE...`: runs each script in a fresh context, prints a line
/// per file and the failures, and ends with `N passed, M failed` counting
/// directives.
#[derive(Args)]
pub struct WastCommand {
    /// The .wast scripts.
    #[arg(required = true)]
    files: Vec<PathBuf>,

    #[command(flatten)]
    wasm: WasmFlags,
}

impl WastCommand {
    pub fn execute(self) -> Result<ExitCode> {
        let settings = self.wasm.parse()?;
        if let Some(name) = settings.run_only_option() {
            bail!("`-W {name}` does not apply to `kiln wast`");
        }
        let mut config = kiln::Config::new();
        settings.configure(&mut config)?;
        let (mut passed, mut failed) = (0usize, 0usize);
        for file in &self.files {
            let outcome = WastContext::new(&config).and_then(|mut cx| cx.run_file(file));
            match outcome {
                Ok(o) => {
                    println!("{}: {} passed, {} failed", file.display(), o.passed, o.failed());
                    for f in &o.failures {
                        println!("  {f}");
                    }
                    passed += o.passed;
                    failed += o.failed();
                }
                Err(e) => {
                    println!("{}: error: {e:#}", file.display());
                    failed += 1;
                }
            }
        }
        println!("{passed} passed, {failed} failed");
        Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
    }
}
