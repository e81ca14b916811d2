//! Where a segment's bytes live.
//!
//! Normally: a `MAP_SHARED` mapping of the segment's file, with futex wait/wake on its words.
//! Under `--cfg loom`: a model the loom checker can see — every word is a loom atomic and
//! every other byte a loom `UnsafeCell` (so a payload written while a reader copies it is a
//! reported data race), created on first use; a futex is a loom condvar. The ring code above
//! runs unchanged on either (see `tests/loom.rs`).

#[cfg(not(loom))]
pub(crate) use mapped::Memory;
#[cfg(loom)]
pub(crate) use model::Memory;

#[cfg(not(loom))]
mod mapped {
    use std::ptr::NonNull;
    use std::sync::atomic::{AtomicU32, AtomicU64};
    use std::time::Duration;

    /// A shared mapping of a segment file.
    pub(crate) struct Memory {
        base: NonNull<u8>,
        len: usize,
    }

    // SAFETY: the mapping is shared memory accessed only through atomics and raw copies whose
    // synchronisation is the ring protocol's; the pointer itself may move between threads.
    unsafe impl Send for Memory {}
    // SAFETY: as above; `&Memory` hands out only atomics and bounds-checked raw copies.
    unsafe impl Sync for Memory {}

    impl Memory {
        /// Maps `len` bytes of the open shared-memory file `fd`.
        pub(crate) fn map(fd: libc::c_int, len: usize) -> std::io::Result<Memory> {
            // SAFETY: a fresh shared mapping of an open descriptor; the kernel picks the address.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(std::io::Error::last_os_error());
            }
            Ok(Memory {
                base: NonNull::new(p.cast()).expect("mmap never returns null on success"),
                len,
            })
        }

        pub(crate) fn len(&self) -> usize {
            self.len
        }

        /// # Safety
        /// `offset` must be 8-aligned and `offset + 8 <= len` (checked by the caller).
        #[inline]
        pub(crate) unsafe fn u64_at(&self, offset: usize) -> &AtomicU64 {
            // SAFETY: in bounds and aligned (caller; the base is page aligned); the mapping
            // lives as long as `self`; AtomicU64 has the layout of u64.
            unsafe { &*(self.base.as_ptr().add(offset) as *const AtomicU64) }
        }

        /// # Safety
        /// `offset` must be 4-aligned and `offset + 4 <= len` (checked by the caller).
        #[inline]
        pub(crate) unsafe fn u32_at(&self, offset: usize) -> &AtomicU32 {
            // SAFETY: in bounds and aligned (caller); lives as long as `self`.
            unsafe { &*(self.base.as_ptr().add(offset) as *const AtomicU32) }
        }

        /// # Safety
        /// `offset + src.len() <= len` (checked by the caller), and the ring protocol gives
        /// the caller exclusive use of the range.
        #[inline]
        pub(crate) unsafe fn write_bytes(&self, offset: usize, src: &[u8]) {
            // SAFETY: as the caller promises.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    src.as_ptr(),
                    self.base.as_ptr().add(offset),
                    src.len(),
                )
            };
        }

        /// # Safety
        /// `offset + dst.len() <= len` (checked by the caller).
        #[inline]
        pub(crate) unsafe fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
            // SAFETY: as the caller promises; producers stay out of the range per the ring
            // protocol, or (overwrite, queue races) the copy is validated before use.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.base.as_ptr().add(offset),
                    dst.as_mut_ptr(),
                    dst.len(),
                )
            };
        }

        /// # Safety
        /// `offset` must be in bounds and hold a `pthread_mutex_t`.
        pub(crate) unsafe fn ptr(&self, offset: usize) -> *mut u8 {
            // SAFETY: in bounds (caller).
            unsafe { self.base.as_ptr().add(offset) }
        }

        /// Sleeps while `word` holds `expected`, woken by wakes meeting `bits` (see
        /// `futex::futex_wait_bits`).
        pub(crate) fn futex_wait_bits(
            &self,
            word: &AtomicU32,
            expected: u32,
            t: Option<Duration>,
            bits: u32,
        ) {
            crate::futex::futex_wait_bits(word, expected, t, bits)
        }

        /// Wakes every sleeper on `word`.
        pub(crate) fn futex_wake_all(&self, word: &AtomicU32) {
            crate::futex::futex_wake_all(word)
        }

        /// Wakes the sleepers on `word` whose bits meet `bits`.
        pub(crate) fn futex_wake_bits(&self, word: &AtomicU32, bits: u32) {
            crate::futex::futex_wake_bits(word, bits)
        }
    }

    impl Drop for Memory {
        fn drop(&mut self) {
            // SAFETY: `base`/`len` are exactly what mmap returned; nothing borrows them any
            // more (every borrow is tied to `&self`).
            unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
        }
    }
}

#[cfg(loom)]
mod model {
    use std::collections::HashMap;
    use std::time::Duration;

    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{AtomicU32, AtomicU64};
    use loom::sync::{Condvar, Mutex};

