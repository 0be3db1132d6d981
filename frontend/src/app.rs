//! The root component: which screen shows. The state it provides is `crate::state`; the page's
//! parts are `crate::components`.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::components::{
    ChatHeader, MessageInput, MessageList, SessionRestoreLoader, Sidebar, TextDialog, Toasts, WelcomeModal,
};
use crate::state::{AppState, Dialog, Link, Screen};

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
    // Escape closes the drawer (the dialog and the header's menu close themselves).
    let escape = window_event_listener(leptos::ev::keydown, move |event| {
        if event.key() == "Escape" && state.drawer.get_untracked() && state.dialog.get_untracked().is_none() {
            state.set_drawer(false);
        }
    });
    on_cleanup(move || {
        online.remove();
        offline.remove();
        escape.remove();
    });

    let max_bytes = Signal::derive(move || state.config.get().map_or(8192, |c| c.max_message_bytes));
    let awaiting = Signal::derive(move || state.chat.with(|c| c.awaiting_reply()));
    let connected = Signal::derive(move || state.link.get() == Link::Connected);
    // Copied once per change, then read in place by every bubble.
    let messages: Signal<Vec<crate::chat::UiMessage>> =
        Memo::new(move |_| state.chat.with(|c| c.messages.clone())).into();
    let regenerable = Signal::derive(move || state.chat.with(|c| c.regenerable()));
    let conversations = Signal::derive(move || state.conversations.get());
    let open = Signal::derive(move || state.open.get());
    let found = Signal::derive(move || state.found.get());

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
                    on_close=Callback::new(move |_: ()| state.set_drawer(false))
                    on_new=Callback::new(move |_: ()| state.new_conversation())
                    on_open=Callback::new(move |id: String| state.open_conversation(id))
                    on_rename=Callback::new(move |id: String| state.ask(Dialog::Rename(id)))
                    on_delete=Callback::new(move |id: String| state.delete_conversation(id))
                    found=found
                    on_search=Callback::new(move |query: String| state.search(query))
                    on_hit=Callback::new(move |(conversation, message): (String, Option<String>)| state.open_hit(conversation, message))
                />
                <main class="chat glass">
                    <ChatHeader />
                    <MessageList
                        messages=messages
                        awaiting=awaiting
                        regenerable=regenerable
                        on_regenerate=Callback::new(move |_: ()| state.regenerate())
                        on_version=Callback::new(move |id: String| state.show_version(id))
                        on_edit=Callback::new(move |id: String| state.ask(Dialog::Edit(id)))
                    />
                    <MessageInput
                        connected=connected
                        streaming=awaiting
                        max_bytes=max_bytes
                        on_send=Callback::new(move |text: String| state.send(text))
                        on_stop=Callback::new(move |_: ()| state.stop())
                    />
                </main>
                <TextDialog />
                </div>
            }.into_any(),
        }}
    }
}
