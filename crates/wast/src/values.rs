//! Converting wast arguments and matching wast result patterns.

use anyhow::{Result, anyhow, bail};
use kiln::{AnyRef, ExternRef, Store, V128, Val};
use wast::core::{AbstractHeapType, HeapType, NanPattern, V128Pattern, WastArgCore, WastRetCore};

/// The host value stored in externrefs made by `ref.extern N`.
#[derive(Debug, PartialEq)]
struct HostValue(u32);

pub fn arg(store: &mut Store<()>, a: &WastArgCore<'_>) -> Result<Val> {
    Ok(match a {
        WastArgCore::I32(v) => Val::I32(*v),
        WastArgCore::I64(v) => Val::I64(*v),
        WastArgCore::F32(v) => Val::F32(v.bits),
        WastArgCore::F64(v) => Val::F64(v.bits),
        WastArgCore::V128(v) => Val::V128(V128::from(u128::from_le_bytes(v.to_le_bytes()))),
        WastArgCore::RefNull(HeapType::Abstract {
            ty: AbstractHeapType::Extern | AbstractHeapType::NoExtern, ..
        }) => Val::ExternRef(None),
        WastArgCore::RefNull(HeapType::Abstract { ty: AbstractHeapType::Exn | AbstractHeapType::NoExn, .. }) => {
            Val::ExnRef(None)
        }
        WastArgCore::RefNull(HeapType::Abstract {
            ty:
                AbstractHeapType::Any
                | AbstractHeapType::Eq
                | AbstractHeapType::I31
                | AbstractHeapType::Struct
                | AbstractHeapType::Array
                | AbstractHeapType::None,
            ..
        }) => Val::AnyRef(None),
        WastArgCore::RefNull(_) => Val::FuncRef(None),
        WastArgCore::RefExtern(n) => Val::ExternRef(Some(ExternRef::new(HostValue(*n)))),
        // A host value as an `anyref`: what `any.convert_extern` makes of it.
        WastArgCore::RefHost(n) => {
            Val::AnyRef(Some(AnyRef::convert_extern(&mut *store, &ExternRef::new(HostValue(*n)))?))
        }
    })
}

fn f32_matches(bits: u32, p: &NanPattern<wast::token::F32>) -> bool {
    match p {
        NanPattern::CanonicalNan => bits & 0x7fff_ffff == 0x7fc0_0000,
        NanPattern::ArithmeticNan => bits & 0x7fc0_0000 == 0x7fc0_0000,
        NanPattern::Value(v) => v.bits == bits,
    }
}

fn f64_matches(bits: u64, p: &NanPattern<wast::token::F64>) -> bool {
    match p {
        NanPattern::CanonicalNan => bits & 0x7fff_ffff_ffff_ffff == 0x7ff8_0000_0000_0000,
        NanPattern::ArithmeticNan => bits & 0x7ff8_0000_0000_0000 == 0x7ff8_0000_0000_0000,
        NanPattern::Value(v) => v.bits == bits,
    }
}

fn v128_matches(v: u128, p: &V128Pattern) -> bool {
    let b = v.to_le_bytes();
    match p {
        V128Pattern::I8x16(l) => l.iter().enumerate().all(|(i, x)| b[i] == *x as u8),
        V128Pattern::I16x8(l) => {
            l.iter().enumerate().all(|(i, x)| u16::from_le_bytes([b[2 * i], b[2 * i + 1]]) == *x as u16)
        }
        V128Pattern::I32x4(l) => l
            .iter()
            .enumerate()
            .all(|(i, x)| u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap_or_default()) == *x as u32),
        V128Pattern::I64x2(l) => l
            .iter()
            .enumerate()
            .all(|(i, x)| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap_or_default()) == *x as u64),
        V128Pattern::F32x4(l) => l
            .iter()
            .enumerate()
            .all(|(i, p)| f32_matches(u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap_or_default()), p)),
        V128Pattern::F64x2(l) => l
            .iter()
            .enumerate()
            .all(|(i, p)| f64_matches(u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap_or_default()), p)),
    }
}

fn matches(store: &mut Store<()>, v: &Val, p: &WastRetCore<'_>) -> Result<bool> {
    Ok(match (v, p) {
        (Val::I32(a), WastRetCore::I32(b)) => a == b,
        (Val::I64(a), WastRetCore::I64(b)) => a == b,
        (Val::F32(a), WastRetCore::F32(p)) => f32_matches(*a, p),
        (Val::F64(a), WastRetCore::F64(p)) => f64_matches(*a, p),
        (Val::V128(a), WastRetCore::V128(p)) => v128_matches(a.as_u128(), p),
        (Val::FuncRef(f), WastRetCore::RefNull(_)) => f.is_none(),
        (Val::ExternRef(r), WastRetCore::RefNull(_)) => r.is_none(),
        (Val::ExnRef(r), WastRetCore::RefNull(_)) => r.is_none(),
        (Val::AnyRef(r), WastRetCore::RefNull(_)) => r.is_none(),
        (Val::FuncRef(f), WastRetCore::RefFunc(_)) => f.is_some(),
        // Every non-null GC value is an i31, a struct or an array (all `eq`).
        (Val::AnyRef(r), WastRetCore::RefAny) => r.is_some(),
        (Val::AnyRef(r), WastRetCore::RefEq) => r.is_some_and(|r| !r.is_extern_box()),
        (Val::AnyRef(r), WastRetCore::RefHost(n)) => match r {
            Some(r) if r.is_extern_box() => {
                ExternRef::convert_any(&mut *store, *r)?.data().downcast_ref::<HostValue>() == Some(&HostValue(*n))
            }
            _ => false,
        },
        (Val::ExternRef(Some(r)), WastRetCore::RefHost(n)) => {
            r.data().downcast_ref::<HostValue>() == Some(&HostValue(*n))
        }
        (Val::AnyRef(r), WastRetCore::RefI31) => r.is_some_and(|r| r.is_i31()),
        (Val::AnyRef(r), WastRetCore::RefStruct) => r.is_some_and(|r| r.is_struct()),
        (Val::AnyRef(r), WastRetCore::RefArray) => r.is_some_and(|r| r.is_array()),
        (Val::ExternRef(r), WastRetCore::RefExtern(n)) => match (r, n) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(r), Some(n)) => r.data().downcast_ref::<HostValue>() == Some(&HostValue(*n)),
        },
        (v, WastRetCore::Either(alts)) => {
            for a in alts {
                if matches(store, v, a)? {
                    return Ok(true);
                }
            }
            false
        }
        (
            _,
            WastRetCore::I32(_)
            | WastRetCore::I64(_)
            | WastRetCore::F32(_)
            | WastRetCore::F64(_)
            | WastRetCore::V128(_),
        )
        | (
            _,
            WastRetCore::RefNull(_)
            | WastRetCore::RefFunc(_)
            | WastRetCore::RefExtern(_)
            | WastRetCore::RefAny
            | WastRetCore::RefEq
            | WastRetCore::RefI31
            | WastRetCore::RefStruct
            | WastRetCore::RefArray
            | WastRetCore::RefHost(_),
        ) => false,
        (_, other) => return Err(anyhow!("unsupported result pattern {other:?}")),
    })
}

pub fn check_results(store: &mut Store<()>, got: &[Val], want: &[wast::WastRet<'_>]) -> Result<()> {
    if got.len() != want.len() {
        bail!("expected {} results, got {}", want.len(), got.len());
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let wast::WastRet::Core(w) = w else { bail!("component results are not supported") };
        if !matches(store, g, w)? {
            bail!("result {i}: expected {w:?}, got {g:?}");
        }
    }
    Ok(())
}
