//! Gives back to the system the memory a burst left free in the
//! allocator. A storm of connections (10,000 sockets reconnecting after a
//! deploy) allocates request buffers and transient state by the thousand
//! between the long-lived state of the connections that stay; once freed,
//! glibc keeps those pages in its arenas, so the resident size stays at the
//! storm's high-water mark — measured at twice the live heap of 10,000 idle
//! WebSockets. `malloc_trim(0)` returns the whole free pages inside the
//! arenas. It runs on a blocking thread, only when a sizeable share of the
//! arenas is free, at most once a second.

use super::Operations;
use std::rc::Rc;
use std::time::Duration;

/// How often the allocator's free memory is looked at.
const CHECK_EVERY: Duration = Duration::from_millis(250);
/// How long after a trim the next look waits.
const REST_AFTER_TRIM: Duration = Duration::from_secs(1);
/// Free bytes in the arenas below which nothing is worth giving back.
const MIN_FREE: usize = 16 << 20;

/// Shard 0: trims the allocator whenever a burst left much of it free.
pub async fn give_back_forever(ops: Rc<Operations>) {
    loop {
        glommio::timer::sleep(CHECK_EVERY).await;
        if ops.is_draining() {
            return;
        }
        let trimmed = glommio::executor().spawn_blocking(trim_if_worth_it).await;
        if let Some(free) = trimmed {
            tracing::debug!(free_bytes = free, "freed allocator memory given back");
            glommio::timer::sleep(REST_AFTER_TRIM).await;
        }
    }
}

/// Trims when at least [`MIN_FREE`] bytes and a third of the arenas are
/// free; answers the free bytes it found then.
fn trim_if_worth_it() -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let info = unsafe { libc::mallinfo2() };
        let (free, used) = (info.fordblks, info.uordblks);
        if free >= MIN_FREE && free > used / 2 {
            // SAFETY: malloc_trim only returns free pages to the system.
            unsafe { libc::malloc_trim(0) };
            return Some(free);
        }
    }
    None
}
