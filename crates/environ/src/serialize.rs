//! The compiled-artifact file format, shared by `Module::serialize`, the
//! module cache, and `.cwasm` files:
//!
//! ```text
//! offset 0   magic "\0KILNART"
//!        8   format version (u32 LE)
//!       12   header length (u32 LE)   header = postcard(ArtifactHeader)
//!       16   metadata length (u64 LE) metadata = postcard(CompiledModuleInfo)
//!       24   text offset (u64 LE, a multiple of TEXT_ALIGN, so the text can be mapped in place)
//!       32   text length (u64 LE)
//!       40   tag (32 bytes) of every other byte of the file (see [`Sealer`])
//!       72   header, metadata, zero padding, text
//! ```
//!
//! Function cache entries have a format of their own
//! ([`FunctionPack`](crate::FunctionPack)), sealed the same way.
//!
//! Every artifact and entry carries a tag computed by a [`Sealer`]. What
//! the tag proves depends on its key:
//!
//! - [`PublicSeal`] (`Module::serialize`, `kiln compile`, caches without a
//!   key): keyed BLAKE3 under a constant key, so the tag is a checksum. It
//!   catches truncation and corruption, not tampering: anyone can compute
//!   it. Serialized artifacts are machine code that Kiln trusts because
//!   the embedder said so (`Module::deserialize` is `unsafe`).
//! - The runtime's cache seal (`kiln::seal`), with a cache's secret key:
//!   the tag is a MAC bound to the cache key and kind the entry is stored
//!   under. Whoever does not know the key cannot make an entry Kiln will
//!   load, nor move a valid entry to another key; and module keys identify
//!   the module bytes, so an entry can only ever be loaded for the exact
//!   module it was compiled from.
//!
//! Both are checked before anything in the file is decoded or mapped
//! executable; every table is also bounds-checked before use, so a damaged
//! artifact is an error, never a crash.

use crate::artifact::CompiledModuleInfo;
use crate::function_pack::{FUNCTION_PACK_MAGIC, PACK_TAG};
use crate::tunables::Tunables;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Range;

/// First bytes of every artifact.
pub const ARTIFACT_MAGIC: [u8; 8] = *b"\0KILNART";
/// Version of the layout above; bumped on any incompatible change.
pub const ARTIFACT_FORMAT: u32 = 5;
/// Alignment of the text within the file (covers 4 KiB and 16 KiB pages).
pub const TEXT_ALIGN: usize = 16384;
/// Where the tag sits, and the size of the fixed prefix before the header.
const TAG: Range<usize> = 40..72;
const PREFIX: usize = 72;

/// What a cache entry holds (it is part of what a cache entry's tag
/// covers, so an entry of one kind never passes as the other).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A whole compiled module (artifact format).
    Module,
    /// Compiled functions filed under their function keys: those of the
    /// modules that share one environment (the [`FunctionPack`](crate::FunctionPack) format).
    Functions,
}

/// Computes the tag of an artifact or entry: 32 bytes that depend on every
/// part (see the module docs). [`PublicSeal`] is the one for artifacts
/// outside any cache; the runtime implements the keyed one for caches.
pub trait Sealer: Sync {
    /// The tag of `parts`, in order (an implementation must make the
    /// boundaries between parts count: hash each part's length too).
    fn tag(&self, parts: &[&[u8]]) -> [u8; 32];
}

/// The seal of artifacts outside any cache (`Module::serialize`, `kiln
/// compile`): keyed BLAKE3 under a fixed, public key, so the tag detects
/// damage but not tampering. Also the seal of entries of a cache without a
/// key, bound to the entry's kind and cache key.
#[derive(Clone, Debug)]
pub struct PublicSeal {
    domain: &'static [u8],
    binding: [u8; 32],
}

/// The public key of [`PublicSeal`].
const PUBLIC_KEY: [u8; 32] = *b"kiln public artifact checksum v1";

/// Inputs at least this long are hashed on all cores.
const PARALLEL_HASH_MIN: usize = 1 << 20;

impl PublicSeal {
    /// The seal of a serialized artifact.
    pub fn artifact() -> PublicSeal {
        PublicSeal { domain: b"kiln artifact", binding: [0; 32] }
    }

    /// The seal of a cache entry of `kind` stored under `cache_key` in a
    /// cache that has no key of its own.
    pub fn cache_entry(kind: EntryKind, cache_key: &[u8; 32]) -> PublicSeal {
        PublicSeal { domain: entry_domain(kind), binding: *cache_key }
    }
}

/// The domain label of cache entries of `kind` (part of every entry's tag,
/// so an entry of one kind never passes as the other).
pub fn entry_domain(kind: EntryKind) -> &'static [u8] {
    match kind {
        EntryKind::Module => b"kiln module cache entry",
        EntryKind::Functions => b"kiln function pack cache entry",
    }
}

