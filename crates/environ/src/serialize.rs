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
//!       40   checksum (u64 LE) of every other byte of the file except the module bytes (`checksum`)
//!       48   module bytes length (u64 LE; 0 outside the module cache)
//!       56   header, metadata, module bytes, zero padding, text
//! ```
//!
//! The checksum catches truncation and corruption (a damaged cache entry is
//! a miss, never executed). It is not a signature: an artifact is machine
//! code, so only load artifacts produced by Kiln from a trusted source.
//!
//! Module cache entries also carry the wasm bytes they were compiled from,
//! and a cache lookup loads an entry only if those equal the module being
//! compiled (see `module_key` for why). Those bytes are left out of the
//! checksum: the comparison checks them exactly. Damage to them cannot make
//! an entry load for the wrong module either: an entry is only looked up
//! under its own module's key, which hashes every byte, so damaged bytes
//! could pass the comparison only for a module whose key collides with the
//! original's (as unlikely as damage passing the checksum).

use crate::artifact::CompiledModuleInfo;
use crate::tunables::Tunables;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Range;

/// First bytes of every artifact.
pub const ARTIFACT_MAGIC: [u8; 8] = *b"\0KILNART";
/// Version of the layout above; bumped on any incompatible change.
pub const ARTIFACT_FORMAT: u32 = 4;
/// Alignment of the text within the file (covers 4 KiB and 16 KiB pages).
pub const TEXT_ALIGN: usize = 16384;
const PREFIX: usize = 56;

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
    /// A module cache entry compiled from other module bytes than the
    /// ones being compiled (two modules whose cache keys collide).
    OtherModule,
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
            ArtifactError::OtherModule => f.write_str("compiled artifact was compiled from different module bytes"),
            ArtifactError::Incompatible { what, found, expected } => write!(
                f,
                "compiled artifact was produced with a different {what}: artifact has `{found}`, this engine has `{expected}`"
            ),
        }
    }
}

impl std::error::Error for ArtifactError {}

/// A fast 64-bit hash for integrity checks (not for keys, which use
/// BLAKE3): XXH3 over each part's length and bytes. It detects accidental
/// damage, not tampering.
pub fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in parts {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.digest()
}

/// The checksum of a whole artifact: every byte except the checksum field
/// and the module bytes at `module`. The rest is hashed in 1 MiB pieces on
/// all cores, then the pieces' hashes together with the prefix. (XXH3 runs
/// at memory speed, about 28 GB/s a core here, where the multiply-chain
/// hash it replaced managed 14 GB/s because the compiler cannot vectorize
/// 64-bit multiplies for baseline x86-64: for a 60 MB artifact, 1.1 ms
/// instead of 2.2 ms.)
fn checksum(artifact: &[u8], module: Range<usize>) -> u64 {
    use rayon::prelude::*;
    let (before, after) = (&artifact[PREFIX..module.start], &artifact[module.end..]);
    let pieces: Vec<&[u8]> = before.chunks(1 << 20).chain(after.chunks(1 << 20)).collect();
    let sums: Vec<u64> = pieces.par_iter().map(|p| xxhash_rust::xxh3::xxh3_64(p)).collect();
    let mut joined = Vec::with_capacity(sums.len() * 8);
    for p in sums {
        joined.extend_from_slice(&p.to_le_bytes());
    }
    let lengths = [(before.len() as u64).to_le_bytes(), (after.len() as u64).to_le_bytes()];
    hash64(&[&artifact[..40], &artifact[48..PREFIX], &lengths[0], &lengths[1], &joined])
}

/// Whether `a` and `b` are equal, compared in 1 MiB pieces on all cores.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    use rayon::prelude::*;
    a.len() == b.len() && a.par_chunks(1 << 20).zip(b.par_chunks(1 << 20)).all(|(x, y)| x == y)
}

