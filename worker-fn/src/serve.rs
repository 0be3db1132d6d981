//! The one loop of both modes: a Lambda invocation ([`Worker::drain`]) and a daemon
//! ([`Worker::run`]) read the stream as a consumer group and answer up to `WORKER_CONCURRENCY`
//! entries at once; a slot that frees takes the next entry at once.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chat_core::{Store, StoreError, StreamEntry};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::lease::Lease;
use crate::worker::Worker;

impl Worker {
    /// Lambda mode: answers entries (a dead worker's first, then new ones) as they come, until
    /// the stream has stayed empty with no reply in flight for `WORKER_LINGER_MS`, or until too
    /// little of the invocation is left for another reply (`deadline`, minus `MAX_REPLY_SECONDS`
    /// and a margin); then finishes the replies in flight. While it takes entries (lingering
    /// included) it holds a lease on its free slots, so questions asked meanwhile wake no other
    /// invocation; while another running invocation with a free slot takes them, it takes none and
    /// ends once its replies are done. Returns how many entries it processed.
    ///
    /// `reader` is a connection of its own for the stream reads, which block for a moment while
    /// replies are in flight (a multiplexed connection would hold their commands up meanwhile):
    /// [`Store::connect_for_blocking_reads`] with [`INVOCATION_READ_BLOCK`].
    pub async fn drain(self: &Arc<Self>, reader: &Store, deadline: Option<Instant>) -> Result<usize, StoreError> {
        let stop_taking = deadline.map(|at| {
            let keep = self.config.worker.max_reply + self.config.worker.deadline_margin();
            at.checked_sub(keep).unwrap_or_else(Instant::now)
        });
        self.serve(reader, Mode::Invocation { stop_taking }, std::future::pending()).await
    }

    /// Daemon mode: blocks on the stream and answers entries as they come, up to
    /// `WORKER_CONCURRENCY` at once, reclaiming stale entries periodically, until `shutdown`
    /// resolves; then waits (30 s at most) for replies in progress.
    pub async fn run(self: Arc<Self>, reader: Store, shutdown: impl Future<Output = ()>) {
        if let Err(error) = self.serve(&reader, Mode::Daemon, shutdown).await {
            tracing::error!(error = %error, "the worker stopped");
        }
        tracing::info!("worker stopped");
    }

