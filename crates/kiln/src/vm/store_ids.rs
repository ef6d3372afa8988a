//! Typed positions in a store's object lists: each list is indexed only by
//! its own kind of id, so a function id cannot reach a memory.

use std::marker::PhantomData;
use std::ops::{Index, IndexMut};

/// An id naming one object of a store's list of some kind.
pub trait ObjectId: Copy {
    /// The id of the object at `position` in its list.
    fn from_position(position: usize) -> Self;
    /// The object's position in its list.
    fn position(self) -> usize;
}

macro_rules! object_ids {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(usize);

        impl ObjectId for $name {
            fn from_position(position: usize) -> Self {
                $name(position)
            }
            fn position(self) -> usize {
                self.0
            }
        }
    )*};
}

object_ids! {
    /// A function of a store: a wasm function some instance exported or
    /// the host asked for, or a host function.
    FuncId;
    /// A linear memory of a store (an instance's, the host's, or a shared
    /// memory the store imported).
    MemoryId;
    /// A table of a store.
    TableId;
    /// A global of a store.
    GlobalId;
    /// An instance of a store.
    InstanceId;
    /// An exception tag of a store.
    TagId;
}

/// A store's list of objects of one kind, indexed by their id type `I`.
pub struct IdVec<I, T> {
    items: Vec<T>,
    _id: PhantomData<fn(I) -> I>,
}

impl<I: ObjectId, T> IdVec<I, T> {
    /// An empty list.
    pub fn new() -> Self {
        IdVec { items: Vec::new(), _id: PhantomData }
    }

    /// Appends `item`; returns its id.
    pub fn push(&mut self, item: T) -> I {
        let id = I::from_position(self.items.len());
        self.items.push(item);
        id
    }

    /// Reserves room for `n` more items.
    pub fn reserve(&mut self, n: usize) {
        self.items.reserve(n);
    }

    /// The id the next pushed item will get.
    pub fn next_id(&self) -> I {
        I::from_position(self.items.len())
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The items with their ids, in order.
    pub fn iter(&self) -> impl Iterator<Item = (I, &T)> {
        self.items.iter().enumerate().map(|(i, t)| (I::from_position(i), t))
    }

    /// The items, mutably, in order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.items.iter_mut()
    }

    /// The items, in order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }
}

impl<I: ObjectId, T> Default for IdVec<I, T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: ObjectId, T> Index<I> for IdVec<I, T> {
    type Output = T;
    fn index(&self, id: I) -> &T {
        &self.items[id.position()]
    }
}

impl<I: ObjectId, T> IndexMut<I> for IdVec<I, T> {
    fn index_mut(&mut self, id: I) -> &mut T {
        &mut self.items[id.position()]
    }
}
