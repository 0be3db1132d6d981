//! The store's Lua scripts, one `.lua` file each beside this module, compiled once per process.
//!
//! Every script opens, after its header comment, by binding its KEYS and ARGV to names
//! (`local session, order = KEYS[1], KEYS[2]`), and its body uses only the names. The call of each
//! script is one struct of [`super::scripts`], whose fields bear the same names.
//!
//! Every script may call the helpers of `lua/helpers.lua`. They are joined onto the script's first
//! line (their comment lines dropped), so a line number in a Redis error is the script file's own.

use std::sync::LazyLock;

use redis::Script;

const HELPERS: &str = include_str!("lua/helpers.lua");

/// The helpers as one line: comment lines dropped, the rest joined by spaces.
fn helpers_on_one_line() -> String {
    let mut joined = String::new();
    for line in HELPERS.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("--")) {
        joined.push_str(line);
        joined.push(' ');
    }
    joined
}

fn with_helpers(script: &str) -> Script {
    Script::new(&format!("{}{script}", helpers_on_one_line()))
}

// `Script` hashes its source once; EVALSHA falls back to EVAL after a Redis restart.
pub(super) static ACCEPT: LazyLock<Script> = LazyLock::new(|| with_helpers(include_str!("lua/accept.lua")));
pub(super) static BEGIN_REPLY: LazyLock<Script> = LazyLock::new(|| with_helpers(include_str!("lua/begin_reply.lua")));
pub(super) static APPEND_DELTA: LazyLock<Script> = LazyLock::new(|| with_helpers(include_str!("lua/append_delta.lua")));
pub(super) static STORE_REPLY: LazyLock<Script> = LazyLock::new(|| with_helpers(include_str!("lua/store_reply.lua")));
pub(super) static REGENERATE: LazyLock<Script> = LazyLock::new(|| with_helpers(include_str!("lua/regenerate.lua")));
pub(super) static RENEW_LOCK: LazyLock<Script> = LazyLock::new(|| with_helpers(include_str!("lua/renew_lock.lua")));
pub(super) static RELEASE_LOCK: LazyLock<Script> = LazyLock::new(|| with_helpers(include_str!("lua/release_lock.lua")));
pub(super) static READ: LazyLock<Script> = LazyLock::new(|| with_helpers(include_str!("lua/read.lua")));
pub(super) static SNAPSHOT: LazyLock<Script> = LazyLock::new(|| with_helpers(include_str!("lua/snapshot.lua")));
pub(super) static COUNT_SESSION: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("lua/count_session.lua")));
pub(super) static COUNT: LazyLock<Script> = LazyLock::new(|| with_helpers(include_str!("lua/count.lua")));
pub(super) static CREATE_SESSION: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("lua/create_session.lua")));
pub(super) static FRAME: LazyLock<Script> = LazyLock::new(|| with_helpers(include_str!("lua/frame.lua")));
pub(super) static CREATE_CONVERSATION: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("lua/create_conversation.lua")));
pub(super) static TRIM_SESSION: LazyLock<Script> = LazyLock::new(|| with_helpers(include_str!("lua/trim_session.lua")));
pub(super) static TITLE_CONVERSATION: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("lua/title_conversation.lua")));
pub(super) static DELETE_CONVERSATION: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("lua/delete_conversation.lua")));
pub(super) static SEARCH_PAGE: LazyLock<Script> = LazyLock::new(|| with_helpers(include_str!("lua/search_page.lua")));
pub(super) static SWITCH_VERSION: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("lua/switch_version.lua")));
pub(super) static CONFIGURE_CONVERSATION: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("lua/configure_conversation.lua")));
pub(super) static REVOKE: LazyLock<Script> = LazyLock::new(|| with_helpers(include_str!("lua/revoke.lua")));
pub(super) static BIND: LazyLock<Script> = LazyLock::new(|| with_helpers(include_str!("lua/bind.lua")));
pub(super) static WORKER_LEASE: LazyLock<Script> = LazyLock::new(|| with_helpers(include_str!("lua/worker_lease.lua")));
pub(super) static WORKER_RELEASE: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("lua/worker_release.lua")));
pub(super) static TRIM_ACKNOWLEDGED: LazyLock<Script> =
    LazyLock::new(|| with_helpers(include_str!("lua/trim_acknowledged.lua")));
pub(super) static WAKE_NEEDED: LazyLock<Script> = LazyLock::new(|| with_helpers(include_str!("lua/wake_needed.lua")));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_take_no_line_of_their_own() {
        let helpers = helpers_on_one_line();
        assert!(!helpers.contains('\n'));
        // A comment left in would swallow the rest of the joined line, scripts included.
        assert!(!helpers.contains("--"), "{helpers}");
        assert!(helpers.contains("local function log_state(log)"));
    }
}
