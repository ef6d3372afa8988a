//! Writes the generated many-small-functions module (see
//! `kiln_benches::many_funcs`):
//!
//! ```text
//! cargo run --release -p kiln-benches --bin gen-many-funcs -- OUT.wasm [FUNCS [EDIT]]
//! ```
//!
//! `FUNCS` defaults to 6,000; with `EDIT` (a number), one function's
//! constant differs, a different function and constant for each number.

use kiln_benches::many_funcs::{edited_function, many_funcs_wasm};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(out) = args.get(1) else {
        eprintln!("usage: gen-many-funcs OUT.wasm [FUNCS [EDIT]]");
        std::process::exit(2);
    };
    let funcs: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(6000);
    let edit: Option<u32> = args.get(3).and_then(|s| s.parse().ok());
    let wasm = many_funcs_wasm(funcs, edit);
    if let Err(e) = std::fs::write(out, &wasm) {
        eprintln!("cannot write {out}: {e}");
        std::process::exit(1);
    }
    match edit {
        Some(e) => println!("{out}: {} bytes, {funcs} functions, function {} edited", wasm.len(), edited_function(funcs, e)),
        None => println!("{out}: {} bytes, {funcs} functions", wasm.len()),
    }
}
