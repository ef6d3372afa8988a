//! `-W KEY[=VAL]`: WebAssembly features (`-W memory64`, `-W simd=n`) and
//! how wasm runs (`-W fuel=N`, `-W timeout=D`, ...), one parser for both,
//! as in Wasmtime.

use crate::opt_group::{self, Item, OptionHelp};
use crate::options::{parse_count, parse_duration, parse_size};
use anyhow::{Result, bail};
use clap::Args;
use kiln::{Config, WasmFeature};
use std::time::Duration;

/// The `-W` arguments.
#[derive(Args, Clone, Default)]
pub struct WasmFlags {
    /// WebAssembly features and execution options, Wasmtime's spelling:
    /// `-W simd=n`, `-W memory64`, `-W fuel=N`, `-W timeout=2s`,
    /// `-W max-memory-size=N`, ... Comma-separated, repeatable, applied in
    /// order; `-W help` lists them all.
    #[arg(short = 'W', long = "wasm", value_name = "KEY[=VAL][,..]", value_parser = wasm_spec, help_heading = "WebAssembly and limits")]
    wasm_specs: Vec<String>,
}

/// A feature or code-generation switch, applied to the engine's
/// configuration in command-line order.
#[derive(Clone, Debug, PartialEq)]
enum Switch {
    Feature(WasmFeature, bool),
    Mvp,
    AllProposals,
    NanCanonicalization(bool),
    RelaxedSimdDeterministic(bool),
    EpochInterruption(bool),
}

/// What the `-W` arguments say.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WasmSettings {
    switches: Vec<Switch>,
    /// `-W fuel=N`.
    pub fuel: Option<u64>,
    /// `-W timeout=D`.
    pub timeout: Option<Duration>,
    /// `-W max-memory-size=N`.
    pub max_memory_size: Option<usize>,
    /// `-W max-wasm-stack=N`.
    pub max_wasm_stack: Option<usize>,
    /// `-W max-gc-heap-size=N`.
    pub max_gc_heap_size: Option<usize>,
    /// `-W max-table-elements=N`.
    pub max_table_elements: Option<usize>,
    /// `-W unknown-imports-trap`.
    pub unknown_imports_trap: bool,
    /// `-W unknown-imports-default`.
    pub unknown_imports_default: bool,
}

/// WebAssembly proposals (the list `kiln::WasmFeature` defines), then the
/// switches that set several at once.
fn feature_help() -> Vec<OptionHelp> {
    let mut rows: Vec<OptionHelp> =
        WasmFeature::ALL.iter().map(|f| OptionHelp { key: f.name(), value: "[=y|n]", help: f.summary() }).collect();
    rows.push(OptionHelp { key: "all-proposals", value: "[=y]", help: "every proposal above" });
    rows.push(OptionHelp { key: "mvp", value: "[=y]", help: "WebAssembly 1.0 only (Kiln only)" });
    rows
}

/// How wasm runs.
const EXECUTION: &[OptionHelp] = &[
    OptionHelp { key: "fuel", value: "=N", help: "trap after N units of fuel (~N instructions); same as --fuel" },
    OptionHelp {
        key: "timeout",
        value: "=D",
        help: "trap after D of wall time (2s, 100ms; plain N is seconds); same as --timeout",
    },
    OptionHelp { key: "max-memory-size", value: "=N", help: "bytes each memory may grow to; same as --max-memory" },
    OptionHelp {
        key: "max-table-elements",
        value: "=N",
        help: "elements each table may have; same as --max-table-elements",
    },
    OptionHelp { key: "max-wasm-stack", value: "=N", help: "bytes of stack wasm may use; same as --max-wasm-stack" },
    OptionHelp { key: "max-gc-heap-size", value: "=N", help: "bytes of GC objects allowed; same as --max-gc-heap" },
    OptionHelp {
        key: "epoch-interruption",
        value: "[=y|n]",
        help: "compile in epoch interruption (implied by timeout)",
    },
    OptionHelp { key: "nan-canonicalization", value: "[=y|n]", help: "canonical NaNs from float operations" },
    OptionHelp { key: "relaxed-simd-deterministic", value: "[=y|n]", help: "relaxed SIMD results equal on every host" },
    OptionHelp {
        key: "unknown-imports-trap",
        value: "[=y|n]",
        help: "imported functions nothing provides trap when called; same as --trap-unknown-imports",
    },
    OptionHelp {
        key: "unknown-imports-default",
        value: "[=y|n]",
        help: "imports nothing provides get default values; same as --default-values-unknown-imports",
    },
];

/// Wasmtime proposals Kiln does not implement: turning them off is
/// accepted (it changes nothing), turning them on is an error.
const NOT_IMPLEMENTED: &[&str] =
    &["gc-support", "component-model", "stack-switching", "branch-hinting", "shared-everything-threads"];

impl WasmFlags {
    /// Flags holding `wasm_specs`, as if each was given with `-W`.
    #[cfg(test)]
    pub fn from_specs(wasm_specs: &[&str]) -> WasmFlags {
        WasmFlags { wasm_specs: wasm_specs.iter().map(|s| s.to_string()).collect() }
    }

