//! The request stream's and the workers' leases' scripts, which `store/queue.rs` calls.

use redis::ScriptInvocation;

use crate::store::lua::{TRIM_ACKNOWLEDGED, WAKE_NEEDED, WORKER_LEASE, WORKER_RELEASE};

/// `trim_acknowledged.lua`: trims the stream of entries the group is done with.
pub(in crate::store) struct TrimAcknowledged<'a> {
    pub stream: &'a str,
    pub group: &'a str,
    /// Most entries kept.
    pub max: usize,
}

impl TrimAcknowledged<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let mut call = TRIM_ACKNOWLEDGED.prepare_invoke();
        call.key(self.stream).arg(self.group).arg(self.max);
        call
    }
}

/// The running workers' keys: their leases (worker id -> expiry ms) and free slots (worker id ->
/// slots), one slot.
pub(in crate::store) struct Leases<'a> {
    pub leases: &'a str,
    pub free: &'a str,
}

/// `worker_lease.lua`: renews a worker's lease on its free slots; answers whether it yields.
pub(in crate::store) struct WorkerLease<'a> {
    pub keys: Leases<'a>,
    pub id: &'a str,
    pub lease_ms: u64,
    pub free_slots: usize,
}

impl WorkerLease<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let mut call = WORKER_LEASE.prepare_invoke();
        call.key(self.keys.leases).key(self.keys.free).arg(self.id).arg(self.lease_ms).arg(self.free_slots);
        call
    }
}

/// `worker_release.lua`: gives a worker's lease up.
pub(in crate::store) struct WorkerRelease<'a> {
    pub keys: Leases<'a>,
    pub id: &'a str,
}

impl WorkerRelease<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let mut call = WORKER_RELEASE.prepare_invoke();
        call.key(self.keys.leases).key(self.keys.free).arg(self.id);
        call
    }
}

/// `wake_needed.lua`: whether a new entry needs a worker woken (a slot found is taken).
pub(in crate::store) struct WakeNeeded<'a> {
    pub keys: Leases<'a>,
}

impl WakeNeeded<'_> {
    pub(in crate::store) fn invocation(&self) -> ScriptInvocation<'static> {
        let mut call = WAKE_NEEDED.prepare_invoke();
        call.key(self.keys.leases).key(self.keys.free);
        call
    }
}