impl Sealer for PublicSeal {
    fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&PUBLIC_KEY);
        h.update(&(self.domain.len() as u64).to_le_bytes());
        h.update(self.domain);
        h.update(&self.binding);
        for part in parts {
            h.update(&(part.len() as u64).to_le_bytes());
            if part.len() >= PARALLEL_HASH_MIN {
                h.update_rayon(part);
            } else {
                h.update(part);
            }
        }
        *h.finalize().as_bytes()
    }
}

/// Whether `tag` is `sealer`'s tag of `parts` (compared in constant time).
pub(crate) fn verify(sealer: &dyn Sealer, tag: &[u8], parts: &[&[u8]]) -> bool {
    let Ok(tag) = <[u8; 32]>::try_from(tag) else { return false };
    blake3::Hash::from_bytes(tag) == blake3::Hash::from_bytes(sealer.tag(parts))
}

/// Who produced an artifact, and with which settings. An artifact loads
/// only into an engine whose header is equal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactHeader {
    /// Kiln's version.
    pub kiln_version: String,
    /// The compiler's fingerprint (Cranelift version, target, flags).
    pub compiler: String,
    /// Code-generation settings.
    pub tunables: Tunables,
    /// How long producing this artifact took (not compared when loading).
    pub compile_time_ns: u64,
}

/// Why bytes could not be loaded as an artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArtifactError {
    /// The bytes do not start with the artifact magic.
    NotAnArtifact,
    /// Written by a Kiln with another artifact format.
    UnsupportedFormat(u32),
    /// Shorter than its own header says, or damaged.
    Corrupt(&'static str),
    /// The tag does not match: the artifact was damaged, or (for a cache
    /// entry) it was not written by this cache under this key.
    BadTag,
    /// Produced for another Kiln version, target or configuration.
    Incompatible {
        /// What differs.
        what: &'static str,
        /// The artifact's value.
        found: String,
        /// This engine's value.
        expected: String,
    },
}

impl fmt::Display for ArtifactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactError::NotAnArtifact => f.write_str("not a Kiln compiled artifact (bad magic)"),
            ArtifactError::UnsupportedFormat(v) => {
                write!(f, "compiled artifact has format version {v}, this Kiln reads version {ARTIFACT_FORMAT}")
            }
            ArtifactError::Corrupt(what) => write!(f, "compiled artifact is corrupt: {what}"),
            ArtifactError::BadTag => f.write_str(
                "compiled artifact failed its integrity check (damaged, or not sealed by this cache for this module)",
            ),
            ArtifactError::Incompatible { what, found, expected } => write!(
                f,
                "compiled artifact was produced with a different {what}: artifact has `{found}`, this engine has `{expected}`"
            ),
        }
    }
}

impl std::error::Error for ArtifactError {}

/// The first differing line (or `;`-separated item) of two fingerprints.
fn first_difference(a: &str, b: &str) -> (String, String) {
    let split =
        |s: &str| s.split(['\n', ';']).map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect::<Vec<_>>();
    let (xa, xb) = (split(a), split(b));
    for i in 0..xa.len().max(xb.len()) {
        let (p, q) = (xa.get(i).cloned().unwrap_or_default(), xb.get(i).cloned().unwrap_or_default());
        if p != q {
            return (p, q);
        }
    }
    (a.to_string(), b.to_string())
}

/// The bytes before the text: fixed prefix (tag zero), header, metadata,
/// zero padding to the text's offset (a multiple of [`TEXT_ALIGN`]).
fn artifact_front(header: &ArtifactHeader, info: &CompiledModuleInfo, text_len: usize) -> Vec<u8> {
    let h = postcard::to_allocvec(header).expect("serializing to memory cannot fail");
    let m = postcard::to_allocvec(info).expect("serializing to memory cannot fail");
    let text_offset = (PREFIX + h.len() + m.len()).div_ceil(TEXT_ALIGN) * TEXT_ALIGN;
    let mut out = Vec::with_capacity(text_offset);
    out.extend_from_slice(&ARTIFACT_MAGIC);
    out.extend_from_slice(&ARTIFACT_FORMAT.to_le_bytes());
    out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    out.extend_from_slice(&(m.len() as u64).to_le_bytes());
    out.extend_from_slice(&(text_offset as u64).to_le_bytes());
    out.extend_from_slice(&(text_len as u64).to_le_bytes());
    out.extend_from_slice(&[0; 32]);
    out.extend_from_slice(&h);
    out.extend_from_slice(&m);
    out.resize(text_offset, 0);
    out
}

/// Encodes an artifact, sealed with `seal`.
pub fn serialize_artifact(
    header: &ArtifactHeader,
    info: &CompiledModuleInfo,
    text: &[u8],
    seal: &dyn Sealer,
) -> Vec<u8> {
    let mut out = artifact_front(header, info, text.len());
    out.extend_from_slice(text);
    reseal(&mut out, seal);
    out
}

