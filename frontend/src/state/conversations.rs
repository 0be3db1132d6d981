//! The session's conversations: the list, opening one, search and its hits, rename, delete with
//! undo, the models and instructions a conversation may have, and its versions.

use chat_wire::ConversationChanges;

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self};
use crate::chat::Conversation;

use super::*;

impl AppState {
    /// The session's conversations, from the server (the sidebar).
    pub(crate) fn load_conversations(self) {
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
    pub(crate) fn load_models(self) {
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
    pub fn configure(self, changes: ConversationChanges) {
        let (Some(config), Some(session)) = (self.config(), self.session.get_untracked()) else { return };
        let open = self.open.get_untracked();
        spawn_local(async move {
            match api::change_conversation(&config, &session.token, &open, &changes).await {
                Ok(conversation) => self.upsert_conversation(conversation),
                Err(error) => self.toast(error.message(), true),
            }
        });
    }

    /// Sets the open conversation's model (`""`: the deployment's default).
    pub fn choose_model(self, model: String) {
        self.configure(ConversationChanges { model: Some(model), ..ConversationChanges::default() });
    }

    /// Adds or updates a conversation in the list, which stays newest activity first.
    pub(crate) fn upsert_conversation(self, conversation: chat_wire::Conversation) {
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
        self.set_drawer(false);
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
            self.set_drawer(false);
            self.scroll_to_focus();
        } else {
            self.open_conversation(conversation);
        }
    }

    /// Scrolls to the message a search hit named, once it is on screen, and marks it.
    pub(crate) fn scroll_to_focus(self) {
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

    /// Renames conversation `id` to `title`.
    pub(crate) fn rename(self, id: String, title: String) {
        let (Some(config), Some(session)) = (self.config(), self.session.get_untracked()) else { return };
        spawn_local(async move {
            let changes =
                ConversationChanges { title: Some(title.trim().to_string()), ..ConversationChanges::default() };
            match api::change_conversation(&config, &session.token, &id, &changes).await {
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
    pub(crate) fn open_next(self) {
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
}