    /// A segment modelled for loom.
    pub(crate) struct Memory {
        len: usize,
        // std::sync::Mutex: bookkeeping only, invisible to the model.
        u64s: std::sync::Mutex<HashMap<usize, Box<AtomicU64>>>,
        u32s: std::sync::Mutex<HashMap<usize, Box<AtomicU32>>>,
        bytes: std::sync::Mutex<HashMap<usize, Box<UnsafeCell<u8>>>>,
        futex: Mutex<()>,
        woken: Condvar,
    }

    fn cell<T>(
        map: &std::sync::Mutex<HashMap<usize, Box<T>>>,
        at: usize,
        new: impl FnOnce() -> T,
    ) -> &T {
        let mut m = map.lock().unwrap();
        let b = m.entry(at).or_insert_with(|| Box::new(new()));
        let p: *const T = &**b;
        // SAFETY: boxes are never removed or moved before the map is dropped with `Memory`,
        // so the referent lives as long as the `&Memory` the caller borrowed it through.
        unsafe { &*p }
    }

    impl Memory {
        /// A zeroed model of `len` bytes whose data area starts at `data`. Every location
        /// is created here, before any thread starts: loom counts creation as a write, which
        /// every later access must happen after.
        pub(crate) fn new(len: usize, data: usize) -> Memory {
            let m = Memory {
                len,
                u64s: Default::default(),
                u32s: Default::default(),
                bytes: Default::default(),
                futex: Mutex::new(()),
                woken: Condvar::new(),
            };
            for at in (0..len).step_by(8) {
                cell(&m.u64s, at, || AtomicU64::new(0));
            }
            for at in (0..data).step_by(4) {
                cell(&m.u32s, at, || AtomicU32::new(0));
            }
            // Header bytes read one at a time (kind, sync, policy), and the data area.
            for at in (16..32).chain(data..len) {
                cell(&m.bytes, at, || UnsafeCell::new(0));
            }
            m
        }

        /// There are no shared-memory files in a model.
        pub(crate) fn map(_fd: libc::c_int, _len: usize) -> std::io::Result<Memory> {
            Err(std::io::Error::other(
                "no shared memory under loom; use Channel::model",
            ))
        }

        pub(crate) fn len(&self) -> usize {
            self.len
        }

        /// # Safety
        /// Always safe here; `unsafe` only to match the mapped backend.
        pub(crate) unsafe fn u64_at(&self, offset: usize) -> &AtomicU64 {
            cell(&self.u64s, offset, || AtomicU64::new(0))
        }

        /// # Safety
        /// Always safe here; `unsafe` only to match the mapped backend.
        pub(crate) unsafe fn u32_at(&self, offset: usize) -> &AtomicU32 {
            cell(&self.u32s, offset, || AtomicU32::new(0))
        }

        /// # Safety
        /// Always safe here; loom reports racing accesses.
        pub(crate) unsafe fn write_bytes(&self, offset: usize, src: &[u8]) {
            for (i, b) in src.iter().enumerate() {
                // SAFETY: loom checks that no other access races this one.
                cell(&self.bytes, offset + i, || UnsafeCell::new(0))
                    .with_mut(|p| unsafe { *p = *b });
            }
        }

        /// # Safety
        /// Always safe here; loom reports racing accesses.
        pub(crate) unsafe fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
            for (i, d) in dst.iter_mut().enumerate() {
                // SAFETY: loom checks that no other access races this one.
                *d = cell(&self.bytes, offset + i, || UnsafeCell::new(0)).with(|p| unsafe { *p });
            }
        }

        /// A futex as a condvar: the compare and the sleep are atomic with respect to wakers
        /// because both hold the lock. A timed wait is modelled as a yield (it may time out).
        pub(crate) fn futex_wait(&self, word: &AtomicU32, expected: u32, t: Option<Duration>) {
            let guard = self.futex.lock().unwrap();
            if word.load(std::sync::atomic::Ordering::Relaxed) != expected {
                return;
            }
            if t.is_some() {
                drop(guard);
                loom::thread::yield_now();
            } else {
                drop(self.woken.wait(guard).unwrap());
            }
        }

        /// Wakes every sleeper.
        pub(crate) fn futex_wake_all(&self, _word: &AtomicU32) {
            let _guard = self.futex.lock().unwrap();
            self.woken.notify_all();
        }

        /// The model has no wake bits: every sleeper wakes, and every sleeper re-checks.
        pub(crate) fn futex_wait_bits(
            &self,
            word: &AtomicU32,
            expected: u32,
            t: Option<Duration>,
            _bits: u32,
        ) {
            self.futex_wait(word, expected, t)
        }

        /// As `futex_wake_all` (see `futex_wait_bits`).
        pub(crate) fn futex_wake_bits(&self, word: &AtomicU32, _bits: u32) {
            self.futex_wake_all(word)
        }
    }
}
