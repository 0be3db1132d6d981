//! The conversation as the page shows it, and how each server frame changes it. Pure logic: no
//! browser, so it is unit-tested on the host.

use chat_wire::{ChatMessage, ErrorCode, ReplyStatus, ReplyText, ServerFrame, Source, Usage};

/// Where a message the person sent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Sent, not yet acknowledged.
    Sending,
    /// Stored by the server.
    Stored,
}

/// A message on screen.
#[derive(Debug, Clone, PartialEq)]
pub struct UiMessage {
    /// Message id (the client's for questions, `<id>.reply` for replies).
    pub id: String,
    /// Who wrote it.
    pub source: Source,
    /// The text so far.
    pub text: String,
    /// RFC 3339 time.
    pub timestamp: String,
    /// For replies: streaming or how it ended.
    pub status: ReplyStatus,
    /// For questions: acknowledged yet?
    pub delivery: Delivery,
    /// For replies: the text rebuilt from deltas and snapshots (`text` mirrors it).
    pub reply: ReplyText,
    /// For replies: the question answered.
    pub reply_to: Option<String>,
    /// For replies: the model that wrote it.
    pub model: Option<String>,
    /// For replies: a `resume` was sent for a hole in the deltas and not yet answered.
    pub resuming: bool,
    /// For finished replies: the tokens they took (and their price), when the provider counted.
    pub usage: Option<Usage>,
    /// When its place has other versions: every version's first id, oldest first.
    pub versions: Option<Vec<String>>,
    /// For a question not yet acknowledged: the question it edits (a resend edits it too).
    pub edits: Option<String>,
}

impl UiMessage {
    /// A stored message from `GET /chat_history`.
    pub fn from_stored(message: ChatMessage) -> Self {
        UiMessage {
            id: message.id,
            source: message.source,
            reply: ReplyText::from_snapshot(message.next_seq.unwrap_or(0), message.msg.clone()),
            text: message.msg,
            timestamp: message.timestamp,
            status: message.status,
            delivery: Delivery::Stored,
            reply_to: message.reply_to,
            model: message.model,
            resuming: false,
            usage: message.usage,
            versions: message.versions,
            edits: None,
        }
    }
}

/// Something the person should be told about (a toast).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The sentence to show.
    pub text: String,
    /// The code, so the page can react (an expired session returns to the welcome screen).
    pub code: ErrorCode,
}

/// The conversation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    /// Oldest first.
    pub messages: Vec<UiMessage>,
    /// Questions whose reply failed before it started (no reply will come).
    pub failed: Vec<String>,
    /// Set when a reply ended that this page saw only part of (it reconnected mid-reply): the
    /// stored history has the whole of it.
    pub stale: bool,
}

impl Conversation {
    /// Replaces everything with the stored history (after a restore or a reconnect).
    pub fn load(&mut self, stored: Vec<ChatMessage>) {
        self.stale = false;
        let pending: Vec<UiMessage> = self
            .messages
            .iter()
            .filter(|m| m.delivery == Delivery::Sending && !stored.iter().any(|s| s.id == m.id))
            .cloned()
            .collect();
        self.messages = stored.into_iter().map(UiMessage::from_stored).collect();
        self.messages.extend(pending);
    }

    /// Adds a question the person just sent.
    pub fn add_question(&mut self, id: String, text: String, timestamp: String) {
        self.messages.push(UiMessage {
            id,
            source: Source::User,
            text,
            timestamp,
            status: ReplyStatus::Done,
            delivery: Delivery::Sending,
            reply: ReplyText::default(),
            reply_to: None,
            model: None,
            resuming: false,
            usage: None,
            versions: None,
            edits: None,
        });
    }

    /// Shows a question that edits `edited`: it takes that question's place, and what followed
    /// goes (the server keeps it as the other version).
    pub fn edit(&mut self, edited: &str, id: String, text: String, timestamp: String) {
        if let Some(at) = self.messages.iter().position(|m| m.id == edited) {
            self.messages.truncate(at);
        }
        self.add_question(id, text, timestamp);
        if let Some(question) = self.messages.last_mut() {
            question.edits = Some(edited.to_string());
        }
    }