/// The first differing line (or `;`-separated item) of two fingerprints.
fn first_difference(a: &str, b: &str) -> (String, String) {
    let split = |s: &str| s.split(['\n', ';']).map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect::<Vec<_>>();
    let (xa, xb) = (split(a), split(b));
    for i in 0..xa.len().max(xb.len()) {
        let (p, q) = (xa.get(i).cloned().unwrap_or_default(), xb.get(i).cloned().unwrap_or_default());
        if p != q {
            return (p, q);
        }
    }
    (a.to_string(), b.to_string())
}

/// Encodes an artifact. `module` is the wasm it was compiled from for a
/// module cache entry (see [`parse_artifact`]), empty otherwise.
pub fn serialize_artifact(header: &ArtifactHeader, info: &CompiledModuleInfo, text: &[u8], module: &[u8]) -> Vec<u8> {
    let h = postcard::to_allocvec(header).expect("serializing to memory cannot fail");
    let m = postcard::to_allocvec(info).expect("serializing to memory cannot fail");
    let module_start = PREFIX + h.len() + m.len();
    let text_offset = (module_start + module.len()).div_ceil(TEXT_ALIGN) * TEXT_ALIGN;
    let mut out = Vec::with_capacity(text_offset + text.len());
    out.extend_from_slice(&ARTIFACT_MAGIC);
    out.extend_from_slice(&ARTIFACT_FORMAT.to_le_bytes());
    out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    out.extend_from_slice(&(m.len() as u64).to_le_bytes());
    out.extend_from_slice(&(text_offset as u64).to_le_bytes());
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&(module.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&m);
    out.extend_from_slice(module);
    out.resize(text_offset, 0);
    out.extend_from_slice(text);
    let sum = checksum(&out, module_start..module_start + module.len());
    out[40..48].copy_from_slice(&sum.to_le_bytes());
    out
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

/// Decodes an artifact and checks its integrity and that it was produced
/// for `expected`. With `module`, the artifact must be a module cache
/// entry compiled from exactly those wasm bytes.
///
/// # Errors
///
/// [`ArtifactError`] describing what is wrong ([`ArtifactError::OtherModule`]
/// when `module` differs from the entry's); never panics on any input.
///
/// Large tables in the metadata are read in place from `bytes` when
/// `bytes` is the content of `source` (see [`crate::with_source`]).
pub fn parse_artifact(bytes: &[u8], expected: &ArtifactHeader, module: Option<&[u8]>) -> Result<ParsedArtifact, ArtifactError> {
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
    let sum = read_u64(bytes, 40);
    let s_len = usize::try_from(read_u64(bytes, 48)).map_err(|_| ArtifactError::Corrupt("module bytes length"))?;
    let h_end = PREFIX.checked_add(h_len).ok_or(ArtifactError::Corrupt("header length"))?;
    let m_end = h_end.checked_add(m_len).ok_or(ArtifactError::Corrupt("metadata length"))?;
    let s_end = m_end.checked_add(s_len).ok_or(ArtifactError::Corrupt("module bytes length"))?;
    let t_end = t_off.checked_add(t_len).ok_or(ArtifactError::Corrupt("text length"))?;
    if s_end > t_off || t_end != bytes.len() || t_off % TEXT_ALIGN != 0 {
        return Err(ArtifactError::Corrupt("truncated or inconsistent lengths"));
    }
    let (h, m) = (&bytes[PREFIX..h_end], &bytes[h_end..m_end]);
    // Both passes are memory-bound; running them together keeps both cores
    // streaming.
    let (sum_ok, same_module) = rayon::join(
        || checksum(bytes, m_end..s_end) == sum,
        || module.is_none_or(|wasm| same_bytes(&bytes[m_end..s_end], wasm)),
    );
    if !sum_ok {
        return Err(ArtifactError::Corrupt("checksum mismatch"));
    }
    if !same_module {
        return Err(ArtifactError::OtherModule);
    }
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
