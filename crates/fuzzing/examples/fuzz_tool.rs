//! Helpers for working with fuzz cases by hand.
//!
//! ```text
//! cargo run -p kiln-fuzzing --example fuzz_tool -- print FILE.wasm          # text form
//! cargo run -p kiln-fuzzing --example fuzz_tool -- gen TARGET INPUT OUT.wasm # the module a fuzz input generates
//! cargo run -p kiln-fuzzing --example fuzz_tool -- diff FILE.wasm|FILE.wat [FLAGS]  # Kiln vs wasmi (flags: raw-nans opt-none opt-size fuel epoch
//!                                                       nan-canon eager-tables no-cow small-reservation)
//! cargo run -p kiln-fuzzing --example fuzz_tool -- run TARGET INPUT...       # run a fuzz target's oracle on inputs
//! ```

use kiln_fuzzing::{Unstructured, cache, compile, differential, instantiate, wasi};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("print") => {
            let bytes = std::fs::read(&args[1])?;
            println!("{}", wasmprinter::print_bytes(&bytes)?);
        }
        Some("gen") => {
            let data = std::fs::read(&args[2])?;
            let mut u = Unstructured::new(&data);
            let wasm = match args[1].as_str() {
                "differential" => {
                    let case = differential::generate(&mut u).map_err(|e| anyhow::anyhow!("{e}"))?;
                    eprintln!(
                        "{:?} canonical_nans={} wasmi_fuel={}",
                        case.settings, case.canonical_nans, case.wasmi_fuel
                    );
                    case.wasm
                }
                "instantiate" => instantiate::generate(&mut u).map_err(|e| anyhow::anyhow!("{e}"))?.wasm,
                "cache" => cache::generate(&mut u).map_err(|e| anyhow::anyhow!("{e}"))?.wasm,
                "compile" => compile::generate(&mut u).map_err(|e| anyhow::anyhow!("{e}"))?.bytes,
                t => anyhow::bail!("no generator for {t}"),
            };
            std::fs::write(&args[3], wasm)?;
        }
        Some("diff") => {
            let wasm = wat::parse_file(&args[1])?;
            let flags: Vec<&str> = args[2..].iter().map(String::as_str).collect();
            let has = |f: &str| flags.contains(&f);
            let mut settings = kiln_fuzzing::generators::KilnSettings::default();
            if has("opt-none") {
                settings.opt_level = kiln::OptLevel::None;
            }
            if has("opt-size") {
                settings.opt_level = kiln::OptLevel::SpeedAndSize;
            }
            settings.consume_fuel = has("fuel");
            settings.epoch_interruption = has("epoch");
            settings.nan_canonicalization = has("nan-canon");
            settings.multi_memory = true;
            settings.table_lazy_init = !has("eager-tables");
            settings.memory_init_cow = !has("no-cow");
            if has("small-reservation") {
                settings.memory_reservation = Some(1 << 20);
                settings.memory_guard_size = Some(0);
            }
            let case =
                differential::Case { wasm, settings, canonical_nans: !has("raw-nans"), wasmi_fuel: has("wasmi-fuel") };
            println!("{:?}", case.check(&mut Unstructured::new(&[])));
        }
        Some("run") => {
            for path in &args[2..] {
                let data = std::fs::read(path)?;
                let run: fn(&mut Unstructured<'_>) -> kiln_fuzzing::arbitrary::Result<()> = match args[1].as_str() {
                    "differential" => |u| differential::run(u).map(drop),
                    "compile" => compile::run,
                    "instantiate" => instantiate::run,
                    "cache" => cache::run,
                    "wasi" => wasi::run,
                    t => anyhow::bail!("no target {t}"),
                };
                kiln_fuzzing::fuzz(&data, run);
                eprintln!("{path}: ok");
            }
        }
        _ => anyhow::bail!("usage: fuzz_tool print|gen|diff|run ..."),
    }
    Ok(())
}
