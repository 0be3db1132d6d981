//! What the person asks: a question (and again, under its own id, when it was not acknowledged),
//! an edit of one, a regeneration, a stop.

use std::time::Duration;

use chat_wire::ClientFrame;
use leptos::prelude::*;

use crate::backoff;

use super::*;

impl AppState {
    /// Sends a question.
    pub fn send(self, text: String) {
        let id = new_message_id();
        let frame = ClientFrame::SendMessage {
            id: id.clone(),
            content: text.clone(),
            conversation: self.open_id(),
            edits: None,
        };
        if !self.send_frame(&frame) {
            self.toast("Not connected: your message was not sent.", true);
            return;
        }
        self.chat.update(|c| c.add_question(id, text, now_rfc3339()));
    }

    /// Sends questions again under their own ids.
    pub(crate) fn resend(self, questions: Vec<(String, String)>) {
        for (id, content) in questions {
            let edits = self.chat.with_untracked(|c| c.edits_of(&id));
            self.send_frame(&ClientFrame::SendMessage { id, content, conversation: self.open_id(), edits });
        }
    }

    /// Sends the unacknowledged questions again after a backoff (3 s, doubling, at most 30 s).
    pub(crate) fn resend_later(self) {
        let attempt = self.resend_attempt.get_value();
        self.resend_attempt.set_value(attempt + 1);
        let delay = backoff::delay_seconds(attempt, js_sys::Math::random());
        let generation = self.generation.get_value();
        set_timeout(
            move || {
                if self.generation.get_value() == generation {
                    self.resend(self.chat.with_untracked(|c| c.unsent()));
                }
            },
            Duration::from_secs_f64(delay),
        );
    }

    /// Edits a question: the person's rewrite is sent as a new version of its place (the server
    /// keeps the old question and what followed it as the other version).
    pub(crate) fn edit(self, question: String, text: String) {
        let id = new_message_id();
        let frame = ClientFrame::SendMessage {
            id: id.clone(),
            content: text.clone(),
            conversation: self.open_id(),
            edits: Some(question.clone()),
        };
        if !self.send_frame(&frame) {
            self.toast("Not connected: your edit was not sent.", true);
            return;
        }
        self.versioning.set_value(true);
        self.chat.update(|c| c.edit(&question, id, text, now_rfc3339()));
    }

    /// Asks for a new reply to the last question, replacing the old one.
    pub fn regenerate(self) {
        let Some(question) = self.chat.with_untracked(|c| c.regenerable()) else { return };
        if !self.send_frame(&ClientFrame::Regenerate { reply_to: question.clone(), conversation: self.open_id() }) {
            self.toast("Not connected: could not regenerate the reply.", true);
            return;
        }
        self.versioning.set_value(true);
        self.chat.update(|c| c.regenerate(&question));
    }

    /// Asks the server to stop the reply being written.
    pub fn stop(self) {
        let question = self.chat.with_untracked(|c| {
            c.messages.iter().rev().find(|m| m.source == chat_wire::Source::User).map(|m| m.id.clone())
        });
        if let Some(id) = question {
            if !self.send_frame(&ClientFrame::Stop { reply_to: id, conversation: self.open_id() }) {
                self.toast("Not connected: could not stop the reply.", true);
            }
        }
    }
}
