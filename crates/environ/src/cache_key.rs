//! Cache keys. A function key is a BLAKE3 hash over everything the cached
//! compiled code depends on, so that two inputs with equal keys compile to
//! interchangeable code. A module key only files an entry: the entry holds
//! the module bytes, which a lookup compares with its own (see
//! [`module_key`]).
//!
//! - A module's key covers its bytes and the engine salt (Kiln version,
//!   compiler fingerprint, tunables: see [`engine_salt`]).
//! - A function's key covers the engine salt, the *environment* of the
//!   module that code generation reads (types, import counts, tables,
//!   memories, globals and hence every VMContext offset: see
//!   [`environment_fingerprint`]), the function's own signature, its body
//!   bytes, and for each function it calls or references, that function's
//!   index, whether it is imported, and its signature. It does not cover
//!   the function's own index or position in the module: compiled code does
//!   not depend on them (source locations are body-relative, calls are
//!   relocated symbolically), so identical functions share one entry and an
//!   edit elsewhere in a module leaves the other functions' keys unchanged.

use crate::module::ModuleInfo;
use crate::tunables::Tunables;
use crate::types::FuncType;
use crate::vmoffsets::VMOffsets;
use blake3::Hasher;

/// A cache key (a 256-bit BLAKE3 hash).
pub type CacheKey = [u8; 32];

