//! The WebSocket: connecting (and reconnecting with a jittered backoff), receiving frames, the
//! history reload after a gap, and the keep-alive.

use std::time::Duration;

use chat_wire::{ClientFrame, ErrorCode, ServerFrame};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;

use crate::api::{self};
use crate::backoff;

use super::*;

impl AppState {
    pub(crate) fn close_socket(self) {
        self.generation.update_value(|g| *g += 1);
        self.socket.update_value(|socket| {
            if let Some(socket) = socket.take() {
                let _ = socket.close();
            }
        });
    }

    /// Opens the WebSocket (closing any previous one).
    pub fn connect(self) {
        let (Some(config), Some(session)) = (self.config(), self.session.get_untracked()) else { return };
        self.close_socket();
        let generation = self.generation.get_value();
        let current = move || self.generation.get_value() == generation;
        let url = format!("{}?token={}", config.ws_url, js_sys::encode_uri_component(&session.token));
        let Ok(socket) = web_sys::WebSocket::new(&url) else {
            self.schedule_reconnect();
            return;
        };
        self.link.set(Link::Connecting);
        let opened = StoredValue::new(false);

        let on_open = Closure::<dyn FnMut()>::new(move || {
            if !current() {
                return;
            }
            opened.set_value(true);
            if self.composer_focus_pending.get_value() {
                self.composer_focus_pending.set_value(false);
                focus_composer();
            }
            let reconnected = self.attempt.get_value() > 0;
            self.attempt.set_value(0);
            self.link.set(Link::Connected);
            if reconnected {
                self.refresh_history();
            } else {
                // A reload mid-reply: the history held the text so far; ask for the rest. A last
                // question with no reply may never have been queued: sent again, it is.
                self.resume_replies();
                self.resend(self.chat.with_untracked(|c| c.unanswered()).into_iter().collect());
            }
        });
        let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            if !current() {
                return;
            }
            let Some(text) = event.data().as_string() else { return };
            let Ok(frame) = serde_json::from_str::<ServerFrame>(&text) else { return };
            self.receive(frame);
        });
        let on_close = Closure::<dyn FnMut()>::new(move || {
            if !current() {
                return;
            }
            self.socket.set_value(None);
            if opened.get_value() {
                self.schedule_reconnect();
            } else {
                // Refused at the handshake: an expired session, or the server is down.
                self.check_session_then_reconnect();
            }
        });
        socket.set_onopen(Some(on_open.into_js_value().unchecked_ref()));
        socket.set_onmessage(Some(on_message.into_js_value().unchecked_ref()));
        socket.set_onclose(Some(on_close.into_js_value().unchecked_ref()));
        self.socket.set_value(Some(socket));
    }

    pub(crate) fn receive(self, frame: ServerFrame) {
        if let ServerFrame::Ack { .. } = &frame {
            self.resend_attempt.set_value(0);
        }
        // The list's news, from any tab of the session.
        match frame {
            ServerFrame::Conversation { conversation } => return self.upsert_conversation(conversation),
            ServerFrame::ConversationDeleted { id } => {
                self.conversations.update(|list| list.retain(|c| c.id != id));
                if self.open.get_untracked() == id {
                    self.open_next();
                }
                return;
            }
            _ => {}
        }
        // A reply in another conversation streams on without this screen; opening it resumes it.
        // (An error about the session itself, whatever frame it answers, is this screen's too.)
        let elsewhere = match &frame {
            ServerFrame::Ack { conversation, .. }
            | ServerFrame::Delta { conversation, .. }
            | ServerFrame::Snapshot { conversation, .. }
            | ServerFrame::Done { conversation, .. } => {
                conversation.as_ref().is_some_and(|c| *c != self.open.get_untracked())
            }
            ServerFrame::Error { conversation, code, .. } => {
                !matches!(code, ErrorCode::Reconnect | ErrorCode::SessionExpired | ErrorCode::RateLimited)
                    && conversation.as_ref().is_some_and(|c| *c != self.open.get_untracked())
            }
            _ => false,
        };
        if elsewhere {
            return;
        }
        if let ServerFrame::Done { id, .. } = &frame {
            let id = id.clone();
            let text = self.chat.with_untracked(|c| c.messages.iter().find(|m| m.id == id).map(|m| m.text.clone()));
            if let Some(text) = text {
                self.announcement.set(text);
            }
        }
        let done = matches!(frame, ServerFrame::Done { .. });
        let notice = self.chat.try_update(|chat| chat.apply(frame, &now_rfc3339())).flatten();
        if done && self.versioning.get_value() {
            self.versioning.set_value(false);
            self.refresh_history();
        } else if self.chat.with_untracked(|c| c.stale) {
            self.refresh_history();
        }
        for question in self.chat.try_update(|c| c.needs_resume()).unwrap_or_default() {
            self.send_frame(&ClientFrame::Resume { reply_to: question, conversation: self.open_id() });
        }
        if let Some(notice) = notice {
            match notice.code {
                // Forgotten only once the history confirms it: a lost connection mapping on a
                // live session must not log a second device out.
                ErrorCode::SessionExpired => self.check_session_then_reconnect(),
                // The server lost this connection's mapping: a new connection restores it (or is
                // refused, and the history check above decides).
                ErrorCode::Reconnect => {
                    // Counted as a reconnection: once open, the page reloads the history and
                    // sends its unacknowledged questions again. A store that lost its mappings
                    // tells every page at once: each waits a random part of a second, and more
                    // `reconnect` answers meanwhile change nothing.
                    if self.attempt.get_value() == 0 {
                        self.attempt.set_value(1);
                        let generation = self.generation.get_value();
                        let wait = backoff::spread_ms(js_sys::Math::random());
                        set_timeout(
                            move || {
                                if self.generation.get_value() == generation {
                                    self.connect();
                                }
                            },
                            Duration::from_millis(wait),
                        );
                    }
                }
                ErrorCode::RateLimited => self.toast(format!("Slow down: {}", notice.text), true),
                ErrorCode::Unavailable if self.chat.with_untracked(|c| !c.unsent().is_empty()) => {
                    self.toast("The service is busy; your message will be sent again shortly.", false);
                    self.resend_later();
                }
                _ => self.toast(notice.text, true),
            }
        }
    }

    pub(crate) fn refresh_history(self) {
        let (Some(config), Some(session)) = (self.config(), self.session.get_untracked()) else { return };
        let open = self.open.get_untracked();
        spawn_local(async move {
            match api::history(&config, &session.token, &open).await {
                // The person moved on to another conversation meanwhile.
                _ if self.open.get_untracked() != open => {}
                Ok(stored) => {
                    let mut unsent = self.chat.with_untracked(|c| c.unsent());
                    self.chat.update(|c| c.load(stored.messages));
                    self.scroll_to_focus();
                    self.resume_replies();
                    // Questions this page never saw acknowledged, stored or not, and a last
                    // question left without a reply: sent again under their ids, each is stored
                    // once and, if it never was queued, queued now.
                    if let Some(last) = self.chat.with_untracked(|c| c.unanswered()) {
                        if !unsent.contains(&last) {
                            unsent.push(last);
                        }
                    }
                    self.resend(unsent);
                }
                Err(api::ApiError::Refused { status: 400, .. }) => self.expire(),
                // Deleted in another tab: the list says what is left.
                Err(api::ApiError::Refused { status: 404, .. }) => self.open_next(),
                Err(_) => {
                    // No history (a rate limit, an outage): the live connection still carries on.
                    self.resume_replies();
                    self.resend(self.chat.with_untracked(|c| c.unsent()));
                }
            }
        });
    }

    pub(crate) fn check_session_then_reconnect(self) {
        let (Some(config), Some(session)) = (self.config(), self.session.get_untracked()) else { return };
        spawn_local(async move {
            match api::conversations(&config, &session.token).await {
                Err(api::ApiError::Refused { status: 400, .. }) => self.expire(),
                _ => self.schedule_reconnect(),
            }
        });
    }

    /// Waits (3 s, doubling, jittered, at most 30 s), counting down, then reconnects.
    pub(crate) fn schedule_reconnect(self) {
        if self.session.get_untracked().is_none() {
            return;
        }
        if !web_sys::window().map(|w| w.navigator().on_line()).unwrap_or(true) {
            self.link.set(Link::Offline);
            return;
        }
        let attempt = self.attempt.get_value();
        self.attempt.set_value(attempt + 1);
        let seconds = backoff::delay_seconds(attempt, js_sys::Math::random()).round() as u32;
        let generation = self.generation.get_value();
        self.countdown(seconds.max(1), generation);
    }

    pub(crate) fn countdown(self, seconds: u32, generation: u64) {
        if self.generation.get_value() != generation || self.session.get_untracked().is_none() {
            return;
        }
        if seconds == 0 {
            self.connect();
            return;
        }
        self.link.set(Link::Reconnecting(seconds));
        set_timeout(move || self.countdown(seconds - 1, generation), Duration::from_secs(1));
    }

    /// The browser is back online: retry now rather than at the end of the backoff.
    pub(crate) fn back_online(self) {
        if self.session.get_untracked().is_some() && self.link.get_untracked() != Link::Connected {
            self.attempt.set_value(1);
            self.connect();
        }
    }

    pub(crate) fn send_frame(self, frame: &ClientFrame) -> bool {
        let text = serde_json::to_string(frame).expect("frames always serialize");
        self.socket.with_value(|socket| match socket {
            Some(socket) if socket.ready_state() == web_sys::WebSocket::OPEN => socket.send_with_str(&text).is_ok(),
            _ => false,
        })
    }

    /// Asks for every reply still being written as it stands now; its later deltas reach this
    /// connection, whichever worker writes them.
    pub(crate) fn resume_replies(self) {
        for question in self.chat.with_untracked(|c| c.replies_to_resume()) {
            self.send_frame(&ClientFrame::Resume { reply_to: question, conversation: self.open_id() });
        }
    }

    pub(crate) fn keep_alive(self) {
        set_interval(
            move || {
                self.send_frame(&ClientFrame::Ping);
            },
            PING_EVERY,
        );
    }
}
