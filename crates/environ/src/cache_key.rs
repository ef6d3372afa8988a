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
//!   [`environment_fingerprint`]), the function's own type and its body
//!   bytes. Its code also depends on the signature of each function
//!   it calls or references: that list, its *callees* (index and type
//!   index of each; whether one is imported follows from its index and the
//!   environment's import count), is stored beside the code with the type
//!   and body, its *source* ([`FunctionKeys::source`]), and compared with
//!   the module's on lookup ([`FunctionKeys::source_matches`]), so the key
//!   needs no scan of the body's instructions, and a body whose callees
//!   changed signature is a miss. A lookup that finds a function's source
//!   where the module's order puts it needs no key at all: the source is
//!   compared byte for byte instead. Neither covers the function's
//!   own index or position in the module: compiled code does not depend on
//!   them (source locations are body-relative, calls are relocated
//!   symbolically), so identical functions share one entry and an edit
//!   elsewhere in a module leaves the other functions' keys unchanged.
//! - The functions of every module with the same environment are filed
//!   together, in two entries ([`FunctionPack`](crate::FunctionPack)s)
//!   under [`FunctionKeys::pack_keys`]: a function key covers the
//!   environment, so functions of modules with different environments
//!   never share code anyway.

use crate::index::FuncIndex;
use crate::module::ModuleInfo;
use crate::tunables::Tunables;
use crate::types::WasmSubType;
use crate::vmoffsets::VMOffsets;
use blake3::Hasher;

/// A cache key (a 256-bit BLAKE3 hash).
pub type CacheKey = [u8; 32];