fn put_len_prefixed(h: &mut Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

fn put_func_type(h: &mut Hasher, ty: &FuncType) {
    put_len_prefixed(h, &postcard::to_allocvec(ty).expect("serializing to memory cannot fail"));
}

/// The part of every key that identifies the engine's code generation.
pub fn engine_salt(kiln_version: &str, compiler_fingerprint: &str, tunables: &Tunables) -> CacheKey {
    let mut h = Hasher::new();
    put_len_prefixed(&mut h, b"kiln-cache-v1");
    put_len_prefixed(&mut h, kiln_version.as_bytes());
    put_len_prefixed(&mut h, compiler_fingerprint.as_bytes());
    put_len_prefixed(&mut h, &postcard::to_allocvec(tunables).expect("serializing to memory cannot fail"));
    *h.finalize().as_bytes()
}

/// The key under which a whole module's artifact is filed: the engine
/// salt and XXH3-128 hashes of the module's 1 MiB pieces (computed on all
/// cores), hashed together with BLAKE3.
///
/// XXH3 is not collision-resistant, so this key does not identify the
/// module: a module cache entry holds the wasm it was compiled from, and a
/// lookup uses it only if those bytes equal the module being compiled
/// (`parse_artifact` with `module`); two modules crafted to share a key
/// just replace each other's entry. The key must still hash every byte:
/// it is what keeps an entry whose kept module bytes were damaged from
/// being compared with (and matching) some other module. (Hashing only a
/// sample of the module and keeping several entries per key would save
/// the 0.8-1.2 ms of this hash on Yosys but needs that hash back to
/// protect the kept bytes.) Hashing fast and comparing exactly is
/// cheaper on a warm start than a cryptographic hash of the module: for the
/// 31 MB Yosys build, 0.8 ms of XXH3 plus 1.7 ms comparing (memory-bound,
/// and overlapped with the artifact checksum) against 3.3-3.5 ms of BLAKE3
/// on two cores. The price is disk: an entry is larger by the module.
pub fn module_key(salt: &CacheKey, wasm: &[u8]) -> CacheKey {
    use rayon::prelude::*;
    let pieces: Vec<u128> = if wasm.len() >= 2 << 20 {
        wasm.par_chunks(1 << 20).map(xxhash_rust::xxh3::xxh3_128).collect()
    } else {
        wasm.chunks(1 << 20).map(xxhash_rust::xxh3::xxh3_128).collect()
    };
    let mut h = Hasher::new();
    h.update(b"module-v2");
    h.update(salt);
    h.update(&(wasm.len() as u64).to_le_bytes());
    for p in pieces {
        h.update(&p.to_le_bytes());
    }
    *h.finalize().as_bytes()
}

/// Everything about a module, other than function bodies and the function
/// list, that generated code can depend on.
pub fn environment_fingerprint(module: &ModuleInfo, offsets: &VMOffsets) -> CacheKey {
    let mut h = Hasher::new();
    h.update(b"env");
    h.update(&(module.types.len() as u64).to_le_bytes());
    for t in &module.types {
        put_func_type(&mut h, t);
    }
    for n in [
        module.num_imported_funcs,
        module.num_imported_tables,
        module.num_imported_memories,
        module.num_imported_globals,
    ] {
        h.update(&n.to_le_bytes());
    }
    let enc = |v: &dyn erased::Ser| v.bytes();
    put_len_prefixed(&mut h, &enc(&module.tables));
    put_len_prefixed(&mut h, &enc(&module.memories));
    put_len_prefixed(&mut h, &enc(&module.globals));
    h.update(&offsets.size().to_le_bytes());
    *h.finalize().as_bytes()
}

mod erased {
    /// Serializes anything serde can, for hashing.
    pub trait Ser {
        fn bytes(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Ser for T {
        fn bytes(&self) -> Vec<u8> {
            postcard::to_allocvec(self).expect("serializing to memory cannot fail")
        }
    }
}

/// Computes the keys of a module's functions; everything shared by them
/// (the engine salt, the environment fingerprint, every signature's
/// encoding) is prepared once.
pub struct FunctionKeys<'m> {
    salt: CacheKey,
    env: CacheKey,
    module: &'m ModuleInfo,
    /// The encoding of each type, by type index.
    signatures: Vec<Vec<u8>>,
}

impl<'m> FunctionKeys<'m> {
    /// Prepares the keys of `module`'s functions for an engine with `salt`.
    pub fn new(salt: &CacheKey, module: &'m ModuleInfo, offsets: &VMOffsets) -> FunctionKeys<'m> {
        FunctionKeys {
            salt: *salt,
            env: environment_fingerprint(module, offsets),
            module,
            signatures: module.types.iter().map(|t| postcard::to_allocvec(t).expect("serializing to memory cannot fail")).collect(),
        }
    }

    fn signature_of(&self, func: u32) -> Option<&[u8]> {
        let ty = *self.module.functions.get(func as usize)?;
        self.signatures.get(ty as usize).map(Vec::as_slice)
    }

    /// The key of defined function `func`, whose body is `body` (the
    /// bytes of its locals and code). Returns `None` if the body cannot be
    /// scanned (it is then invalid, and compiling it reports why).
    pub fn key(&self, func: u32, body: &[u8]) -> Option<CacheKey> {
        let mut h = Hasher::new();
        h.update(b"func");
        h.update(&self.salt);
        h.update(&self.env);
        put_len_prefixed(&mut h, self.signature_of(func)?);
        put_len_prefixed(&mut h, body);
        // The functions this body names: index, whether imported, and
        // signature of each, gathered first and hashed in one update.
        let mut named = Vec::new();
        let reader = wasmparser::BinaryReader::new(body, 0);
        let body = wasmparser::FunctionBody::new(reader);
        let mut ops = body.get_operators_reader().ok()?;
        while !ops.eof() {
            let f = match ops.read().ok()? {
                wasmparser::Operator::Call { function_index }
                | wasmparser::Operator::ReturnCall { function_index }
                | wasmparser::Operator::RefFunc { function_index } => function_index,
                _ => continue,
            };
            let sig = self.signature_of(f)?;
            named.extend_from_slice(&f.to_le_bytes());
            named.push(u8::from(self.module.is_imported_func(f)));
            named.extend_from_slice(&(sig.len() as u32).to_le_bytes());
            named.extend_from_slice(sig);
        }
        put_len_prefixed(&mut h, &named);
        Some(*h.finalize().as_bytes())
    }
}
