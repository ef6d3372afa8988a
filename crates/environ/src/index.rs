//! Typed indices into a module's index spaces.
//!
//! Wasm numbers functions, tables, memories and globals with imports first,
//! then the module's own definitions; compiled code and the runtime keep
//! the definitions in their own arrays, numbered from 0. The two numberings
//! are different types here, and [`ModuleInfo`](crate::ModuleInfo) is the
//! only place that converts between them (`defined_func_index`,
//! `func_index`, and the same pair for tables, memories and globals).
//!
//! Each index serializes as the plain `u32` it wraps, so artifacts and
//! cache keys do not depend on these types.

use serde::{Deserialize, Serialize};

macro_rules! entity_indices {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        #[repr(transparent)]
        pub struct $name(u32);

        impl $name {
            /// The index numbered `i`.
            pub const fn from_u32(i: u32) -> Self {
                Self(i)
            }

            /// The index as a number.
            pub const fn as_u32(self) -> u32 {
                self.0
            }

            /// The index as a position in a slice.
            pub const fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

entity_indices! {
    /// A function in the module's function index space (imports first).
    FuncIndex;
    /// A function the module defines, numbered from 0 after the imports.
    DefinedFuncIndex;
    /// A table in the module's table index space (imports first).
    TableIndex;
    /// A table the module defines, numbered from 0 after the imports.
    DefinedTableIndex;
    /// A memory in the module's memory index space (imports first).
    MemoryIndex;
    /// A memory the module defines, numbered from 0 after the imports.
    DefinedMemoryIndex;
    /// A global in the module's global index space (imports first).
    GlobalIndex;
    /// A global the module defines, numbered from 0 after the imports.
    DefinedGlobalIndex;
    /// A tag in the module's tag index space (imports first).
    TagIndex;
    /// A tag the module defines, numbered from 0 after the imports.
    DefinedTagIndex;
    /// A type in the module's type section.
    TypeIndex;
}
