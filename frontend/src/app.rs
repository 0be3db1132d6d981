//! The application: which screen shows, the WebSocket connection and its reconnection, and the
//! toasts. Components live in `components/`; the conversation logic in `chat.rs`.

use std::time::Duration;

use chat_wire::{ClientFrame, ErrorCode, ServerFrame};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;

use crate::api::{self, AppConfig, SavedSession};
use crate::backoff;
use crate::chat::Conversation;
use crate::components::{
    ConnectionStatus, MessageInput, MessageList, SessionRestoreLoader, Sidebar, Toasts, WelcomeModal,
};

/// Which screen shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Reading `config.json`, or restoring a saved session.
    Loading,
    /// `config.json` is missing or unusable: the page cannot reach its service.
    Unconfigured,
    /// Asking for a name.
    Welcome,
    /// Chatting.
    Chat,
}

/// The connection as the status indicator shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Opening.
    Connecting,
    /// Open.
    Connected,
    /// Closed; the next attempt is in this many seconds.
    Reconnecting(u32),
    /// The browser is offline; retries resume when it is back.
    Offline,
}

/// One toast.
#[derive(Debug, Clone, PartialEq)]
pub struct Toast {
    /// Unique id, for removal.
    pub id: u64,
    /// What to say.
    pub text: String,
    /// An error (red) or information.
    pub error: bool,
    /// The conversation whose deletion this toast can undo.
    pub undo: Option<String>,
}

/// How long a deleted conversation can be brought back before the server deletes it.
const UNDO_WINDOW: Duration = Duration::from_secs(6);

/// Keep-alive period: API Gateway closes connections idle for 10 minutes.
const PING_EVERY: Duration = Duration::from_secs(300);

/// A User Timing mark (`performance.mark`), read by the frontend benchmark.
fn mark(name: &str) {
    if let Some(performance) = web_sys::window().and_then(|w| w.performance()) {
        let _ = performance.mark(name);
    }
}

/// Marks `name` once the page has laid out what the current update rendered.
fn mark_after_render(name: &'static str) {
    request_animation_frame(move || {
        if let Some(body) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.body()) {
            let _ = body.offset_height(); // forces layout, so the mark includes it
        }
        mark(name);
    });
}

fn now_rfc3339() -> String {
    js_sys::Date::new_0().to_iso_string().as_string().unwrap_or_default()
}

fn new_message_id() -> String {
    let random = (js_sys::Math::random() * 1e9) as u64;
    format!("c{}-{random:x}", js_sys::Date::now() as u64)
}

/// Everything the screens share. All fields are `Copy` handles to reactive state.
#[derive(Clone, Copy)]
pub struct AppState {
    pub config: RwSignal<Option<AppConfig>>,
    pub screen: RwSignal<Screen>,
    /// Why `config.json` could not be used, shown on the [`Screen::Unconfigured`] page.
    pub config_problem: RwSignal<Option<String>>,
    pub session: RwSignal<Option<SavedSession>>,
    pub chat: RwSignal<Conversation>,
    /// The conversation on screen.
    pub open: RwSignal<String>,
    /// The session's conversations, most recently active first (the sidebar).
    pub conversations: RwSignal<Vec<chat_wire::Conversation>>,
    /// The sidebar, as a phone's drawer, is open.
    pub drawer: RwSignal<bool>,
    /// The models a conversation may choose (`GET /models`), once read.
    pub models: RwSignal<Option<chat_wire::ModelList>>,
    /// The last search's results, shown in the sidebar instead of the list until cleared.
    pub found: RwSignal<Option<chat_wire::SearchResults>>,
    /// A message to scroll to once its conversation is shown (a search hit's).
    focus: StoredValue<Option<String>>,
    /// An edit or a regeneration is under way: its `done` reloads the history, which lists the
    /// new versions.
    versioning: StoredValue<bool>,
    /// Conversations deleted on screen whose deletion can still be undone, with their place and
    /// the deletion's own number (its toast's id): a deletion undone and made again is another.
    deleting: StoredValue<Vec<(usize, chat_wire::Conversation, u64)>>,
    pub link: RwSignal<Link>,
    pub toasts: RwSignal<Vec<Toast>>,
    pub announcement: RwSignal<String>,
    socket: StoredValue<Option<web_sys::WebSocket>, LocalStorage>,
    attempt: StoredValue<u32>,
    /// Resends of unacknowledged questions since the last `ack` (for their backoff).
    resend_attempt: StoredValue<u32>,
    generation: StoredValue<u64>,
    next_toast: StoredValue<u64>,
}