    /// The one loop of both modes: a slot that frees takes the next entry at once.
    async fn serve(
        self: &Arc<Self>,
        reader: &Store,
        mode: Mode,
        shutdown: impl Future<Output = ()>,
    ) -> Result<usize, StoreError> {
        tokio::pin!(shutdown);
        // What the provider serves, for the web app's model menu: listed as a worker starts (when
        // no worker did within the hour), beside the work; never waited for.
        let worker = self.clone();
        drop(tokio::spawn(async move { worker.list_provider_models().await }));
        let settings = &self.config.worker;
        let consumer = settings.consumer.clone();
        let permits = Arc::new(Semaphore::new(settings.concurrency));
        let processed = Arc::new(AtomicUsize::new(0));
        let claim_every = match mode {
            Mode::Daemon => (settings.claim_idle / 2).max(Duration::from_millis(100)),
            // An invocation lives minutes at most: it looks for a dead worker's entries as it starts.
            Mode::Invocation { .. } => Duration::MAX,
        };
        let lease = match mode {
            Mode::Invocation { .. } => {
                Some(Lease::start(self.store.clone(), &consumer, settings.lease, permits.clone()))
            }
            Mode::Daemon => None,
        };
        let mut next_claim = Instant::now();
        let mut failures: u32 = 0;
        // Since when an invocation has had nothing queued and nothing in flight.
        let mut idle_since: Option<Instant> = None;
        // Created once, and again after a failure (a Redis that restarted without its data).
        let mut group_ready = false;
        loop {
            if let Mode::Invocation { stop_taking: Some(at) } = mode {
                if Instant::now() >= at {
                    tracing::info!("too little of the invocation left for another reply; finishing those in flight");
                    // The lease goes first; then what was queued while it was held (a question
                    // that saw this worker's free slots woke no one else) is still taken.
                    if let Some(lease) = &lease {
                        lease.release().await;
                    }
                    let room = permits.available_permits();
                    if room > 0 {
                        match reader.read_new(&consumer, room, None).await {
                            Ok(entries) => self.start_all(entries, None, &permits, &processed).await,
                            Err(error) => {
                                tracing::warn!(error = %error, "last stream read failed; the schedule reads it")
                            }
                        }
                    }
                    break;
                }
            }
            let first_permit = tokio::select! {
                _ = &mut shutdown => break,
                permit = permits.clone().acquire_owned() => permit.expect("semaphore open"),
            };
            let in_flight = settings.concurrency - 1 - permits.available_permits();
            if in_flight > 0 {
                idle_since = None;
            }
            // Another running invocation with a free slot takes new entries: this one finishes
            // what it holds and ends, so steady traffic gathers in one invocation.
            let yielding = lease.as_ref().is_some_and(Lease::yielding);
            if yielding && in_flight > 0 {
                drop(first_permit);
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(YIELDING_POLL) => continue,
                }
            }
            // An invocation with nothing to do lingers a moment for the next entry, holding its
            // lease: with steady traffic the next question finds it instead of waking another.
            let linger_left = match (mode, in_flight) {
                (Mode::Invocation { .. }, 0) if !yielding => {
                    settings.linger.saturating_sub(idle_since.get_or_insert_with(Instant::now).elapsed())
                }
                _ => Duration::ZERO,
            };
            let block = match mode {
                Mode::Daemon => Some(settings.block.min(claim_every)),
                // With replies in flight (a slot frees meanwhile anyway), or while lingering.
                Mode::Invocation { stop_taking } if in_flight > 0 || !linger_left.is_zero() => {
                    let left = stop_taking.map_or(Duration::MAX, |at| at.saturating_duration_since(Instant::now()));
                    let wait =
                        if in_flight > 0 { INVOCATION_READ_BLOCK } else { linger_left.min(INVOCATION_READ_BLOCK) };
                    Some(wait.min(left).max(Duration::from_millis(1)))
                }
                Mode::Invocation { .. } => None,
            };
            let read = async {
                if yielding {
                    return Ok(Vec::new());
                }
                if !group_ready {
                    self.store.ensure_group().await?;
                    group_ready = true;
                }
                if Instant::now() >= next_claim {
                    next_claim = Instant::now().checked_add(claim_every).unwrap_or_else(far_future);
                    // As often as stale entries are looked for: the stream sheds what is done.
                    if let Err(error) = self.store.trim_acknowledged().await {
                        tracing::warn!(error = %error, "could not trim the request stream");
                    }
                    let stale =
                        self.store.claim_stale(&consumer, settings.claim_idle, 1 + permits.available_permits()).await?;
                    if !stale.is_empty() {
                        return Ok(stale);
                    }
                }
                reader.read_new(&consumer, 1 + permits.available_permits(), block).await
            };
            let entries = tokio::select! {
                _ = &mut shutdown => break,
                entries = read => entries,
            };
            let mut entries = match entries {
                Ok(entries) => {
                    failures = 0;
                    entries
                }
                Err(error) => {
                    failures += 1;
                    group_ready = false;
                    if failures > 5 && matches!(mode, Mode::Invocation { .. }) {
                        // The schedule invokes a worker again within a minute.
                        drop(first_permit);
                        finish(&permits, settings.concurrency, None).await;
                        if let Some(lease) = lease {
                            lease.release().await;
                        }
                        return Err(error);
                    }
                    let backoff = Duration::from_millis(100 * 2u64.pow(failures.min(5)));
                    tracing::warn!(error = %error, backoff_ms = backoff.as_millis() as u64, "stream read failed; retrying");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            if !entries.is_empty() {
                idle_since = None;
            }
            if entries.is_empty() && in_flight == 0 && !linger_left.is_zero() {
                // Still lingering: look again.
                continue;
            }
            if entries.is_empty() && in_flight == 0 {
                if let (Mode::Invocation { .. }, Some(lease)) = (mode, &lease) {
                    // Nothing queued, nothing in flight: give the lease up, then look once more,
                    // so that a question queued meanwhile is either read here or wakes a worker.
                    lease.release().await;
                    entries = reader.read_new(&consumer, 1 + permits.available_permits(), None).await?;
                    if entries.is_empty() {
                        break;
                    }
                    lease.resume().await;
                }
            }
            self.start_all(entries, Some(first_permit), &permits, &processed).await;
        }
        if let Some(lease) = &lease {
            lease.release().await;
        }
        let wait = match mode {
            // Each reply ends within MAX_REPLY_SECONDS, before the deadline.
            Mode::Invocation { .. } => None,
            // After 30 s the rest are left to a takeover.
            Mode::Daemon => Some(Duration::from_secs(30)),
        };
        finish(&permits, settings.concurrency, wait).await;
        Ok(processed.load(Ordering::Relaxed))
    }
}

impl Worker {
    /// Answers each entry in a task of its own, holding a slot (`first`, then one from `permits`
    /// each) until it ends.
    async fn start_all(
        self: &Arc<Self>,
        entries: Vec<StreamEntry>,
        first: Option<tokio::sync::OwnedSemaphorePermit>,
        permits: &Arc<Semaphore>,
        processed: &Arc<AtomicUsize>,
    ) {
        let mut first = first;
        for entry in entries {
            let permit = match first.take() {
                Some(permit) => permit,
                None => permits.clone().acquire_owned().await.expect("semaphore open"),
            };
            let worker = self.clone();
            let processed = processed.clone();
            tokio::spawn(async move {
                match worker.process(&entry).await {
                    Ok(_) => {
                        processed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => tracing::error!(entry_id = entry.entry_id, error = %error, "entry left pending"),
                }
                drop(permit);
            });
        }
    }
}

/// The longest a Lambda invocation's stream read waits while its replies are in flight.
pub const INVOCATION_READ_BLOCK: Duration = Duration::from_millis(500);

/// How often a yielding invocation looks whether its replies ended (the lease renews as often).
const YIELDING_POLL: Duration = Duration::from_millis(250);

/// How long the loop runs.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Until shutdown.
    Daemon,
    /// A Lambda invocation: until the stream is empty, taking no new entry after `stop_taking`.
    Invocation { stop_taking: Option<Instant> },
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// Waits until every reply in flight ended (all permits back), or `within`.
async fn finish(permits: &Semaphore, concurrency: usize, within: Option<Duration>) {
    let all = permits.acquire_many(concurrency as u32);
    match within {
        None => drop(all.await),
        Some(limit) => {
            if tokio::time::timeout(limit, all).await.is_err() {
                tracing::warn!("stopping with replies still in flight; another worker takes them over");
            }
        }
    }
}
