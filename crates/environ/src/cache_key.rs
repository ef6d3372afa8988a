//! Cache keys. A function key is a BLAKE3 hash over everything the cached
//! compiled code depends on, so that two inputs with equal keys compile to
//! interchangeable code; a module key identifies the module bytes (see
//! [`module_key`]; a cache with a secret key uses its MAC instead).
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

use crate::index::{DefinedFuncIndex, FuncIndex};
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

/// The key under which a whole module's artifact is filed in a cache
/// without a secret key: a BLAKE3 hash of the module bytes, keyed by the
/// engine salt (on all cores for large modules). It is collision-resistant,
/// so it identifies the module: an entry's tag is bound to its key, and an
/// entry can only ever load for the module it was compiled from. (A cache
/// with a secret key files modules under a MAC of the bytes instead, at
/// memory speed: `kiln::seal`.)
///
/// Entries used to keep the module bytes, filed under a fast XXH3 key and
/// compared byte for byte on every warm start. Authenticating entries needs
/// a pass over the entry with a key anyway; binding the tag to a key that
/// identifies the module makes the kept bytes and the comparison
/// unnecessary, which saves the module's size in every entry.
pub fn module_key(salt: &CacheKey, wasm: &[u8]) -> CacheKey {
    let mut h = Hasher::new_keyed(salt);
    h.update(b"module-v3");
    h.update(&(wasm.len() as u64).to_le_bytes());
    if wasm.len() >= 1 << 20 {
        h.update_rayon(wasm);
    } else {
        h.update(wasm);
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

    fn signature_of(&self, func: FuncIndex) -> Option<&[u8]> {
        let ty = *self.module.functions.get(func.index())?;
        self.signatures.get(ty.index()).map(Vec::as_slice)
    }

    /// The key of defined function `func`, whose body is `body` (the
    /// bytes of its locals and code). Returns `None` if the body cannot be
    /// scanned (it is then invalid, and compiling it reports why).
    pub fn key(&self, func: DefinedFuncIndex, body: &[u8]) -> Option<CacheKey> {
        let mut h = Hasher::new();
        h.update(b"func");
        h.update(&self.salt);
        h.update(&self.env);
        put_len_prefixed(&mut h, self.signature_of(self.module.func_index(func))?);
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
                | wasmparser::Operator::RefFunc { function_index } => FuncIndex::from_u32(function_index),
                _ => continue,
            };
            let sig = self.signature_of(f)?;
            named.extend_from_slice(&f.as_u32().to_le_bytes());
            named.push(u8::from(self.module.is_imported_func(f)));
            named.extend_from_slice(&(sig.len() as u32).to_le_bytes());
            named.extend_from_slice(sig);
        }
        put_len_prefixed(&mut h, &named);
        Some(*h.finalize().as_bytes())
    }
}