/// Like [`serialize_artifact`], building the artifact in `text`'s own
/// buffer: the text moves up in place, so a large module's artifact needs
/// no second text-sized allocation (whose every page would be a fresh
/// page fault).
pub fn serialize_artifact_in_place(
    header: &ArtifactHeader,
    info: &CompiledModuleInfo,
    mut text: Vec<u8>,
    seal: &dyn Sealer,
) -> Vec<u8> {
    let text_len = text.len();
    let front = artifact_front(header, info, text_len);
    text.resize(front.len() + text_len, 0);
    text.copy_within(..text_len, front.len());
    text[..front.len()].copy_from_slice(&front);
    reseal(&mut text, seal);
    text
}

/// Recomputes the tag of an artifact or a function pack with
/// `seal`, in place; returns `false` (changing nothing) if `bytes` is
/// neither. For tests that play an attacker who rewrites an entry and
/// seals it with a key of their own.
pub fn reseal(bytes: &mut [u8], seal: &dyn Sealer) -> bool {
    if bytes.len() >= PREFIX && bytes[..8] == ARTIFACT_MAGIC {
        let tag = seal.tag(&[&bytes[..TAG.start], &bytes[TAG.end..]]);
        bytes[TAG].copy_from_slice(&tag);
        true
    } else if bytes.len() >= PACK_TAG.end && bytes[..4] == FUNCTION_PACK_MAGIC {
        let tag = seal.tag(&[&bytes[PACK_TAG.end..]]);
        bytes[PACK_TAG].copy_from_slice(&tag);
        true
    } else {
        false
    }
}

/// A decoded artifact: header, metadata, and where the text is.
#[derive(Debug)]
pub struct ParsedArtifact {
    /// Who produced it.
    pub header: ArtifactHeader,
    /// The compiled module's metadata.
    pub info: CompiledModuleInfo,
    /// Byte range of the text within the input.
    pub text: Range<usize>,
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3], b[at + 4], b[at + 5], b[at + 6], b[at + 7]])
}

/// Checks an artifact's tag with `seal`, then decodes it and checks that
/// it was produced for `expected`.
///
/// # Errors
///
/// [`ArtifactError`] describing what is wrong ([`ArtifactError::BadTag`]
/// when the tag does not verify); never panics on any input.
///
/// Large tables in the metadata are read in place from `bytes` when
/// `bytes` is the content of `source` (see [`crate::with_source`]).
pub fn parse_artifact(
    bytes: &[u8],
    expected: &ArtifactHeader,
    seal: &dyn Sealer,
) -> Result<ParsedArtifact, ArtifactError> {
    if bytes.len() < 8 || bytes[..8] != ARTIFACT_MAGIC {
        return Err(ArtifactError::NotAnArtifact);
    }
    if bytes.len() < PREFIX {
        return Err(ArtifactError::Corrupt("truncated header"));
    }
    let format = read_u32(bytes, 8);
    if format != ARTIFACT_FORMAT {
        return Err(ArtifactError::UnsupportedFormat(format));
    }
    let h_len = read_u32(bytes, 12) as usize;
    let m_len = usize::try_from(read_u64(bytes, 16)).map_err(|_| ArtifactError::Corrupt("metadata length"))?;
    let t_off = usize::try_from(read_u64(bytes, 24)).map_err(|_| ArtifactError::Corrupt("text offset"))?;
    let t_len = usize::try_from(read_u64(bytes, 32)).map_err(|_| ArtifactError::Corrupt("text length"))?;
    let h_end = PREFIX.checked_add(h_len).ok_or(ArtifactError::Corrupt("header length"))?;
    let m_end = h_end.checked_add(m_len).ok_or(ArtifactError::Corrupt("metadata length"))?;
    let t_end = t_off.checked_add(t_len).ok_or(ArtifactError::Corrupt("text length"))?;
    if m_end > t_off || t_end != bytes.len() || t_off % TEXT_ALIGN != 0 {
        return Err(ArtifactError::Corrupt("truncated or inconsistent lengths"));
    }
    if !verify(seal, &bytes[TAG], &[&bytes[..TAG.start], &bytes[TAG.end..]]) {
        return Err(ArtifactError::BadTag);
    }
    let (h, m) = (&bytes[PREFIX..h_end], &bytes[h_end..m_end]);
    let header: ArtifactHeader = postcard::from_bytes(h).map_err(|_| ArtifactError::Corrupt("header encoding"))?;
    if header.kiln_version != expected.kiln_version {
        return Err(ArtifactError::Incompatible {
            what: "Kiln version",
            found: header.kiln_version,
            expected: expected.kiln_version.clone(),
        });
    }
    if header.compiler != expected.compiler {
        let (found, expected) = first_difference(&header.compiler, &expected.compiler);
        return Err(ArtifactError::Incompatible { what: "compiler target or flags", found, expected });
    }
    if header.tunables != expected.tunables {
        return Err(ArtifactError::Incompatible {
            what: "configuration",
            found: format!("{:?}", header.tunables),
            expected: format!("{:?}", expected.tunables),
        });
    }
    let info: CompiledModuleInfo = postcard::from_bytes(m).map_err(|_| ArtifactError::Corrupt("metadata encoding"))?;
    info.check_consistency(t_len).map_err(ArtifactError::Corrupt)?;
    Ok(ParsedArtifact { header, info, text: t_off..t_end })
}
