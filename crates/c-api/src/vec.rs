//! Vectors (`wasm_xxx_vec_t`): `{ size, data }` owning `size` elements.
//!
//! A vector this library makes holds a boxed slice of exactly `size`
//! elements (or `data == NULL` when empty); dropping a [`CVec`] releases
//! the elements and the slice. Vectors C makes itself (`WASM_ARRAY_VEC`
//! on its stack) are only ever borrowed, never dropped here.

use crate::ffi;
use std::mem::ManuallyDrop;

/// An element of a vector: how to make an empty one, copy one (the
/// `_copy` semantics: a new owner) and release one.
pub trait Element: Sized {
    /// The value of a slot of `wasm_xxx_vec_new_uninitialized`.
    fn empty() -> Self;
    /// A copy with its own ownership (`wasm_xxx_copy`).
    fn duplicate(&self) -> Self;
    /// Releases what the element owns (its `_delete`), leaving it empty.
    fn release(&mut self);
}

impl Element for std::ffi::c_char {
    fn empty() -> Self {
        0
    }
    fn duplicate(&self) -> Self {
        *self
    }
    fn release(&mut self) {}
}

impl<T: Clone> Element for Option<Box<T>> {
    fn empty() -> Self {
        None
    }
    fn duplicate(&self) -> Self {
        self.clone()
    }
    fn release(&mut self) {
        drop(self.take());
    }
}

/// The layout of every `wasm_xxx_vec_t`.
#[repr(C)]
pub struct CVec<T: Element> {
    /// Number of elements.
    pub size: usize,
    /// The elements (NULL when `size` is 0).
    pub data: *mut T,
}

impl<T: Element> CVec<T> {
    /// The empty vector `{0, NULL}`.
    pub fn empty() -> Self {
        CVec { size: 0, data: std::ptr::null_mut() }
    }

    /// A vector owning `v`'s elements.
    pub fn from_vec(v: Vec<T>) -> Self {
        if v.is_empty() {
            return CVec::empty();
        }
        let boxed = v.into_boxed_slice();
        let size = boxed.len();
        CVec { size, data: Box::into_raw(boxed).cast::<T>() }
    }

    /// A vector of `size` empty elements, or `None` if that much memory
    /// cannot be had.
    pub fn uninitialized(size: usize) -> Option<Self> {
        let mut v = Vec::new();
        v.try_reserve_exact(size).ok()?;
        v.extend((0..size).map(|_| T::empty()));
        Some(CVec::from_vec(v))
    }

    /// A non-owning view of `elems` (never dropped: wrap stays manual).
    pub fn view(elems: &mut [T]) -> ManuallyDrop<Self> {
        ManuallyDrop::new(CVec { size: elems.len(), data: elems.as_mut_ptr() })
    }

    /// The elements, or `None` for a non-empty vector with NULL data.
    pub fn as_slice(&self) -> Option<&[T]> {
        // SAFETY: a vector's `data` holds `size` live elements (the
        // standard's contract for every vector passed in, and true of
        // every vector made here).
        unsafe { ffi::slice(self.data, self.size) }
    }

    /// The elements mutably, as [`as_slice`](Self::as_slice).
    pub fn as_mut_slice(&mut self) -> Option<&mut [T]> {
        // SAFETY: as in `as_slice`; `&mut self` makes the access exclusive.
        unsafe { ffi::slice_mut(self.data, self.size) }
    }

    /// Takes the elements out, leaving the vector empty.
    pub fn take(&mut self) -> Vec<T> {
        let (data, size) = (self.data, self.size);
        if data.is_null() {
            self.size = 0;
            return Vec::new();
        }
        // Plain field writes: assigning a whole `CVec` would drop the old
        // value, which is this one.
        self.data = std::ptr::null_mut();
        self.size = 0;
        let slice = std::ptr::slice_from_raw_parts_mut(data, size);
        // SAFETY: an owned vector's data is a boxed slice of exactly
        // `size` elements made by `from_vec` (an `own` vector must come
        // from this library), given back here once: `self` is now empty.
        unsafe { Box::from_raw(slice) }.into_vec()
    }

    /// A deep copy (each element duplicated).
    pub fn duplicate(&self) -> Self {
        CVec::from_vec(self.as_slice().unwrap_or(&[]).iter().map(T::duplicate).collect())
    }
}

impl<T: Element> Clone for CVec<T> {
    fn clone(&self) -> Self {
        self.duplicate()
    }
}

impl<T: Element> Drop for CVec<T> {
    fn drop(&mut self) {
        for mut e in self.take() {
            e.release();
        }
    }
}

