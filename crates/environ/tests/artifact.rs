//! `parse_artifact` on damaged artifacts: an error, never a panic.
//!
//! The artifact is built the way Kiln builds one, through this crate
//! alone (kiln-environ depends on no compiler): a module translated by
//! `translate_module`, its functions (stand-in machine code with trap
//! sites, address maps and calls between them) laid out by `link`, sealed
//! with `PublicSeal::artifact()`. Every truncation of it, and every single
//! bit flipped in its first 4 KiB (the fixed prefix, the header, the
//! metadata and the start of the padding), is refused. With the damage
//! resealed, as by someone who can compute the public checksum, decoding
//! and the consistency checks behind the tag run on it, and must still
//! return, accepting or refusing, without a panic.

use kiln_environ::wasmparser::WasmFeatures;
use kiln_environ::*;

/// A module with something in most sections the metadata records.
const WAT: &str = r#"(module
    (type $unary (func (param i32) (result i32)))
    (type $pair (func (param i64 f64) (result f32)))
    (import "host" "log" (func $log (param i32)))
    (import "host" "mem" (memory 1 4))
    (import "host" "g" (global $g i32))
    (table $t 4 8 funcref)
    (global $counter (mut i32) (global.get $g))
    (export "one" (func $one))
    (export "two" (func $two))
    (export "t" (table $t))
    (start $init)
    (func $one (type $unary) (call $log (local.get 0)) (i32.div_s (local.get 0) (i32.const 3)))
    (func $two (type $pair) (f32.demote_f64 (local.get 1)))
    (func $init (global.set $counter (i32.const 7)))
    (func $three (param i32) (result i32) (call $one (local.get 0)))
    (elem (i32.const 0) $one $three)
    (elem declare func $two)
    (data (i32.const 16) "some data"))"#;

/// Stand-in machine code for defined function `i` of `n` (module
/// functions from `first` on): a few bytes with trap sites, an address map
/// and a call to the next function.
fn stand_in_function(i: u32, n: u32, first: u32) -> CompiledFunction {
    let mut code = vec![0x90; 24 + 8 * i as usize];
    code[4] = 0xe8; // call rel32, patched by `link`
    CompiledFunction {
        code,
        alignment: 16,
        relocations: vec![Relocation {
            offset: 5,
            kind: RelocKind::X86CallPCRel4,
            target: FuncIndex::from_u32(first + (i + 1) % n),
            addend: -4,
        }],
        traps: vec![(2, TrapCode::IntegerDivisionByZero), (12, TrapCode::MemoryOutOfBounds)],
        address_map: vec![(0, 0), (4, 1), (12, 3)],
        exn_sites: vec![ExnSite {
            ret: 10,
            frame_offset: 16,
            vmctx_offset: 8,
            handlers: vec![ExnHandler { tag: ExnHandler::CATCH_ALL, offset: 20 }],
        }],
        stack_maps: vec![kiln_environ::StackMapSite { ret: 10, frame_offset: 16, slots: vec![8] }],
    }
}

/// A sealed artifact of [`WAT`], and the header it was produced for.
fn artifact() -> (Vec<u8>, ArtifactHeader) {
    let wasm = wat::parse_str(WAT).expect("valid wat");
    let translation = translate_module(&wasm, WasmFeatures::default()).expect("valid module");
    let info = translation.info;
    let (first, n) = (info.num_imported_funcs, translation.bodies.len() as u32);
    let funcs: Vec<Vec<u8>> = (0..n).map(|i| stand_in_function(i, n, first).encode()).collect();
    let funcs: Vec<FunctionCode<'_>> = funcs.iter().map(|f| FunctionCode::parse(f).expect("consistent")).collect();
    let body_offsets: Vec<u32> = translation.bodies.iter().map(|b| b.body.range().start as u32).collect();
    let trampoline = CompiledFunction { code: vec![0xc3; 20], alignment: 16, ..CompiledFunction::default() }.encode();
    let trampoline = FunctionCode::parse(&trampoline).expect("consistent");
    let linked = link(&info, &funcs, &body_offsets, &[trampoline, trampoline]).expect("links");
    let compiled = CompiledModuleInfo {
        module: info,
        funcs: linked.funcs,
        array_to_wasm_trampolines: vec![
            (TypeIndex::from_u32(0), linked.trampolines[0]),
            (TypeIndex::from_u32(1), linked.trampolines[1]),
        ],
        traps: linked.traps,
        address_map: linked.address_map,
        exn_table: linked.exn_table,
        stack_maps: linked.stack_maps,
        lazy: false,
    };
    let header = ArtifactHeader {
        kiln_version: KILN_VERSION.to_string(),
        compiler: "stand-in compiler; target x86_64".to_string(),
        tunables: Tunables::default(),
        compile_time_ns: 1234,
    };
    let bytes = serialize_artifact(&header, &compiled, &linked.text, &PublicSeal::artifact());
    let in_place = serialize_artifact_in_place(&header, &compiled, linked.text, &PublicSeal::artifact());
    assert_eq!(bytes, in_place, "both ways of serializing give the same bytes");
    (bytes, header)
}

