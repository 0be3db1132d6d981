//! A Lambda worker's lease on its free slots (in Redis), so that a question wakes another
//! invocation only when no running one has room.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chat_core::Store;
use tokio::sync::Semaphore;

/// A Lambda worker's lease on its free slots, renewed in the background while the worker takes
/// entries. Renewal and release hold one lock, so no renewal lands after a release.
pub(crate) struct Lease {
    taking: Arc<tokio::sync::Mutex<bool>>,
    /// Another running invocation with a free slot takes new entries (the last renewal said).
    yielding: Arc<AtomicBool>,
    store: Store,
    id: String,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    pub(crate) fn start(store: Store, consumer: &str, lease: Duration, permits: Arc<Semaphore>) -> Lease {
        let taking = Arc::new(tokio::sync::Mutex::new(true));
        let yielding = Arc::new(AtomicBool::new(false));
        // Each invocation is its own holder, even when Lambda reuses the process.
        let id = format!("{consumer}-{}", uuid_like());
        let renewer = {
            let (store, id, taking, yielding) = (store.clone(), id.clone(), taking.clone(), yielding.clone());
            tokio::spawn(async move {
                loop {
                    {
                        let taking = taking.lock().await;
                        if *taking {
                            match store.renew_worker_lease(&id, lease, permits.available_permits()).await {
                                Ok(yields) => yielding.store(yields, Ordering::Relaxed),
                                Err(error) => tracing::warn!(error = %error, "could not renew the worker's lease"),
                            }
                        }
                    }
                    tokio::time::sleep((lease / 3).min(Duration::from_millis(250))).await;
                }
            })
        };
        Lease { taking, yielding, store, id, renewer }
    }

    /// Whether another running invocation with a free slot takes new entries: this one then
    /// finishes the replies it holds and ends.
    pub(crate) fn yielding(&self) -> bool {
        self.yielding.load(Ordering::Relaxed)
    }

    /// Takes no more entries: the lease goes, and new questions wake another invocation.
    pub(crate) async fn release(&self) {
        let mut taking = self.taking.lock().await;
        *taking = false;
        self.yielding.store(false, Ordering::Relaxed);
        if let Err(error) = self.store.release_worker_lease(&self.id).await {
            // It expires by itself within WORKER_LEASE_SECONDS.
            tracing::warn!(error = %error, "could not release the worker's lease");
        }
    }

    /// Takes entries again (one arrived after the lease was given up).
    pub(crate) async fn resume(&self) {
        *self.taking.lock().await = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// A process-unique suffix for a lease holder.
fn uuid_like() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{nanos:x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
