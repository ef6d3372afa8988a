//! A raw pointer that may cross threads.

use std::ptr::NonNull;

/// A non-null raw pointer that is `Send` and `Sync`: for handles that
/// remember where a runtime object lives (a function record, a code
/// address) and travel with values that are themselves `Send + Sync`.
///
/// Holding or copying one is always safe; reading through it needs
/// `unsafe` and whatever synchronization the pointee's owner provides.
#[repr(transparent)]
pub struct SendSyncPtr<T: ?Sized>(NonNull<T>);

// SAFETY: the wrapper only carries an address; every access through it
// is an `unsafe` dereference whose caller upholds the pointee's own
// thread-safety rules.
unsafe impl<T: ?Sized> Send for SendSyncPtr<T> {}
// SAFETY: as for `Send`: sharing the address shares no access.
unsafe impl<T: ?Sized> Sync for SendSyncPtr<T> {}

impl<T: ?Sized> SendSyncPtr<T> {
    /// Wraps `ptr`.
    pub fn new(ptr: NonNull<T>) -> Self {
        SendSyncPtr(ptr)
    }

    /// The pointer.
    pub fn as_non_null(self) -> NonNull<T> {
        self.0
    }
}

impl<T: ?Sized> Clone for SendSyncPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for SendSyncPtr<T> {}

impl<T: ?Sized> PartialEq for SendSyncPtr<T> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(self.0.as_ptr(), other.0.as_ptr())
    }
}

impl<T: ?Sized> Eq for SendSyncPtr<T> {}

/// Hashes the address alone (as `PartialEq` compares it), so the wrapper
/// can key a map of addresses.
impl<T: ?Sized> std::hash::Hash for SendSyncPtr<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.as_ptr().cast::<()>().hash(state)
    }
}

impl<T: ?Sized> std::fmt::Debug for SendSyncPtr<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:p}", self.0.as_ptr())
    }
}
