//! Writes the generated many-small-functions module (see
//! `kiln_benches::many_funcs`):
//!
//! ```text
//! cargo run --release -p kiln-benches --bin gen-many-funcs -- OUT.wasm [FUNCS [EDITS]]
//! ```
//!
//! `FUNCS` defaults to 6,000; `EDITS` (default 0) is how many one-function
//! edits are applied, so the outputs for `EDITS` = k and k + 1 differ in
//! one function body.

use kiln_benches::many_funcs::{edited_function, many_funcs_wasm};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(out) = args.get(1) else {
        eprintln!("usage: gen-many-funcs OUT.wasm [FUNCS [EDITS]]");
        std::process::exit(2);
    };
    let number = |i: usize, default: u32| -> u32 {
        match args.get(i).map(|s| s.parse()) {
            None => default,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                eprintln!("gen-many-funcs: {} is not a number", args[i]);
                std::process::exit(2);
            }
        }
    };
    let (funcs, edits) = (number(2, 6000), number(3, 0));
    let wasm = many_funcs_wasm(funcs, edits);
    if let Err(e) = std::fs::write(out, &wasm) {
        eprintln!("cannot write {out}: {e}");
        std::process::exit(1);
    }
    match edits {
        0 => println!("{out}: {} bytes, {funcs} functions", wasm.len()),
        k => println!(
            "{out}: {} bytes, {funcs} functions, {k} edits, the last to function {}",
            wasm.len(),
            edited_function(funcs, k)
        ),
    }
}