    /// The question an unacknowledged question edits, if it is an edit.
    pub fn edits_of(&self, id: &str) -> Option<String> {
        self.messages.iter().find(|m| m.id == id).and_then(|m| m.edits.clone())
    }

    /// Questions sent and not yet acknowledged, with their text: after `unavailable` or a
    /// reconnection the page sends them again under the same ids (the server stores each once,
    /// and queues one it stored but could not queue).
    pub fn unsent(&self) -> Vec<(String, String)> {
        self.messages
            .iter()
            .filter(|m| m.source == Source::User && m.delivery == Delivery::Sending)
            .map(|m| (m.id.clone(), m.text.clone()))
            .collect()
    }

    /// The last question, when the history holds no reply to it and no failure was reported: it
    /// may have been stored and never queued (its first attempt failed). After a load the page
    /// sends it again under its id; the server only acknowledges it if its reply is on its way.
    pub fn unanswered(&self) -> Option<(String, String)> {
        let last = self.messages.last()?;
        (last.source == Source::User && !self.failed.contains(&last.id)).then(|| (last.id.clone(), last.text.clone()))
    }

    /// The questions whose replies are still being written: after loading the history the page
    /// asks for each (`resume`), so the rest of the reply reaches this connection.
    pub fn replies_to_resume(&self) -> Vec<String> {
        self.messages
            .iter()
            .filter(|m| m.source == Source::Assistant && m.status == ReplyStatus::Streaming)
            .filter_map(|m| m.reply_to.clone())
            .collect()
    }

    /// Takes the last question's reply away before asking for a new one (`regenerate`).
    pub fn regenerate(&mut self, question: &str) {
        self.messages.retain(|m| m.reply_to.as_deref() != Some(question));
        self.failed.retain(|id| id != question);
    }

    /// The question the last reply answers, when that reply is finished: the one a Regenerate
    /// button may answer again.
    pub fn regenerable(&self) -> Option<String> {
        let last = self.messages.last()?;
        if last.source == Source::Assistant && last.status.is_final() {
            return last.reply_to.clone();
        }
        (last.source == Source::User && self.failed.contains(&last.id)).then(|| last.id.clone())
    }

    /// The reply being written, if any.
    #[cfg(test)]
    pub fn streaming_reply(&self) -> Option<&UiMessage> {
        self.messages.iter().rev().find(|m| m.source == Source::Assistant && m.status == ReplyStatus::Streaming)
    }

    /// True while a question waits for its reply (typing indicator, Stop button, send disabled).
    pub fn awaiting_reply(&self) -> bool {
        let Some(last_question) = self.messages.iter().rposition(|m| m.source == Source::User) else {
            return false;
        };
        let answered =
            self.messages[last_question + 1..].iter().any(|m| m.source == Source::Assistant && m.status.is_final());
        !answered && !self.failed.contains(&self.messages[last_question].id)
    }