impl AppState {
    fn new() -> Self {
        AppState {
            config: RwSignal::new(None),
            screen: RwSignal::new(Screen::Loading),
            config_problem: RwSignal::new(None),
            session: RwSignal::new(None),
            chat: RwSignal::new(Conversation::default()),
            open: RwSignal::new(chat_wire::ConversationId::MAIN.to_string()),
            conversations: RwSignal::new(Vec::new()),
            drawer: RwSignal::new(false),
            models: RwSignal::new(None),
            found: RwSignal::new(None),
            focus: StoredValue::new(None),
            versioning: StoredValue::new(false),
            deleting: StoredValue::new(Vec::new()),
            link: RwSignal::new(Link::Connecting),
            toasts: RwSignal::new(Vec::new()),
            announcement: RwSignal::new(String::new()),
            socket: StoredValue::new_local(None),
            attempt: StoredValue::new(0),
            resend_attempt: StoredValue::new(0),
            generation: StoredValue::new(0),
            next_toast: StoredValue::new(0),
        }
    }

    /// Shows a toast for six seconds.
    pub fn toast(self, text: impl Into<String>, error: bool) {
        self.show_toast(text.into(), error, None);
    }

    fn show_toast(self, text: String, error: bool, undo: Option<String>) {
        let id = self.next_toast.get_value();
        self.next_toast.set_value(id + 1);
        self.toasts.update(|t| t.push(Toast { id, text, error, undo }));
        set_timeout(move || self.toasts.update(|t| t.retain(|x| x.id != id)), UNDO_WINDOW);
    }

    /// The session's conversations, from the server (the sidebar).
    fn load_conversations(self) {
        self.load_models();
        let (Some(config), Some(session)) = (self.config(), self.session.get_untracked()) else { return };
        spawn_local(async move {
            if let Ok(list) = api::conversations(&config, &session.token).await {
                let pending: Vec<String> =
                    self.deleting.with_value(|d| d.iter().map(|(_, c, _)| c.id.clone()).collect());
                self.conversations.set(list.conversations.into_iter().filter(|c| !pending.contains(&c.id)).collect());
            }
        });
    }

    /// Reads the models a conversation may choose, once.
    fn load_models(self) {
        let Some(config) = self.config() else { return };
        if self.models.get_untracked().is_some() {
            return;
        }
        spawn_local(async move {
            if let Ok(models) = api::models(&config).await {
                self.models.set(Some(models));
            }
        });
    }

    /// Sets the open conversation's model (`""`: the default) or instructions.
    pub fn configure(self, changes: serde_json::Value) {
        let (Some(config), Some(session)) = (self.config(), self.session.get_untracked()) else { return };
        let open = self.open.get_untracked();
        spawn_local(async move {
            match api::change_conversation(&config, &session.token, &open, changes).await {
                Ok(conversation) => self.upsert_conversation(conversation),
                Err(error) => self.toast(error.message(), true),
            }
        });
    }

    /// Asks the person for the open conversation's own instructions.
    pub fn edit_instructions(self) {
        let open = self.open.get_untracked();
        let current = self.conversations.with_untracked(|list| {
            list.iter().find(|c| c.id == open).and_then(|c| c.instructions.clone()).unwrap_or_default()
        });
        let Some(window) = web_sys::window() else { return };
        let asked = window.prompt_with_message_and_default(
            "Instructions for this conversation (sent to the model as its system prompt; empty: the default)",
            &current,
        );
        if let Ok(Some(instructions)) = asked {
            if instructions != current {
                self.configure(serde_json::json!({ "instructions": instructions }));
            }
        }
    }

