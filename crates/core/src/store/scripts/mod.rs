//! One struct per script call, written once beside the script's name: the script's keys, then
//! its arguments, as named fields. [`super::lua`] loads the scripts; each struct's `invocation`
//! lays its fields out in the order the script binds them (`local session, order = KEYS[1],
//! KEYS[2]`, and so on), and a field bears the name the script gives it, so a call site fills
//! names and never counts positions.
//!
//! The modules follow the store's: each holds the scripts its namesake calls.

mod connections;
mod conversations;
mod limits;
mod queue;
mod reply;
mod session;

pub(super) use connections::{Bind, Frame};
pub(super) use conversations::{
    ConfigureConversation, CreateConversation, DeleteConversation, SearchPage, TitleConversation,
};
pub(super) use limits::{Count, CountSession};
pub(super) use queue::{Leases, TrimAcknowledged, WakeNeeded, WorkerLease, WorkerRelease};
pub(super) use reply::{
    Accept, AppendDelta, BeginReply, RegenerateReply, ReleaseLock, RenewLock, StoreReply, SwitchVersion,
};
pub(super) use session::{CreateSession, Read, Revoke, Snapshot, TrimSession};