    /// Applies a server frame; returns what the person should be told, if anything. A reply with
    /// a hole in its deltas sets `resuming` and is returned by [`Conversation::needs_resume`].
    pub fn apply(&mut self, frame: ServerFrame, now: &str) -> Option<Notice> {
        match frame {
            ServerFrame::Ack { id, .. } => {
                if let Some(m) = self.messages.iter_mut().find(|m| m.id == id) {
                    m.delivery = Delivery::Stored;
                }
                None
            }
            ServerFrame::Delta { id, reply_to, seq, text, .. } => {
                let reply = self.reply_entry(&id, &reply_to, now);
                if reply.status == ReplyStatus::Streaming {
                    reply.reply.delta(seq, &text);
                    reply.text = reply.reply.text().to_string();
                }
                None
            }
            ServerFrame::Snapshot { id, reply_to, next_seq, text, status, .. } => {
                let reply = self.reply_entry(&id, &reply_to, now);
                let mut ended_unseen = false;
                if reply.status == ReplyStatus::Streaming {
                    reply.resuming = false;
                    if status.is_final() {
                        reply.reply = ReplyText::from_snapshot(next_seq, text);
                        reply.status = status;
                        ended_unseen = true;
                    } else {
                        reply.reply.snapshot(next_seq, &text);
                    }
                    reply.text = reply.reply.text().to_string();
                }
                // Its `done` went by while this page was away: the stored reply (with its model
                // and usage) comes with the history.
                self.stale |= ended_unseen;
                None
            }
            ServerFrame::Done { id, reply_to, status, model, next_seq, usage, .. } => {
                let reply = self.reply_entry(&id, &reply_to, now);
                let missed = reply.reply.has_gap() || reply.reply.next_seq() < next_seq;
                let incomplete = reply.status == ReplyStatus::Streaming && missed;
                // Another tab regenerated a reply this page shows as finished: its text is not
                // this one's; the history has both.
                let replaced = reply.status.is_final() && reply.reply.next_seq() != next_seq;
                reply.status = status;
                reply.model = model;
                reply.usage = usage;
                self.stale |= incomplete || replaced;
                None
            }
            ServerFrame::Error { reply_to, code, message, .. } => {
                let unsent = |id: &str| {
                    self.messages
                        .iter()
                        .any(|m| m.id == id && m.source == Source::User && m.delivery == Delivery::Sending)
                };
                // Not read at all: whatever the frame was, the page reconnects and asks again.
                if code == ErrorCode::Reconnect {
                    return Some(Notice { text: message, code });
                }
                if code == ErrorCode::Unavailable && reply_to.as_deref().is_some_and(unsent) {
                    // Maybe stored, maybe not (or not read at all): kept, and sent again under
                    // the same id, once the service or a new connection is there.
                    return Some(Notice { text: message, code });
                }
                if let Some(id) = &reply_to {
                    let refused_before_storing = matches!(
                        code,
                        ErrorCode::ReplyInProgress
                            | ErrorCode::EmptyMessage
                            | ErrorCode::MessageTooLarge
                            | ErrorCode::InvalidContent
                            | ErrorCode::InvalidId
                            | ErrorCode::RateLimited
                            | ErrorCode::Unavailable
                            | ErrorCode::NotLastQuestion
                            | ErrorCode::UnknownMessage
                            | ErrorCode::UnknownConversation
                            | ErrorCode::TooManyVersions
                    );
                    if refused_before_storing {
                        let before = self.messages.len();
                        let an_edit = self.edits_of(id).is_some();
                        self.messages.retain(|m| !(m.id == *id && m.delivery == Delivery::Sending));
                        // Nothing withdrawn: a refused `regenerate` of a stored question. The
                        // page took its reply away when asking; the stored history has it back.
                        // A refused edit took the thread after the edited question away: the
                        // same.
                        self.stale |= self.messages.len() == before || an_edit;
                    } else {
                        self.failed.push(id.clone());
                    }
                }
                Some(Notice { text: message, code })
            }
            // The list's notices are the sidebar's; the app routes them there.
            ServerFrame::Pong | ServerFrame::Conversation { .. } | ServerFrame::ConversationDeleted { .. } => None,
        }
    }

    /// Replies with a hole in their deltas that no `resume` has been sent for yet; marks them as
    /// resuming, so each hole is asked about once.
    pub fn needs_resume(&mut self) -> Vec<String> {
        let mut wanted = Vec::new();
        for m in &mut self.messages {
            if m.status == ReplyStatus::Streaming && !m.resuming && m.reply.has_gap() {
                m.resuming = true;
                wanted.extend(m.reply_to.clone());
            }
        }
        wanted
    }