    /// Adds or updates a conversation in the list, which stays newest activity first.
    fn upsert_conversation(self, conversation: chat_wire::Conversation) {
        if self.deleting.with_value(|d| d.iter().any(|(_, c, _)| c.id == conversation.id)) {
            return;
        }
        self.conversations.update(|list| {
            list.retain(|c| c.id != conversation.id);
            list.push(conversation);
            list.sort_by(|a, b| b.last_activity.cmp(&a.last_activity));
        });
    }

    /// Starts a conversation in this session and opens it.
    pub fn new_conversation(self) {
        let (Some(config), Some(session)) = (self.config(), self.session.get_untracked()) else { return };
        spawn_local(async move {
            match api::create_conversation(&config, &session.token).await {
                Ok(conversation) => {
                    let id = conversation.id.clone();
                    self.upsert_conversation(conversation);
                    self.open_conversation(id);
                }
                Err(error) => self.toast(error.message(), true),
            }
        });
    }

    /// Shows conversation `id`: its history, and its reply in progress resumed.
    pub fn open_conversation(self, id: String) {
        self.drawer.set(false);
        if self.open.get_untracked() == id {
            return;
        }
        self.open.set(id);
        self.chat.set(Conversation::default());
        self.refresh_history();
    }

    /// Searches the session's conversations; the sidebar shows the hits.
    pub fn search(self, query: String) {
        let (Some(config), Some(session)) = (self.config(), self.session.get_untracked()) else { return };
        if query.trim().is_empty() {
            self.found.set(None);
            return;
        }
        spawn_local(async move {
            match api::search(&config, &session.token, query.trim()).await {
                Ok(results) => self.found.set(Some(results)),
                Err(error) => self.toast(error.message(), true),
            }
        });
    }

    /// Opens a search hit: its conversation, scrolled to its message.
    pub fn open_hit(self, conversation: String, message: Option<String>) {
        self.focus.set_value(message);
        if self.open.get_untracked() == conversation {
            self.drawer.set(false);
            self.scroll_to_focus();
        } else {
            self.open_conversation(conversation);
        }
    }

    /// Scrolls to the message a search hit named, once it is on screen, and marks it.
    fn scroll_to_focus(self) {
        let Some(id) = self.focus.get_value() else { return };
        request_animation_frame(move || {
            let document = web_sys::window().and_then(|w| w.document());
            let found = document.and_then(|d| d.query_selector(&format!("article[data-id='{id}']")).ok().flatten());
            if let Some(element) = found {
                self.focus.set_value(None);
                let _ = element.class_list().add_1("found");
                element.scroll_into_view();
            }
        });
    }

    /// Asks the person for a new title, and renames the conversation.
    pub fn rename_conversation(self, id: String) {
        let (Some(config), Some(session)) = (self.config(), self.session.get_untracked()) else { return };
        let current = self
            .conversations
            .with_untracked(|list| list.iter().find(|c| c.id == id).map(|c| c.title.clone()).unwrap_or_default());
        let Some(window) = web_sys::window() else { return };
        let Ok(Some(title)) = window.prompt_with_message_and_default("Rename this conversation", &current) else {
            return;
        };
        if title.trim().is_empty() || title.trim() == current {
            return;
        }
        spawn_local(async move {
            match api::change_conversation(&config, &session.token, &id, serde_json::json!({ "title": title.trim() }))
                .await
            {
                Ok(conversation) => self.upsert_conversation(conversation),
                Err(error) => self.toast(error.message(), true),
            }
        });
    }

