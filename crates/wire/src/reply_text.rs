//! How a client rebuilds a reply from its deltas and snapshots, whatever their order.

use std::collections::BTreeMap;

/// A reply's text as a client rebuilds it from [`crate::ServerFrame::Delta`]s and
/// [`crate::ServerFrame::Snapshot`]s, which may arrive in any order and more than once (a reconnecting
/// client can get a delta both live and inside a snapshot). Each delta counts once; a snapshot
/// newer than what the client has replaces it, and deltas received after it still count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyText {
    text: String,
    next_seq: u64,
    ahead: BTreeMap<u64, String>,
}

impl ReplyText {
    /// A reply as `GET /chat_history` or a snapshot gave it.
    pub fn from_snapshot(next_seq: u64, text: String) -> Self {
        ReplyText { text, next_seq, ahead: BTreeMap::new() }
    }

    /// Adds a delta; one already counted is ignored.
    pub fn delta(&mut self, seq: u64, text: &str) {
        if seq >= self.next_seq {
            self.ahead.entry(seq).or_insert_with(|| text.to_string());
            self.settle();
        }
    }

    /// Takes a snapshot unless the text already covers more of the reply.
    pub fn snapshot(&mut self, next_seq: u64, text: &str) {
        if next_seq >= self.next_seq {
            self.text = text.to_string();
            self.next_seq = next_seq;
            self.ahead = self.ahead.split_off(&next_seq);
            self.settle();
        }
    }

    fn settle(&mut self) {
        while let Some(piece) = self.ahead.remove(&self.next_seq) {
            self.text.push_str(&piece);
            self.next_seq += 1;
        }
    }

    /// The text, up to the first delta not yet received.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The seq of the first delta not yet received.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// True when later deltas arrived but one before them did not: a [`crate::ClientFrame::Resume`]
    /// fills the hole.
    pub fn has_gap(&self) -> bool {
        !self.ahead.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_text_counts_each_delta_once_in_any_order() {
        let mut reply = ReplyText::default();
        reply.delta(0, "a");
        reply.delta(2, "c");
        assert_eq!((reply.text(), reply.has_gap()), ("a", true));
        // A snapshot answering a resume covers the hole; the delta that came first still counts.
        reply.snapshot(2, "ab");
        assert_eq!((reply.text(), reply.next_seq(), reply.has_gap()), ("abc", 3, false));
        // The same delta again, and an older snapshot, change nothing.
        reply.delta(1, "b");
        reply.snapshot(1, "a");
        assert_eq!(reply.text(), "abc");
        // A worker that restarts the reply voids what was shown.
        reply.snapshot(4, "");
        reply.delta(4, "x");
        assert_eq!(reply.text(), "x");
    }
}