/// Parses `bytes`, failing the test on a panic.
fn parse(bytes: &[u8], header: &ArtifactHeader, what: &str) -> Result<ParsedArtifact, ArtifactError> {
    std::panic::catch_unwind(|| parse_artifact(bytes, header, &PublicSeal::artifact()))
        .unwrap_or_else(|_| panic!("parse_artifact panicked on {what}"))
}

#[test]
fn the_intact_artifact_parses() {
    let (bytes, header) = artifact();
    let parsed = parse(&bytes, &header, "the intact artifact").expect("intact");
    assert_eq!(parsed.header, header);
    assert_eq!(parsed.info.funcs.len(), 4);
    // Each function's exception site, moved to text offsets.
    assert_eq!(parsed.info.exn_table.len(), 4);
    for loc in &parsed.info.funcs {
        let site = parsed.info.exn_table.lookup(loc.start + 10).expect("a site per function");
        let handlers: Vec<ExnHandler> = site.handlers().collect();
        assert_eq!(handlers, [ExnHandler { tag: ExnHandler::CATCH_ALL, offset: loc.start + 20 }]);
    }
    assert!(parsed.text.end == bytes.len() && parsed.text.start.is_multiple_of(TEXT_ALIGN));
}

#[test]
fn every_truncation_is_an_error() {
    let (bytes, header) = artifact();
    for len in 0..bytes.len() {
        assert!(parse(&bytes[..len], &header, &format!("a cut at {len}")).is_err(), "cut at {len} accepted");
    }
}

#[test]
fn every_bit_flip_in_the_first_4_kib_is_an_error() {
    let (bytes, header) = artifact();
    let mut damaged = bytes.clone();
    for at in 0..4096.min(bytes.len()) {
        for bit in 0..8 {
            damaged[at] ^= 1 << bit;
            let what = format!("bit {bit} of byte {at} flipped");
            assert!(parse(&damaged, &header, &what).is_err(), "{what}: accepted");
            damaged[at] ^= 1 << bit;
        }
    }
}

/// Where the metadata ends: the fixed prefix (72 bytes), then the header
/// and the metadata, whose lengths are at offsets 12 (u32) and 16 (u64).
fn metadata_end(bytes: &[u8]) -> usize {
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    let metadata_len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    72 + header_len as usize + metadata_len as usize
}

#[test]
fn resealed_bit_flips_never_panic() {
    let (bytes, header) = artifact();
    let end = metadata_end(&bytes);
    assert!(end < 4096, "the header and metadata fit in the first 4 KiB");
    let mut refused = 0;
    for at in 0..4096.min(bytes.len()) {
        for bit in 0..8 {
            let mut damaged = bytes.clone();
            damaged[at] ^= 1 << bit;
            // A flip in the magic number makes it no artifact: nothing to reseal.
            assert_eq!(reseal(&mut damaged, &PublicSeal::artifact()), at >= ARTIFACT_MAGIC.len());
            let result = parse(&damaged, &header, &format!("bit {bit} of byte {at} flipped and resealed"));
            refused += usize::from(at < end && result.is_err());
        }
    }
    // Most flips in the prefix, header and metadata fail a check behind the
    // tag (lengths, encoding, compatibility, consistency): those checks
    // ran. (Flips in the padding after them change nothing.)
    assert!(refused * 2 > end * 8, "only {refused} of {} resealed flips before the padding refused", end * 8);
}