    /// Takes a conversation off the list at once; the server deletes it unless the person
    /// undoes it within the toast's time.
    pub fn delete_conversation(self, id: String) {
        let Some((place, conversation)) = self
            .conversations
            .with_untracked(|list| list.iter().position(|c| c.id == id).map(|i| (i, list[i].clone())))
        else {
            return;
        };
        let title =
            if conversation.title.is_empty() { "New conversation".to_string() } else { conversation.title.clone() };
        let deletion = self.next_toast.get_value();
        self.deleting.update_value(|d| d.push((place, conversation, deletion)));
        self.conversations.update(|list| list.retain(|c| c.id != id));
        if self.open.get_untracked() == id {
            self.open_next();
        }
        self.show_toast(format!("Deleted “{title}”"), false, Some(id.clone()));
        set_timeout(
            move || {
                let pending = self.deleting.with_value(|d| d.iter().any(|(_, c, n)| c.id == id && *n == deletion));
                if !pending {
                    return;
                }
                let (Some(config), Some(session)) = (self.config(), self.session.get_untracked()) else { return };
                spawn_local(async move {
                    let deleted = api::delete_conversation(&config, &session.token, &id).await;
                    self.deleting.update_value(|d| d.retain(|(_, c, n)| !(c.id == id && *n == deletion)));
                    match deleted {
                        Ok(()) | Err(api::ApiError::Refused { status: 404, .. }) => {}
                        Err(error) => {
                            self.toast(error.message(), true);
                            self.load_conversations();
                        }
                    }
                });
            },
            UNDO_WINDOW,
        );
    }

    /// Brings back a conversation deleted on screen, before the server deleted it.
    pub fn undo_delete(self, id: &str) {
        let mut restored = None;
        self.deleting.update_value(|d| {
            if let Some(i) = d.iter().position(|(_, c, _)| c.id == id) {
                restored = Some(d.remove(i));
            }
        });
        if let Some((place, conversation, _)) = restored {
            self.conversations.update(|list| list.insert(place.min(list.len()), conversation));
        }
    }

    /// Opens the most recently active conversation left (the session's first when none is).
    fn open_next(self) {
        let next = self.conversations.with_untracked(|list| list.first().map(|c| c.id.clone()));
        let next = next.unwrap_or_else(|| chat_wire::ConversationId::MAIN.to_string());
        if self.open.get_untracked() == next {
            // The one deleted was `main`, the only one, which the server emptied: show it so.
            self.chat.set(Conversation::default());
            self.refresh_history();
        } else {
            self.open_conversation(next);
        }
        self.load_conversations();
    }

    fn config(self) -> Option<AppConfig> {
        self.config.get_untracked()
    }

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
    fn restore(self) {
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
        self.close_socket();
        api::forget_session();
        self.session.set(None);
        self.chat.set(Conversation::default());
        self.conversations.set(Vec::new());
        self.screen.set(Screen::Welcome);
        self.toast("Your session expired. Enter your name to start a new one.", true);
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
        self.close_socket();
        api::forget_session();
        self.session.set(None);
        self.chat.set(Conversation::default());
        self.conversations.set(Vec::new());
        self.screen.set(Screen::Welcome);
    }