fn put_len_prefixed(h: &mut Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

fn put_sub_type(h: &mut Hasher, ty: &WasmSubType) {
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
        put_sub_type(&mut h, t);
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

/// Computes the keys of a module's functions and their callee lists;
/// what they share (the engine salt and the environment fingerprint,
/// hashed into one key) is prepared once.
pub struct FunctionKeys {
    salt: CacheKey,
    env: CacheKey,
    /// BLAKE3 of "func", the salt and the environment: the key every
    /// function key is hashed under.
    module_env: CacheKey,
    /// The type index of every function of the module (imported first).
    functions: Vec<u32>,
}

impl FunctionKeys {
    /// Prepares the keys of `module`'s functions for an engine with `salt`.
    pub fn new(salt: &CacheKey, module: &ModuleInfo, offsets: &VMOffsets) -> FunctionKeys {
        let env = environment_fingerprint(module, offsets);
        let mut h = Hasher::new();
        h.update(b"func");
        h.update(salt);
        h.update(&env);
        FunctionKeys {
            salt: *salt,
            env,
            module_env: *h.finalize().as_bytes(),
            functions: module.functions.iter().map(|t| t.as_u32()).collect(),
        }
    }

    /// The keys of the two entries that hold the compiled functions of
    /// every module with this module's environment (for an engine with
    /// this salt): the base pack and the pack of what was compiled since
    /// the base was written (see `kiln`'s function cache).
    pub fn pack_keys(&self) -> [CacheKey; 2] {
        [b"function pack: base".as_slice(), b"function pack: recent"].map(|label| {
            let mut h = Hasher::new();
            h.update(label);
            h.update(&self.salt);
            h.update(&self.env);
            *h.finalize().as_bytes()
        })
    }

    /// The key of function `func` (a defined one), whose body is `body` (the
    /// bytes of its locals and code): a hash of its type index (the
    /// environment fixes what that type is) and body, keyed by the engine
    /// salt and environment. `None` if `func` has no type.
    pub fn key(&self, func: FuncIndex, body: &[u8]) -> Option<CacheKey> {
        let ty = *self.functions.get(func.index())?;
        let mut h = Hasher::new_keyed(&self.module_env);
        h.update(&ty.to_le_bytes());
        put_len_prefixed(&mut h, body);
        Some(*h.finalize().as_bytes())
    }

    /// The source of function `func` (a defined one), whose body is `body`: what
    /// its code was compiled from besides the environment, stored beside
    /// the code in a cache. Its type index (u32 LE), the body's length
    /// (u32 LE) and bytes, and its callees: the functions it calls
    /// (`call`, `return_call`) or references (`ref.func`), as a u32 count
    /// and sorted, distinct `(function index, type index)` pairs (u32 LE).
    /// `None` if `func` has no type, or the body cannot be scanned or
    /// names a function that does not exist (it is then invalid, and
    /// compiling it reports why).
    pub fn source(&self, func: FuncIndex, body: &[u8]) -> Option<Vec<u8>> {
        let ty = *self.functions.get(func.index())?;
        let reader = wasmparser::BinaryReader::new(body, 0);
        let mut ops = wasmparser::FunctionBody::new(reader).get_operators_reader().ok()?;
        let mut named = Vec::new();
        while !ops.eof() {
            match ops.read().ok()? {
                wasmparser::Operator::Call { function_index }
                | wasmparser::Operator::ReturnCall { function_index }
                | wasmparser::Operator::RefFunc { function_index } => named.push(function_index),
                _ => {}
            }
        }
        named.sort_unstable();
        named.dedup();
        let mut out = Vec::with_capacity(12 + body.len() + named.len() * 8);
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&u32::try_from(body.len()).ok()?.to_le_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(&(named.len() as u32).to_le_bytes());
        for f in named {
            out.extend_from_slice(&f.to_le_bytes());
            out.extend_from_slice(&self.functions.get(f as usize)?.to_le_bytes());
        }
        Some(out)
    }

    /// Whether `stored`, a source made by [`FunctionKeys::source`] in
    /// this or another module with the same environment (hence the same
    /// types), is that of defined function `func` with body `body` in this
    /// module: the same type and body bytes, and every callee of the same
    /// type here. `false` for anything that is not such a source.
    pub fn source_matches(&self, func: FuncIndex, body: &[u8], stored: &[u8]) -> bool {
        let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let Some(ty) = self.functions.get(func.index()) else { return false };
        let Some((head, rest)) = stored.split_first_chunk::<8>() else { return false };
        if word(&head[..4]) != *ty || word(&head[4..]) as usize != body.len() || rest.get(..body.len()) != Some(body) {
            return false;
        }
        let Some((count, pairs)) = rest[body.len()..].split_first_chunk::<4>() else { return false };
        if (u32::from_le_bytes(*count) as usize).checked_mul(8) != Some(pairs.len()) {
            return false;
        }
        pairs.chunks_exact(8).all(|p| self.functions.get(word(&p[..4]) as usize) == Some(&word(&p[4..])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::translate_module;

    /// Function keys and sources of the module `wat`: (keys, sources).
    fn keys_and_sources(wat: &str) -> (FunctionKeys, Vec<(FuncIndex, Vec<u8>)>) {
        let wasm = wat::parse_str(wat).expect("valid wat");
        let t = translate_module(&wasm, wasmparser::WasmFeatures::default()).expect("valid module");
        let offsets = VMOffsets::new(&t.info);
        let keys = FunctionKeys::new(&[7; 32], &t.info, &offsets);
        let first = t.info.num_imported_funcs;
        let bodies = t
            .bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let r = b.body.range();
                (FuncIndex::from_u32(first + i as u32), wasm[r.start as usize..r.end as usize].to_vec())
            })
            .collect();
        (keys, bodies)
    }

    #[test]
    fn sources_match_exactly_their_own_body_type_and_callees() {
        let module = |callee_type: &str| {
            format!(
                r#"(module
                    (type $a (func (param i32) (result i32)))
                    (type $b (func (param i32) (result i32)))
                    (import "m" "imp" (func $imp (type $a)))
                    (func $f (type {callee_type}) i32.const 1)
                    (func $g (type $a) local.get 0 call $imp drop i32.const 7 call $f)
                    (func $h (type $a) local.get 0 call $imp drop i32.const 7 call $f))"#
            )
        };
        let (keys, bodies) = keys_and_sources(&module("$a"));
        let sources: Vec<Vec<u8>> = bodies.iter().map(|(f, b)| keys.source(*f, b).expect("scans")).collect();
        for (i, (f, body)) in bodies.iter().enumerate() {
            assert!(keys.source_matches(*f, body, &sources[i]), "own source of {f}");
            for (j, s) in sources.iter().enumerate() {
                // $g and $h have the same type and body: the same source.
                let same = i == j || (i >= 1 && j >= 1);
                assert_eq!(keys.source_matches(*f, body, s), same, "function {f} against source {j}");
            }
            // A changed body byte, a truncated or extended source, garbage.
            let mut other = body.clone();
            *other.last_mut().expect("non-empty") ^= 1;
            assert!(!keys.source_matches(*f, &other, &sources[i]));
            assert!(!keys.source_matches(*f, body, &sources[i][..sources[i].len() - 1]));
            let mut longer = sources[i].clone();
            longer.push(0);
            assert!(!keys.source_matches(*f, body, &longer));
            assert!(!keys.source_matches(*f, body, &[]));
            assert!(!keys.source_matches(FuncIndex::from_u32(f.as_u32() + 100), body, &sources[i]), "no such function");
        }
        // The same bodies where the callee $f has another type (another
        // index in the same list of types): $g's key is unchanged, its
        // source no longer matches, so it is a miss.
        let (other_keys, other_bodies) = keys_and_sources(&module("$b"));
        let (g, g_body) = &other_bodies[1];
        assert_eq!(other_keys.key(*g, g_body), keys.key(*g, g_body));
        assert!(!other_keys.source_matches(*g, g_body, &sources[1]));
        assert!(other_keys.source_matches(*g, g_body, &other_keys.source(*g, g_body).expect("scans")));
    }
}
