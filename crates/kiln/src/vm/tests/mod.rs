//! Unit tests of the raw layer's building blocks, apart from the files
//! they test: linear memories (`memory.rs`), tables (`table.rs`) and the
//! region pools both allocators are built on (`pool.rs`). Each checks what
//! its type guarantees: growth limits, reservations and guard regions,
//! protections, resets and dirty tracking, slot exhaustion, bounds, lazy
//! elements.

mod memory;
mod pool;
mod table;

/// The protection (`rw-p`, `---p`, ...) of the mapping that holds `addr`,
/// from `/proc/self/maps`; `None` if nothing is mapped there.
fn protection(addr: usize) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (range, perms) = (fields.next()?, fields.next()?);
        let (start, end) = range.split_once('-')?;
        let (start, end) = (usize::from_str_radix(start, 16).ok()?, usize::from_str_radix(end, 16).ok()?);
        (start..end).contains(&addr).then(|| perms.to_string())
    })
}

/// Whether `addr` can be read and written.
fn accessible(addr: usize) -> bool {
    protection(addr).is_some_and(|p| p.starts_with("rw"))
}

/// Whether `addr` is reserved but inaccessible (an access faults).
fn inaccessible(addr: usize) -> bool {
    protection(addr).is_some_and(|p| p.starts_with("---"))
}