    fn reply_entry(&mut self, id: &str, reply_to: &str, now: &str) -> &mut UiMessage {
        if let Some(index) = self.messages.iter().position(|m| m.id == id) {
            return &mut self.messages[index];
        }
        let after = self.messages.iter().position(|m| m.id == reply_to).map_or(self.messages.len(), |i| i + 1);
        self.messages.insert(
            after,
            UiMessage {
                id: id.to_string(),
                source: Source::Assistant,
                text: String::new(),
                timestamp: now.to_string(),
                status: ReplyStatus::Streaming,
                delivery: Delivery::Stored,
                reply: ReplyText::default(),
                reply_to: Some(reply_to.to_string()),
                model: None,
                resuming: false,
                usage: None,
                versions: None,
                edits: None,
            },
        );
        &mut self.messages[after]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(seq: u64, text: &str) -> ServerFrame {
        ServerFrame::Delta { id: "m1.reply".into(), reply_to: "m1".into(), seq, text: text.into(), conversation: None }
    }

    fn done(next_seq: u64, usage: Option<Usage>) -> ServerFrame {
        ServerFrame::Done {
            id: "m1.reply".into(),
            reply_to: "m1".into(),
            status: ReplyStatus::Done,
            model: None,
            next_seq,
            usage,
            conversation: None,
        }
    }

    #[test]
    fn an_edit_takes_the_edited_questions_place_and_drops_what_followed() {
        let mut chat = Conversation::default();
        chat.add_question("m1".into(), "one".into(), "t".into());
        chat.add_question("m2".into(), "two".into(), "t".into());
        chat.add_question("m3".into(), "three".into(), "t".into());
        chat.edit("m2", "m2b".into(), "TWO".into(), "t".into());
        let shown: Vec<(&str, &str)> = chat.messages.iter().map(|m| (m.id.as_str(), m.text.as_str())).collect();
        assert_eq!(shown, [("m1", "one"), ("m2b", "TWO")]);
        assert_eq!(chat.messages[1].delivery, Delivery::Sending);
        assert_eq!(chat.edits_of("m2b").as_deref(), Some("m2"), "a resend edits too");
        // Refused (too many versions): withdrawn, and the history brings the old thread back.
        let refused = ServerFrame::Error {
            reply_to: Some("m2b".into()),
            code: ErrorCode::TooManyVersions,
            message: "no".into(),
            retry_after: None,
            conversation: None,
        };
        chat.apply(refused, "t");
        assert_eq!(chat.messages.len(), 1);
        assert!(chat.stale && chat.failed.is_empty());
    }

    #[test]
    fn a_done_brings_the_usage_and_a_finished_reply_seen_otherwise_reloads_the_history() {
        let usage = Usage { prompt_tokens: 3, completion_tokens: 2, cost_micro_usd: Some(5) };
        let mut chat = Conversation::default();
        chat.add_question("m1".into(), "hi".into(), "t".into());
        chat.apply(delta(0, "Hel"), "t");
        chat.apply(delta(1, "lo"), "t");
        chat.apply(done(2, Some(usage)), "t");
        assert_eq!(chat.messages[1].usage, Some(usage));
        assert!(!chat.stale);
        // The same done again (a worker that crashed after storing it) changes nothing.
        chat.apply(done(2, Some(usage)), "t");
        assert!(!chat.stale);
        // Another tab regenerated it: a done with another length means another text.
        chat.apply(done(5, None), "t");
        assert!(chat.stale, "the history is read again");

        // A reply that ended while the page was away, learnt from a resume's snapshot.
        let mut chat = Conversation::default();
        chat.add_question("m1".into(), "hi".into(), "t".into());
        chat.apply(delta(0, "Hel"), "t");
        let snapshot = ServerFrame::Snapshot {
            id: "m1.reply".into(),
            reply_to: "m1".into(),
            next_seq: 2,
            text: "Hello".into(),
            status: ReplyStatus::Done,
            conversation: None,
        };
        chat.apply(snapshot, "t");
        assert_eq!((chat.messages[1].text.as_str(), chat.messages[1].status), ("Hello", ReplyStatus::Done));
        assert!(chat.stale, "its usage and model come with the history");
    }

    #[test]
    fn deltas_build_the_reply_in_order_once() {
        let mut chat = Conversation::default();
        chat.add_question("m1".into(), "hi".into(), "t".into());
        assert!(chat.awaiting_reply());
        // The first delta can arrive before the ack.
        chat.apply(delta(0, "Hel"), "t");
        chat.apply(ServerFrame::Ack { id: "m1".into(), reply_id: "m1.reply".into(), conversation: None }, "t");
        chat.apply(delta(1, "lo"), "t");
        chat.apply(delta(1, "lo"), "t"); // a duplicate is ignored
        assert_eq!(chat.messages[0].delivery, Delivery::Stored);
        assert_eq!(chat.streaming_reply().unwrap().text, "Hello");
        chat.apply(done(2, None), "t");
        assert!(chat.streaming_reply().is_none());
        assert!(!chat.awaiting_reply());
        assert_eq!(chat.messages.len(), 2);
        assert!(!chat.stale, "every delta arrived");
    }

    #[test]
    fn a_reply_joined_mid_way_asks_for_the_rest() {
        let mut chat = Conversation::default();
        chat.apply(delta(3, "...end"), "t");
        assert!(!chat.stale);
        assert_eq!(chat.needs_resume(), ["m1"]);
        assert!(chat.needs_resume().is_empty(), "one resume per hole");
        chat.apply(done(4, None), "t");
        assert!(chat.stale, "the page saw deltas 3.. only");
        chat.load(Vec::new());
        assert!(!chat.stale);
    }

    #[test]
    fn a_snapshot_fills_the_hole_and_a_restart_voids_the_text() {
        let mut chat = Conversation::default();
        chat.add_question("m1".into(), "hi".into(), "t".into());
        chat.apply(delta(2, "c"), "t");
        chat.apply(
            ServerFrame::Snapshot {
                id: "m1.reply".into(),
                reply_to: "m1".into(),
                next_seq: 2,
                text: "ab".into(),
                status: ReplyStatus::Streaming,
                conversation: None,
            },
            "t",
        );
        assert_eq!(chat.streaming_reply().unwrap().text, "abc");
        // Another worker took the reply over: it starts again after seq 3.
        chat.apply(
            ServerFrame::Snapshot {
                id: "m1.reply".into(),
                reply_to: "m1".into(),
                next_seq: 4,
                text: String::new(),
                status: ReplyStatus::Streaming,
                conversation: None,
            },
            "t",
        );
        chat.apply(delta(4, "new"), "t");
        assert_eq!(chat.streaming_reply().unwrap().text, "new");
    }

    #[test]
    fn a_finished_reply_can_be_regenerated() {
        let mut chat = Conversation::default();
        chat.add_question("m1".into(), "hi".into(), "t".into());
        chat.apply(ServerFrame::Ack { id: "m1".into(), reply_id: "m1.reply".into(), conversation: None }, "t");
        chat.apply(delta(0, "meh"), "t");
        assert_eq!(chat.regenerable(), None, "not while it streams");
        chat.apply(
            ServerFrame::Done {
                id: "m1.reply".into(),
                reply_to: "m1".into(),
                status: ReplyStatus::Error,
                model: None,
                next_seq: 1,
                usage: None,
                conversation: None,
            },
            "t",
        );
        assert_eq!(chat.regenerable().as_deref(), Some("m1"));
        chat.regenerate("m1");
        assert_eq!(chat.messages.len(), 1);
        assert!(chat.awaiting_reply());
        // Refused (too many messages): the page reloads the history, which still has the reply.
        chat.apply(
            ServerFrame::Error {
                reply_to: Some("m1".into()),
                code: ErrorCode::RateLimited,
                message: "slow down".into(),
                retry_after: Some(3),
                conversation: None,
            },
            "t",
        );
        assert!(chat.stale);
        assert_eq!(chat.messages.len(), 1, "the question stays");
    }

    #[test]
    fn a_refused_question_is_withdrawn_and_reported() {
        let mut chat = Conversation::default();
        chat.add_question("m2".into(), "again".into(), "t".into());
        let notice = chat.apply(
            ServerFrame::Error {
                reply_to: Some("m2".into()),
                code: ErrorCode::ReplyInProgress,
                message: "wait".into(),
                retry_after: None,
                conversation: None,
            },
            "t",
        );
        assert_eq!(notice.unwrap().code, ErrorCode::ReplyInProgress);
        assert!(chat.messages.is_empty());
    }

    #[test]
    fn a_question_refused_as_unavailable_is_kept_to_be_sent_again() {
        let mut chat = Conversation::default();
        chat.add_question("m3".into(), "maybe stored".into(), "t".into());
        let unavailable = ServerFrame::Error {
            reply_to: Some("m3".into()),
            code: ErrorCode::Unavailable,
            message: "try again".into(),
            retry_after: Some(2),
            conversation: None,
        };
        assert_eq!(chat.apply(unavailable, "t").unwrap().code, ErrorCode::Unavailable);
        assert_eq!(chat.unsent(), [("m3".to_string(), "maybe stored".to_string())]);
        assert!(chat.awaiting_reply());
        chat.apply(ServerFrame::Ack { id: "m3".into(), reply_id: "m3.reply".into(), conversation: None }, "t");
        assert!(chat.unsent().is_empty());
    }

    #[test]
    fn a_reconnect_answer_changes_nothing_on_screen() {
        let mut chat = Conversation::default();
        chat.add_question("m1".into(), "hi".into(), "t".into());
        chat.apply(ServerFrame::Ack { id: "m1".into(), reply_id: "m1.reply".into(), conversation: None }, "t");
        chat.apply(delta(0, "Hel"), "t");
        let before = chat.clone();
        let reconnect = |reply_to: &str| ServerFrame::Error {
            reply_to: Some(reply_to.into()),
            code: ErrorCode::Reconnect,
            message: "reconnect".into(),
            retry_after: None,
            conversation: None,
        };
        assert_eq!(chat.apply(reconnect("m1"), "t").unwrap().code, ErrorCode::Reconnect);
        assert_eq!(chat, before, "the reply still streams, the question still waits");
        assert!(chat.awaiting_reply());
    }

    #[test]
    fn a_loaded_question_without_a_reply_is_sent_again() {
        let mut chat = Conversation::default();
        let question = ChatMessage {
            id: "m1".into(),
            msg: "stored, never queued".into(),
            timestamp: "t".into(),
            source: Source::User,
            status: ReplyStatus::Done,
            reply_to: None,
            model: None,
            next_seq: None,
            usage: None,
            versions: None,
        };
        chat.load(vec![question]);
        assert_eq!(chat.unanswered(), Some(("m1".to_string(), "stored, never queued".to_string())));
        chat.apply(delta(0, "Hel"), "t");
        assert_eq!(chat.unanswered(), None, "its reply began");
    }

    #[test]
    fn a_done_past_the_deltas_seen_asks_for_the_stored_reply() {
        let mut chat = Conversation::default();
        chat.add_question("m1".into(), "hi".into(), "t".into());
        chat.apply(delta(0, "Hel"), "t");
        // The last delta never arrived: `done` says the reply went up to seq 2.
        chat.apply(done(2, None), "t");
        assert!(chat.stale);
    }

    #[test]
    fn a_model_error_keeps_the_question_and_ends_the_wait() {
        let mut chat = Conversation::default();
        chat.add_question("m1".into(), "hi".into(), "t".into());
        chat.apply(ServerFrame::Ack { id: "m1".into(), reply_id: "m1.reply".into(), conversation: None }, "t");
        let notice = chat.apply(
            ServerFrame::Error {
                reply_to: Some("m1".into()),
                code: ErrorCode::ModelUnavailable,
                message: "down".into(),
                retry_after: None,
                conversation: None,
            },
            "t",
        );
        assert_eq!(notice.unwrap().text, "down");
        assert_eq!(chat.messages.len(), 1);
        assert!(!chat.awaiting_reply());
    }

    #[test]
    fn loading_history_keeps_questions_still_in_flight() {
        let mut chat = Conversation::default();
        chat.add_question("m9".into(), "pending".into(), "t".into());
        let stored = ChatMessage::question("m1", "old", "t");
        chat.load(vec![stored]);
        let ids: Vec<_> = chat.messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["m1", "m9"]);
    }
}
