//! Password hashing on its own bounded pool, so a flood of logins cannot
//! starve database work.
//!
//! argon2id costs tens of milliseconds of CPU and 19 MiB per hash. On the
//! shards' blocking pools, a login flood filled every blocking thread and
//! each database call queued behind hashes (wallet writes went from 1 ms to
//! 815 ms). Here hashing has `auth.hash_threads` threads of its own for the
//! whole node, running at a lower CPU priority (nice 5) than the shards and their
//! database threads, behind a queue of `auth.hash_queue` jobs: a job that
//! does not fit is refused at once (503) instead of waiting.
//!
//! The queue is the one structure shared by every shard here; it is touched
//! only by registrations and logins, never by the request path of anything
//! else, and a refusal costs one failed `try_send`.

use super::ApiError;
use futures_channel::oneshot;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// How much the hash threads yield to the shards (Linux nice value): at 5
/// a contended core gives them about a quarter of the time the shards get,
/// so a flood of logins cannot crowd out database work; a higher value made
/// logins crawl on a host busy with other work (nice 10: a tenth), past the
/// shutdown grace of in-flight requests in a stress run.
const HASH_NICENESS: i32 = 5;

/// A handle to the node's hashing pool; cheap to clone, one per shard.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: SyncSender<Job>,
}

impl PasswordHasher {
    /// Starts `threads` hashing threads behind a queue of `queue` jobs.
    pub fn start(threads: usize, queue: usize) -> Result<PasswordHasher, String> {
        let (jobs, incoming) = sync_channel::<Job>(queue);
        let incoming = Arc::new(Mutex::new(incoming));
        for i in 0..threads.max(1) {
            let incoming = incoming.clone();
            std::thread::Builder::new()
                .name(format!("hash-{i}"))
                .spawn(move || {
                    // SAFETY: setpriority on this thread's own id changes
                    // only its scheduling priority; a failure leaves it at
                    // the normal priority, which is still correct.
                    unsafe {
                        libc::setpriority(
                            libc::PRIO_PROCESS,
                            libc::gettid() as libc::id_t,
                            HASH_NICENESS,
                        );
                    }
                    loop {
                        // The lock is held only while taking one job.
                        let job = match incoming.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // every sender is gone: the node stops
                        }
                    }
                })
                .map_err(|e| format!("cannot start hashing thread: {e}"))?;
        }
        Ok(PasswordHasher { jobs })
    }

    /// Runs `f` (a hash or a verification) on the pool; 503 at once when
    /// the pool's queue is full.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(ApiError::unavailable(
                    "too many logins in progress; retry in a moment",
                ))
            }
            Err(TrySendError::Disconnected(_)) => return Err(ApiError::internal()),
        }
        rx.await.map_err(|_| ApiError::internal())
    }
}
