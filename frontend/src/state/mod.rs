//! The application's state and what changes it. [`AppState`] holds every reactive handle the
//! screens share (all `Copy`); its methods live by concern:
//!
//! * this module: the state itself, toasts, the drawer and the in-page dialog;
//! * [`conversations`]: the list, opening one, search, rename, delete and undo, models and
//!   instructions, versions;
//! * [`session`]: starting, restoring, expiring, exporting and ending a session;
//! * [`socket`]: the WebSocket: connecting, reconnecting, receiving frames, the history reload;
//! * [`questions`]: sending a question (and again), editing, regenerating, stopping.
//!
//! The conversation's own logic (how each frame changes it) is `crate::chat`, pure and host-tested.

mod conversations;
mod questions;
mod session;
mod socket;

use std::time::Duration;

use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::api::{SavedSession, SiteConfig};
use crate::chat::Conversation;
pub use crate::components::Dialog;

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

/// Puts the focus on the element `selector` names, once it is on screen: a few frames at most
/// (a screen's elements are attached a little after it is chosen).
pub fn focus_when_shown(selector: &'static str) {
    fn attempt(selector: &'static str, frames_left: u32) {
        request_animation_frame(move || {
            let element = web_sys::window()
                .and_then(|w| w.document())
                .and_then(|d| d.query_selector(selector).ok().flatten())
                .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
            match element {
                Some(element) => {
                    let _ = element.focus();
                }
                None if frames_left > 0 => attempt(selector, frames_left - 1),
                None => {}
            }
        });
    }
    attempt(selector, 30);
}

/// Puts the focus in the message box (after signing in: the next thing a person does is type).
fn focus_composer() {
    focus_when_shown(".composer textarea");
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
    pub config: RwSignal<Option<SiteConfig>>,
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
    /// What the in-page dialog asks for, while it is open.
    pub dialog: RwSignal<Option<Dialog>>,
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
    /// The message box takes the focus once the connection opens (it is disabled until then):
    /// set when the person has just signed in.
    composer_focus_pending: StoredValue<bool>,
}

impl AppState {
    pub(crate) fn new() -> Self {
        AppState {
            config: RwSignal::new(None),
            screen: RwSignal::new(Screen::Loading),
            config_problem: RwSignal::new(None),
            session: RwSignal::new(None),
            chat: RwSignal::new(Conversation::default()),
            open: RwSignal::new(chat_wire::ConversationId::MAIN.to_string()),
            conversations: RwSignal::new(Vec::new()),
            drawer: RwSignal::new(false),
            dialog: RwSignal::new(None),
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
            composer_focus_pending: StoredValue::new(false),
        }
    }

    /// Shows a toast for six seconds.
    pub fn toast(self, text: impl Into<String>, error: bool) {
        self.show_toast(text.into(), error, None);
    }

    pub(crate) fn show_toast(self, text: String, error: bool, undo: Option<String>) {
        let id = self.next_toast.get_value();
        self.next_toast.set_value(id + 1);
        self.toasts.update(|t| t.push(Toast { id, text, error, undo }));
        set_timeout(move || self.toasts.update(|t| t.retain(|x| x.id != id)), UNDO_WINDOW);
    }

    pub(crate) fn config(self) -> Option<SiteConfig> {
        self.config.get_untracked()
    }

    /// The open conversation, as frames name it.
    pub(crate) fn open_id(self) -> Option<String> {
        Some(self.open.get_untracked())
    }

    /// Opens the in-page dialog for `what`.
    pub fn ask(self, what: Dialog) {
        self.dialog.set(Some(what));
    }

    /// The text the dialog for `what` starts with: what it changes, as it stands.
    pub fn current_text(self, what: &Dialog) -> String {
        match what {
            Dialog::Instructions => {
                let open = self.open.get_untracked();
                self.conversations.with_untracked(|list| {
                    list.iter().find(|c| c.id == open).and_then(|c| c.instructions.clone()).unwrap_or_default()
                })
            }
            Dialog::Rename(id) => self
                .conversations
                .with_untracked(|list| list.iter().find(|c| c.id == *id).map(|c| c.title.clone()).unwrap_or_default()),
            Dialog::Edit(question) => self.chat.with_untracked(|c| {
                c.messages.iter().find(|m| m.id == *question).map(|m| m.text.clone()).unwrap_or_default()
            }),
        }
    }

    /// What the person entered in the dialog for `what`.
    pub fn answer(self, what: Dialog, text: String) {
        let current = self.current_text(&what);
        match what {
            Dialog::Instructions if text != current => self.configure(chat_wire::ConversationChanges {
                instructions: Some(text),
                ..chat_wire::ConversationChanges::default()
            }),
            Dialog::Rename(id) if !text.trim().is_empty() && text.trim() != current => self.rename(id, text),
            Dialog::Edit(question) if !text.trim().is_empty() && text != current => self.edit(question, text),
            _ => {}
        }
    }

    /// Opens or closes the drawer (phones): the focus goes into it, and back to its button.
    pub fn set_drawer(self, open: bool) {
        if self.drawer.get_untracked() == open {
            return;
        }
        self.drawer.set(open);
        request_animation_frame(move || {
            let selector = if open { "#sidebar [data-testid=new-chat]" } else { "[data-testid=menu]" };
            let target = web_sys::window()
                .and_then(|w| w.document())
                .and_then(|d| d.query_selector(selector).ok().flatten())
                .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
            // Only where the drawer is a drawer: its button shows.
            if let Some(target) = target.filter(|t| t.offset_parent().is_some()) {
                let _ = target.focus();
            }
        });
    }
}
