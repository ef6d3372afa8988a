//! Fingerprints the sources that decide what compiled code looks like and
//! which runtime contract it assumes (this crate and `kiln-environ`), so
//! that cached artifacts from a different build of Kiln with the same
//! version number are never reused.

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn main() {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dirs = [here.join("src"), here.join("../environ/src")];
    let mut files = Vec::new();
    for d in &dirs {
        println!("cargo:rerun-if-changed={}", d.display());
        collect(d, &mut files);
    }
    files.sort();
    let mut h = DefaultHasher::new();
    for f in &files {
        let rel = f.strip_prefix(&here).unwrap_or(f);
        h.write(rel.to_string_lossy().as_bytes());
        h.write(&std::fs::read(f).unwrap_or_default());
    }
    println!("cargo:rustc-env=KILN_CODEGEN_SOURCE_HASH={:016x}", h.finish());
}
