//! A session's life on this page: starting one with a name, restoring the saved one, expiring,
//! exporting its conversation, and ending it.

use chat_wire::ErrorCode;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, SavedSession};
use crate::chat::Conversation;

use super::*;

impl AppState {
    /// Starts a new session for `name`.
    pub fn start(self, name: String, busy: RwSignal<bool>, problem: RwSignal<Option<String>>) {
        let Some(config) = self.config() else { return };
        busy.set(true);
        spawn_local(async move {
            match api::create_session(&config, &name).await {
                Ok(created) => {
                    let saved = SavedSession { token: created.token, name: created.name };
                    api::save_session(&saved);
                    self.session.set(Some(saved));
                    self.chat.set(Conversation::default());
                    self.open.set(chat_wire::ConversationId::MAIN.to_string());
                    self.conversations.set(Vec::new());
                    self.screen.set(Screen::Chat);
                    self.composer_focus_pending.set_value(true);
                    self.load_conversations();
                    self.connect();
                }
                Err(error) => {
                    if matches!(&error, api::ApiError::Refused { status: 400, .. }) {
                        problem.set(Some(error.message()));
                    } else {
                        self.toast(error.message(), true);
                    }
                }
            }
            busy.set(false);
        });
    }

    /// Restores the saved session, if any, with its history.
    pub(crate) fn restore(self) {
        let Some(saved) = api::saved_session() else {
            self.screen.set(Screen::Welcome);
            mark_after_render("chat-interactive");
            return;
        };
        let Some(config) = self.config() else { return };
        spawn_local(async move {
            // The conversation the person was in last: the session's current one.
            if let Ok(list) = api::conversations(&config, &saved.token).await {
                self.open.set(list.current.clone());
                self.conversations.set(list.conversations);
            }
            let open = self.open.get_untracked();
            match api::history(&config, &saved.token, &open).await {
                Ok(session) => {
                    mark("history-received");
                    self.chat.update(|c| c.load(session.messages));
                    self.session.set(Some(saved));
                    self.screen.set(Screen::Chat);
                    mark_after_render("history-rendered");
                    mark_after_render("chat-interactive");
                    self.connect();
                }
                Err(api::ApiError::Refused { status: 400, .. }) => {
                    self.expire();
                    mark_after_render("chat-interactive");
                }
                Err(error) => {
                    // Keep the session; the reconnection loop retries until the server is back.
                    self.toast(error.message(), true);
                    self.session.set(Some(saved));
                    self.screen.set(Screen::Chat);
                    self.schedule_reconnect();
                }
            }
        });
    }

    /// The session is gone: say so and return to the welcome screen.
    pub fn expire(self) {
        self.leave_session();
        self.toast("Your session expired. Enter your name to start a new one.", true);
    }

    /// Forgets the session on this page (its socket, its saved token, what shows) and returns to
    /// the welcome screen.
    fn leave_session(self) {
        self.close_socket();
        api::forget_session();
        self.session.set(None);
        self.chat.set(Conversation::default());
        self.conversations.set(Vec::new());
        self.screen.set(Screen::Welcome);
    }

    /// Downloads the conversation as a file (`markdown` or `json`), as the server writes it.
    pub fn export(self, format: &'static str) {
        let (Some(config), Some(session)) = (self.config(), self.session.get_untracked()) else { return };
        let open = self.open.get_untracked();
        spawn_local(async move {
            let (extension, mime) =
                if format == "json" { ("json", "application/json") } else { ("md", "text/markdown") };
            match api::export(&config, &session.token, &open, format).await {
                Ok((name, text)) => {
                    let name = name.unwrap_or_else(|| format!("chat.{extension}"));
                    if let Err(why) = api::download(&name, &text, mime) {
                        self.toast(format!("The download could not start: {why}"), true);
                    }
                }
                Err(api::ApiError::Refused { status: 400, body: Some(body) })
                    if body.code == ErrorCode::SessionExpired =>
                {
                    self.expire()
                }
                Err(error) => self.toast(error.message(), true),
            }
        });
    }

    /// Leaves on purpose ("End session"): the server ends the session too, with all its
    /// conversations, so its token opens nothing any more, whoever holds a copy.
    pub fn sign_out(self) {
        if let (Some(config), Some(session)) = (self.config(), self.session.get_untracked()) {
            spawn_local(async move {
                // Unreachable now, it still expires after SESSION_TTL_SECONDS without use.
                let _ = api::revoke(&config, &session.token).await;
            });
        }
        self.leave_session();
    }
}