/// Declares a vector type and its five functions, all with the names the
/// standard gives them.
macro_rules! declare_vec {
    ($vec:ident, $elem:ty, $new_empty:ident, $new_uninit:ident, $new:ident, $copy:ident, $delete:ident) => {
        #[doc = concat!("`", stringify!($vec), "`.")]
        pub type $vec = $crate::vec::CVec<$elem>;

        #[doc = concat!("`", stringify!($new_empty), "`: writes the empty vector to `out`.")]
        ///
        /// # Safety
        ///
        /// `out` is NULL or writable.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $new_empty(out: *mut $vec) {
            // SAFETY: `out` is NULL or writable, per this function's contract.
            unsafe { $crate::ffi::write_out(out, $crate::vec::CVec::empty()) };
        }

        #[doc = concat!("`", stringify!($new_uninit), "`: a vector of `size` empty elements (empty if out of memory).")]
        ///
        /// # Safety
        ///
        /// `out` is NULL or writable.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $new_uninit(out: *mut $vec, size: usize) {
            let v = $crate::vec::CVec::uninitialized(size).unwrap_or_else(|| {
                $crate::error::set_last_error(format!("cannot allocate a vector of {size} elements"));
                $crate::vec::CVec::empty()
            });
            // SAFETY: `out` is NULL or writable, per this function's contract.
            unsafe { $crate::ffi::write_out(out, v) };
        }

        #[doc = concat!("`", stringify!($new), "`: a vector of `size` elements moved from `data` (ownership passes).")]
        ///
        /// # Safety
        ///
        /// `out` is NULL or writable; `data` holds `size` elements this
        /// call takes ownership of.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $new(out: *mut $vec, size: usize, data: *const $elem) {
            // SAFETY: `data` holds `size` elements, per the contract.
            let v = match unsafe { $crate::ffi::slice(data, size) } {
                // SAFETY: each element is read once, moving its ownership
                // here as the `own` parameter says; C no longer owns them.
                Some(s) => s.iter().map(|e| unsafe { std::ptr::read(e) }).collect(),
                None => Vec::new(),
            };
            // SAFETY: `out` is NULL or writable, per this function's contract.
            unsafe { $crate::ffi::write_out(out, $crate::vec::CVec::from_vec(v)) };
        }

        #[doc = concat!("`", stringify!($copy), "`: a deep copy of `src` into `out`.")]
        ///
        /// # Safety
        ///
        /// `out` is NULL or writable; `src` is NULL or a live vector.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $copy(out: *mut $vec, src: *const $vec) {
            // SAFETY: `src` is NULL or live, per the contract.
            let v = match unsafe { $crate::ffi::borrow(src, "the source vector") } {
                Some(src) => src.duplicate(),
                None => $crate::vec::CVec::empty(),
            };
            // SAFETY: `out` is NULL or writable, per this function's contract.
            unsafe { $crate::ffi::write_out(out, v) };
        }

        #[doc = concat!("`", stringify!($delete), "`: releases the elements and the vector, leaving it empty.")]
        ///
        /// # Safety
        ///
        /// `v` is NULL or a vector this library made (not yet deleted).
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $delete(v: *mut $vec) {
            // SAFETY: `v` is NULL or a live vector, per the contract.
            if let Some(v) = unsafe { $crate::ffi::borrow_mut(v, "the vector") } {
                for mut e in v.take() {
                    $crate::vec::Element::release(&mut e);
                }
            }
        }
    };
}

pub(crate) use declare_vec;

declare_vec!(
    wasm_byte_vec_t,
    std::ffi::c_char,
    wasm_byte_vec_new_empty,
    wasm_byte_vec_new_uninitialized,
    wasm_byte_vec_new,
    wasm_byte_vec_copy,
    wasm_byte_vec_delete
);

/// `wasm_name_t`: a byte vector holding a name.
pub type wasm_name_t = wasm_byte_vec_t;

/// A byte vector holding `bytes`.
pub fn bytes_vec(bytes: &[u8]) -> wasm_byte_vec_t {
    CVec::from_vec(bytes.iter().map(|b| *b as std::ffi::c_char).collect())
}

/// The bytes of a byte vector (`None` if its data is NULL but its size is not 0).
pub fn vec_bytes(v: &wasm_byte_vec_t) -> Option<&[u8]> {
    let s = v.as_slice()?;
    // SAFETY: `c_char` and `u8` have the same size and alignment, and any
    // bit pattern is valid for both.
    Some(unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), s.len()) })
}