    /// Parses the arguments.
    ///
    /// # Errors
    ///
    /// An unknown key, or a value that does not parse.
    pub fn parse(&self) -> Result<WasmSettings> {
        let mut s = WasmSettings::default();
        for item in opt_group::items('W', &self.wasm_specs) {
            s.add(item)?;
        }
        Ok(s)
    }
}

impl WasmSettings {
    fn add(&mut self, item: Item<'_>) -> Result<()> {
        match item.key {
            "fuel" => self.fuel = Some(item.parsed(parse_count)?),
            "timeout" => self.timeout = Some(item.parsed(parse_duration)?),
            "max-memory-size" => self.max_memory_size = Some(item.parsed(parse_size)?),
            "max-wasm-stack" => self.max_wasm_stack = Some(item.parsed(parse_size)?),
            "max-gc-heap-size" => self.max_gc_heap_size = Some(item.parsed(parse_size)?),
            "max-table-elements" => {
                self.max_table_elements = Some(item.parsed(|v| Ok(usize::try_from(parse_count(v)?)?))?)
            }
            "unknown-imports-trap" => self.unknown_imports_trap = item.bool()?,
            "unknown-imports-default" => self.unknown_imports_default = item.bool()?,
            "epoch-interruption" => self.switches.push(Switch::EpochInterruption(item.bool()?)),
            "nan-canonicalization" => self.switches.push(Switch::NanCanonicalization(item.bool()?)),
            "relaxed-simd-deterministic" => self.switches.push(Switch::RelaxedSimdDeterministic(item.bool()?)),
            "mvp" | "all-proposals" => {
                if !item.bool()? {
                    bail!("`-W {}=n` means nothing: name the features to turn off instead", item.key);
                }
                self.switches.push(if item.key == "mvp" { Switch::Mvp } else { Switch::AllProposals });
            }
            key if NOT_IMPLEMENTED.contains(&key) => {
                if item.bool()? {
                    bail!("Kiln does not implement the WebAssembly `{key}` proposal (`-W {key}`)");
                }
            }
            key => match WasmFeature::from_name(key) {
                Some(feature) => self.switches.push(Switch::Feature(feature, item.bool()?)),
                None => return Err(item.unknown("-W option")),
            },
        }
        Ok(())
    }

    /// Applies the features and code-generation switches to `config`, in
    /// command-line order.
    ///
    /// # Errors
    ///
    /// A feature `Config` does not know.
    pub fn configure(&self, config: &mut Config) -> Result<()> {
        for s in &self.switches {
            match s {
                Switch::Feature(feature, on) => {
                    config.wasm_feature_set(*feature, *on);
                }
                Switch::Mvp => {
                    config.wasm_mvp_only();
                }
                Switch::AllProposals => {
                    for &f in WasmFeature::ALL {
                        config.wasm_feature_set(f, true);
                    }
                }
                Switch::NanCanonicalization(on) => {
                    config.cranelift_nan_canonicalization(*on);
                }
                Switch::RelaxedSimdDeterministic(on) => {
                    config.relaxed_simd_deterministic(*on);
                }
                Switch::EpochInterruption(on) => {
                    config.epoch_interruption(*on);
                }
            }
        }
        Ok(())
    }

    /// The first option given that only means something when running a
    /// program (for commands that do not run one).
    pub fn run_only_option(&self) -> Option<&'static str> {
        [
            (self.fuel.is_some(), "fuel"),
            (self.timeout.is_some(), "timeout"),
            (self.max_memory_size.is_some(), "max-memory-size"),
            (self.max_table_elements.is_some(), "max-table-elements"),
            (self.max_gc_heap_size.is_some(), "max-gc-heap-size"),
            (self.unknown_imports_trap, "unknown-imports-trap"),
            (self.unknown_imports_default, "unknown-imports-default"),
        ]
        .into_iter()
        .find_map(|(given, name)| given.then_some(name))
    }
}

/// `-W`'s value parser: the argument, or `help`.
fn wasm_spec(arg: &str) -> Result<String> {
    opt_group::spec_or_help(arg, || {
        opt_group::help_text('W', "wasm", &[("WebAssembly features", &feature_help()), ("Execution", EXECUTION)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_and_execution_options_mix() -> Result<()> {
        let s = WasmFlags::from_specs(&["simd=n,fuel=1_000", "timeout=2", "memory64", "max-memory-size=0x10000"])
            .parse()?;
        assert_eq!(s.fuel, Some(1000));
        assert_eq!(s.timeout, Some(Duration::from_secs(2)));
        assert_eq!(s.max_memory_size, Some(65536));
        assert_eq!(
            s.switches,
            vec![Switch::Feature(WasmFeature::Simd, false), Switch::Feature(WasmFeature::Memory64, true)]
        );
        Ok(())
    }

    #[test]
    fn errors_name_the_option() {
        let err =
            |spec: &str| WasmFlags::from_specs(&[spec]).parse().err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(err("fuel=lots").contains("`-W fuel=lots`"), "{}", err("fuel=lots"));
        assert!(err("fuel").contains("needs a value"));
        assert!(err("simd=maybe").contains("not y or n"));
        assert!(err("warp-drive").contains("unknown -W option `warp-drive`"));
        assert!(err("component-model").contains("does not implement"));
        assert!(err("component-model=n").is_empty());
        assert!(err("gc").is_empty(), "gc is a feature");
    }
}
