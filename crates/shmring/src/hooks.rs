//! Test hooks (feature `test-hooks`): named points in the protocol where a process can be
//! made to stop itself, so that a test can SIGKILL it exactly there.
//!
//! `SHMRING_HOOK=<point>[:<nth>]` makes the `nth` (default 1st) pass through `<point>` raise
//! SIGSTOP on the calling process. The points:
//!
//! | point           | where                                                              |
//! |-----------------|--------------------------------------------------------------------|
//! | `after_claim`   | a producer won its claim (CAS or under the mutex), wrote nothing    |
//! | `mid_payload`   | a producer marked its record claimed and wrote half the payload     |
//! | `before_commit` | a producer wrote the whole payload, not yet the commit              |
//! | `holding_mutex` | semaphore mode: a producer holds the robust mutex, claimed nothing  |
//! | `mid_read`      | a reader copied records out but has not yet moved its cursor/head  |
//! | `judged_dead`   | a reader judged a claim dead and has not yet skipped it            |
//! | `take_published`| at-least-once: a consumer published its take, has not got `taker` |
//! | `take_acquired` | at-least-once: a consumer's take holds `taker`, not yet completed  |
//! | `after_take`    | at-least-once: a consumer's take succeeded, nothing delivered yet  |
//! | `mid_ack`       | at-least-once: a consumer moved its `held`, not yet woke producers |
//! | `adopted`       | at-least-once: a consumer took a range over, copied nothing yet    |
//!
//! Without the feature, `hook!` expands to nothing: zero cost.

#[cfg(feature = "test-hooks")]
pub(crate) fn hit(point: &'static str) {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let target = TARGET.get_or_init(|| {
        let v = std::env::var("SHMRING_HOOK").ok()?;
        let (name, nth) = match v.split_once(':') {
            Some((n, k)) => (n.to_owned(), k.parse().unwrap_or(1)),
            None => (v, 1),
        };
        Some((name, nth.max(1)))
    });
    if let Some((name, nth)) = target
        && name == point
        && SEEN.fetch_add(1, Ordering::Relaxed) + 1 == *nth
    {
        // SAFETY: raise(2) with a valid signal number has no memory-safety preconditions.
        unsafe { libc::raise(libc::SIGSTOP) };
    }
}

/// Marks a named test point (see the module docs).
macro_rules! hook {
    ($point:literal) => {
        #[cfg(feature = "test-hooks")]
        $crate::hooks::hit($point);
    };
}
pub(crate) use hook;
