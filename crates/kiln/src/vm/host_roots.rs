//! The GC references the host holds: each host handle to a GC object
//! (`AnyRef` and the views of it) names a slot here, which the collector
//! treats as a root and updates when the object moves.
//!
//! Slots are released in LIFO order, by scope: a host function's slots
//! when it returns to wasm, a `RootScope`'s when it is dropped; the
//! others live as long as the store. Each slot carries a process-unique
//! id that its handles repeat, so a handle whose slot was released (and
//! maybe reused) is told apart: using it is an error, never another
//! object.

/// A store's host roots.
#[derive(Default)]
pub struct HostRoots {
    /// Each live slot's current reference encoding and id.
    slots: Vec<(u64, u64)>,
    /// The id of the next slot.
    next_id: u64,
}

/// What a host handle keeps to find its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RootIndex {
    index: u32,
    id: u64,
}

impl HostRoots {
    /// Roots GC reference encoding `r`; returns the handle's part.
    pub fn push(&mut self, r: u64) -> RootIndex {
        let id = self.next_id;
        self.next_id += 1;
        let index = self.slots.len() as u32;
        self.slots.push((r, id));
        RootIndex { index, id }
    }

    /// The current encoding of the reference `at` roots, or `None` if its
    /// slot was released.
    pub fn get(&self, at: RootIndex) -> Option<u64> {
        match self.slots.get(at.index as usize) {
            Some((r, id)) if *id == at.id => Some(*r),
            _ => None,
        }
    }

    /// A mark for [`HostRoots::release_to`]: how many slots are live.
    pub fn mark(&self) -> usize {
        self.slots.len()
    }

    /// Releases every slot made since `mark` was taken.
    pub fn release_to(&mut self, mark: usize) {
        self.slots.truncate(mark);
    }

    /// Calls `f` with each live slot's encoding, for the collector to
    /// update.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut u64)) {
        for (r, _) in &mut self.slots {
            f(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_slots_are_told_apart_from_new_ones() {
        let mut roots = HostRoots::default();
        let a = roots.push(16);
        let mark = roots.mark();
        let b = roots.push(24);
        assert_eq!((roots.get(a), roots.get(b)), (Some(16), Some(24)));
        roots.release_to(mark);
        let c = roots.push(32);
        assert_eq!((roots.get(b), roots.get(c)), (None, Some(32)), "b's slot now holds c");
        roots.for_each_mut(|r| *r += 1);
        assert_eq!((roots.get(a), roots.get(c)), (Some(17), Some(33)));
    }
}
