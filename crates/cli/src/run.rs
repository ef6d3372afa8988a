//! `kiln run`.

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use crate::features::FeatureFlags;
use kiln::{Engine, Func, Instance, Linker, Module, Store, Trap, Val, ValType};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status when wasm traps (128 + SIGABRT).
const TRAP_EXIT: u8 = 134;

/// `kiln run [OPTIONS] FILE [--invoke NAME] [ARGS...]`
#[derive(Args)]
pub struct RunCommand {
    /// Call this exported function instead of `_start`, passing ARGS as its
    /// parameters, and print each result on its own line.
    #[arg(long, value_name = "NAME")]
    invoke: Option<String>,

    #[command(flatten)]
    features: FeatureFlags,

    /// The module to run (.wasm or .wat).
    file: PathBuf,

    /// Arguments: the function's parameters with --invoke, otherwise passed
    /// to the program. `--invoke NAME` may also directly follow FILE.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

impl RunCommand {
    pub fn execute(mut self) -> Result<ExitCode> {
        // Accept `kiln run FILE --invoke NAME ARGS...`.
        if self.invoke.is_none() && self.args.first().map(String::as_str) == Some("--invoke") {
            if self.args.len() < 2 {
                bail!("--invoke needs a function name");
            }
            self.invoke = Some(self.args[1].clone());
            self.args.drain(..2);
        } else if let Some(rest) = self.args.first().and_then(|a| a.strip_prefix("--invoke=")) {
            self.invoke = Some(rest.to_string());
            self.args.remove(0);
        }

        let engine = Engine::new(&self.features.config()?)?;
        let module = Module::from_file(&engine, &self.file)?;
        let mut store = Store::new(&engine, ());
        let linker = Linker::new(&engine);
        let instance = match linker.instantiate(&mut store, &module) {
            Ok(i) => i,
            Err(e) => return Ok(report(e)),
        };
        match &self.invoke {
            Some(name) => self.invoke(&mut store, instance, name),
            None => {
                let Some(start) = instance.get_func(&mut store, "_start") else {
                    return Ok(ExitCode::SUCCESS);
                };
                match start.call(&mut store, &[], &mut []) {
                    Ok(()) => Ok(ExitCode::SUCCESS),
                    Err(e) => Ok(report(e)),
                }
            }
        }
    }

    fn invoke(&self, store: &mut Store<()>, instance: Instance, name: &str) -> Result<ExitCode> {
        let func: Func = instance
            .get_func(&mut *store, name)
            .ok_or_else(|| anyhow!("the module has no exported function `{name}`"))?;
        let ty = func.ty(&*store);
        if ty.params().len() != self.args.len() {
            bail!("function `{name}` takes {} arguments, {} given", ty.params().len(), self.args.len());
        }
        let params = ty
            .params()
            .zip(&self.args)
            .enumerate()
            .map(|(i, (t, a))| parse_arg(t, a).with_context(|| format!("argument {}: `{a}` is not a valid {t}", i + 1)))
            .collect::<Result<Vec<_>>>()?;
        let mut results: Vec<Val> = ty.results().map(Val::default_for).collect();
        if let Err(e) = func.call(&mut *store, &params, &mut results) {
            return Ok(report(e));
        }
        for r in &results {
            println!("{}", format_val(r));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Prints an error from running wasm and picks the exit status.
fn report(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    if e.downcast_ref::<Trap>().is_some() { ExitCode::from(TRAP_EXIT) } else { ExitCode::from(1) }
}

fn parse_int<T: TryFrom<i128>>(s: &str) -> Result<T> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let v = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(hex) => i128::from_str_radix(hex, 16)?,
        None => body.parse::<i128>()?,
    };
    let v = if neg { -v } else { v };
    T::try_from(v).map_err(|_| anyhow!("out of range"))
}

fn parse_arg(ty: ValType, s: &str) -> Result<Val> {
    Ok(match ty {
        // Accept both signed and unsigned spellings of the bit pattern.
        ValType::I32 => Val::I32(parse_int::<i32>(s).or_else(|_| parse_int::<u32>(s).map(|v| v as i32))?),
        ValType::I64 => Val::I64(parse_int::<i64>(s).or_else(|_| parse_int::<u64>(s).map(|v| v as i64))?),
        ValType::F32 => Val::F32(s.parse::<f32>()?.to_bits()),
        ValType::F64 => Val::F64(s.parse::<f64>()?.to_bits()),
        ValType::V128 => Val::V128(kiln::V128::from(parse_int::<u128>(s)?)),
        ValType::FuncRef | ValType::ExternRef => {
            if s == "null" {
                Val::default_for(ty)
            } else {
                bail!("only `null` can be passed for reference parameters")
            }
        }
    })
}

fn format_val(v: &Val) -> String {
    match v {
        Val::I32(x) => x.to_string(),
        Val::I64(x) => x.to_string(),
        Val::F32(b) => f32::from_bits(*b).to_string(),
        Val::F64(b) => f64::from_bits(*b).to_string(),
        Val::V128(x) => format!("{:#034x}", x.as_u128()),
        Val::FuncRef(None) | Val::ExternRef(None) => "null".to_string(),
        Val::FuncRef(Some(_)) => "<funcref>".to_string(),
        Val::ExternRef(Some(_)) => "<externref>".to_string(),
    }
}