    fn close_socket(self) {
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

    fn receive(self, frame: ServerFrame) {
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
                    // sends its unacknowledged questions again.
                    self.attempt.set_value(1);
                    self.connect();
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

    fn refresh_history(self) {
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

    fn check_session_then_reconnect(self) {
        let (Some(config), Some(session)) = (self.config(), self.session.get_untracked()) else { return };
        spawn_local(async move {
            match api::conversations(&config, &session.token).await {
                Err(api::ApiError::Refused { status: 400, .. }) => self.expire(),
                _ => self.schedule_reconnect(),
            }
        });
    }

    /// Waits (3 s, doubling, jittered, at most 30 s), counting down, then reconnects.
    fn schedule_reconnect(self) {
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

    fn countdown(self, seconds: u32, generation: u64) {
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
    fn back_online(self) {
        if self.session.get_untracked().is_some() && self.link.get_untracked() != Link::Connected {
            self.attempt.set_value(1);
            self.connect();
        }
    }

    fn send_frame(self, frame: &ClientFrame) -> bool {
        let text = serde_json::to_string(frame).expect("frames always serialize");
        self.socket.with_value(|socket| match socket {
            Some(socket) if socket.ready_state() == web_sys::WebSocket::OPEN => socket.send_with_str(&text).is_ok(),
            _ => false,
        })
    }

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
    fn resend(self, questions: Vec<(String, String)>) {
        for (id, content) in questions {
            let edits = self.chat.with_untracked(|c| c.edits_of(&id));
            self.send_frame(&ClientFrame::SendMessage { id, content, conversation: self.open_id(), edits });
        }
    }

    /// Sends the unacknowledged questions again after a backoff (3 s, doubling, at most 30 s).
    fn resend_later(self) {
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

    /// Asks for every reply still being written as it stands now; its later deltas reach this
    /// connection, whichever worker writes them.
    fn resume_replies(self) {
        for question in self.chat.with_untracked(|c| c.replies_to_resume()) {
            self.send_frame(&ClientFrame::Resume { reply_to: question, conversation: self.open_id() });
        }
    }

    /// The open conversation, as frames name it.
    fn open_id(self) -> Option<String> {
        Some(self.open.get_untracked())
    }

    /// Shows another version of a place in the open conversation.
    pub fn show_version(self, first: String) {
        let (Some(config), Some(session)) = (self.config(), self.session.get_untracked()) else { return };
        let open = self.open.get_untracked();
        spawn_local(async move {
            match api::show_version(&config, &session.token, &open, &first).await {
                Ok(stored) if self.open.get_untracked() == open => self.chat.update(|c| c.load(stored.messages)),
                Ok(_) => {}
                Err(error) => self.toast(error.message(), true),
            }
        });
    }

    /// Edits a question: the person rewrites it, and it is sent as a new version of its place
    /// (the server keeps the old question and what followed it as the other version).
    pub fn edit(self, question: String) {
        let current =
            self.chat.with_untracked(|c| c.messages.iter().find(|m| m.id == question).map(|m| m.text.clone()));
        let Some(current) = current else { return };
        let Some(window) = web_sys::window() else { return };
        let Ok(Some(text)) = window.prompt_with_message_and_default("Edit your question", &current) else { return };
        if text.trim().is_empty() || text == current {
            return;
        }
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

    fn keep_alive(self) {
        set_interval(
            move || {
                self.send_frame(&ClientFrame::Ping);
            },
            PING_EVERY,
        );
    }
}

/// The root component.
#[component]
pub fn App() -> impl IntoView {
    let state = AppState::new();
    provide_context(state);
    spawn_local(async move {
        match api::load_config().await {
            Ok(config) => {
                state.config.set(Some(config));
                state.restore();
            }
            Err(problem) => {
                state.config_problem.set(Some(problem));
                state.screen.set(Screen::Unconfigured);
            }
        }
    });
    state.keep_alive();
    let online = window_event_listener(leptos::ev::online, move |_| state.back_online());
    let offline = window_event_listener(leptos::ev::offline, move |_| state.link.set(Link::Offline));
    on_cleanup(move || {
        online.remove();
        offline.remove();
    });

    let max_bytes = Signal::derive(move || state.config.get().map_or(8192, |c| c.max_message_bytes));
    let awaiting = Signal::derive(move || state.chat.with(|c| c.awaiting_reply()));
    let connected = Signal::derive(move || state.link.get() == Link::Connected);
    let messages = Signal::derive(move || state.chat.with(|c| c.messages.clone()));
    let regenerable = Signal::derive(move || state.chat.with(|c| c.regenerable()));
    let conversations = Signal::derive(move || state.conversations.get());
    let open = Signal::derive(move || state.open.get());
    let found = Signal::derive(move || state.found.get());
    let chosen_model = Signal::derive(move || {
        let open = state.open.get();
        state.conversations.with(|list| list.iter().find(|c| c.id == open).and_then(|c| c.model.clone()))
    });

    view! {
        <div class="backdrop" aria-hidden="true"></div>
        <Toasts toasts=state.toasts />
        <div class="sr-only" aria-live="polite" role="status">{move || state.announcement.get()}</div>
        {move || match state.screen.get() {
            Screen::Loading => view! { <SessionRestoreLoader /> }.into_any(),
            Screen::Unconfigured => view! {
                <main class="welcome glass unconfigured" role="alert">
                    <h1>"This chat is not set up"</h1>
                    <p>{move || state.config_problem.get().unwrap_or_default()}</p>
                </main>
            }.into_any(),
            Screen::Welcome => view! { <WelcomeModal on_start=Callback::new(move |(name, busy, problem)| state.start(name, busy, problem)) /> }.into_any(),
            Screen::Chat => view! {
                <div class="layout">
                <Sidebar
                    conversations=conversations
                    open=open
                    drawer=state.drawer
                    on_new=Callback::new(move |_: ()| state.new_conversation())
                    on_open=Callback::new(move |id: String| state.open_conversation(id))
                    on_rename=Callback::new(move |id: String| state.rename_conversation(id))
                    on_delete=Callback::new(move |id: String| state.delete_conversation(id))
                    found=found
                    on_search=Callback::new(move |query: String| state.search(query))
                    on_hit=Callback::new(move |(conversation, message): (String, Option<String>)| state.open_hit(conversation, message))
                />
                <main class="chat glass">
                    <header class="chat-header">
                        <button
                            type="button"
                            class="ghost menu"
                            data-testid="menu"
                            aria-label="Conversations"
                            aria-expanded=move || if state.drawer.get() { "true" } else { "false" }
                            on:click=move |_| state.drawer.update(|open| *open = !*open)
                        >
                            "☰"
                        </button>
                        <div>
                            <h1>"AI Chat"</h1>
                            <p class="who">{move || state.session.get().map(|s| format!("Signed in as {}", s.name)).unwrap_or_default()}</p>
                        </div>
                        <ConnectionStatus link=state.link />
                        <Show when=move || state.models.with(|m| m.as_ref().is_some_and(|m| m.models.len() > 1))>
                            <select
                                class="ghost model-choice"
                                data-testid="model"
                                aria-label="The model of this conversation"
                                on:change=move |event| state.configure(serde_json::json!({ "model": event_target_value(&event) }))
                            >
                                {move || {
                                    let models = state.models.get().map(|m| m.models).unwrap_or_default();
                                    let default = state.models.get().map(|m| m.default).unwrap_or_default();
                                    let chosen = chosen_model.get().unwrap_or_else(|| default.clone());
                                    models
                                        .into_iter()
                                        .map(|model| {
                                            let value = if model == default { String::new() } else { model.clone() };
                                            let selected = model == chosen;
                                            view! { <option value=value selected=selected>{model}</option> }
                                        })
                                        .collect_view()
                                }}
                            </select>
                        </Show>
                        <button type="button" class="ghost" data-testid="instructions" title="This conversation's own instructions" aria-label="This conversation's instructions" on:click=move |_| state.edit_instructions()>"⚙"</button>
                        <div class="export" role="group" aria-label="Download this conversation">
                            <button type="button" class="ghost" data-testid="export-markdown" on:click=move |_| state.export("markdown") title="Download this conversation as Markdown">"⇩ .md"</button>
                            <button type="button" class="ghost" data-testid="export-json" on:click=move |_| state.export("json") title="Download this conversation as JSON">"⇩ .json"</button>
                        </div>
                        <button type="button" class="ghost" on:click=move |_| state.sign_out() aria-label="Start a new session" title="End this session: every conversation is deleted">"End session"</button>
                    </header>
                    <MessageList
                        messages=messages
                        awaiting=awaiting
                        regenerable=regenerable
                        on_regenerate=Callback::new(move |_: ()| state.regenerate())
                        on_version=Callback::new(move |id: String| state.show_version(id))
                        on_edit=Callback::new(move |id: String| state.edit(id))
                    />
                    <MessageInput
                        connected=connected
                        streaming=awaiting
                        max_bytes=max_bytes
                        on_send=Callback::new(move |text: String| state.send(text))
                        on_stop=Callback::new(move |_: ()| state.stop())
                    />
                </main>
                </div>
            }.into_any(),
        }}
    }
}
