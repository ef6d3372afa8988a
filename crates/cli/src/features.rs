//! `-W FEATURE[=y|n]` flags shared by the subcommands.

use anyhow::{Result, bail};
use clap::Args;
use kiln::Config;

/// WebAssembly feature switches.
#[derive(Args, Default)]
pub struct FeatureFlags {
    /// Enable or disable a WebAssembly feature: `-W simd=n`, `-W bulk-memory`,
    /// `-W mvp` (1.0 only). Repeatable; applied in order.
    #[arg(short = 'W', long = "wasm", value_name = "FEATURE[=y|n]")]
    features: Vec<String>,
}

impl FeatureFlags {
    /// The configuration these flags describe.
    pub fn config(&self) -> Result<Config> {
        let mut config = Config::new();
        for f in &self.features {
            let (name, on) = match f.split_once('=') {
                Some((n, v)) => (
                    n,
                    match v {
                        "y" | "yes" | "true" | "on" => true,
                        "n" | "no" | "false" | "off" => false,
                        other => bail!("`{other}` is not y or n in `-W {f}`"),
                    },
                ),
                None => (f.as_str(), true),
            };
            if name == "mvp" {
                if on {
                    config.wasm_mvp_only();
                }
            } else {
                config.wasm_feature(name, on)?;
            }
        }
        Ok(config)
    }
}
