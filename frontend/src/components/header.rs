use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::components::ConnectionStatus;
use crate::state::{AppState, Dialog};

/// The chat's header: the drawer's button (phones), who is chatting, the connection, and the
/// open conversation's controls (model, instructions, export, end the session). Where the chat
/// is narrow (a phone, a tablet beside the sidebar) the controls fold behind "⋯", a menu that
/// takes the focus when it opens, gives it back when it closes, and closes on Escape or when the
/// focus leaves it.
#[component]
pub fn ChatHeader() -> impl IntoView {
    let state = expect_context::<AppState>();
    let menu_open = RwSignal::new(false);
    let more = NodeRef::<leptos::html::Button>::new();
    let actions = NodeRef::<leptos::html::Div>::new();
    let chosen_model = Signal::derive(move || {
        let open = state.open.get();
        state.conversations.with(|list| list.iter().find(|c| c.id == open).and_then(|c| c.model.clone()))
    });
    let close_menu = move |refocus: bool| {
        if menu_open.get_untracked() {
            menu_open.set(false);
            if refocus {
                if let Some(button) = more.get_untracked() {
                    let _ = button.focus();
                }
            }
        }
    };
    let toggle_menu = move |_| {
        let opening = !menu_open.get_untracked();
        menu_open.set(opening);
        if opening {
            // Into the menu, at its first control, once it is shown.
            request_animation_frame(move || {
                let first = actions
                    .get_untracked()
                    .and_then(|menu| menu.query_selector("button, select").ok().flatten())
                    .and_then(|first| first.dyn_into::<web_sys::HtmlElement>().ok());
                if let Some(first) = first {
                    let _ = first.focus();
                }
            });
        }
    };
    let on_keydown = move |event: leptos::ev::KeyboardEvent| {
        if event.key() == "Escape" && menu_open.get_untracked() {
            event.stop_propagation();
            close_menu(true);
        }
    };
    // The focus left the menu (a click elsewhere, Tab past its end): it closes.
    let on_focusout = move |event: leptos::ev::FocusEvent| {
        let into = event.related_target().and_then(|t| t.dyn_into::<web_sys::Node>().ok());
        let inside = |node: &web_sys::Node| {
            actions.get_untracked().is_some_and(|menu| menu.contains(Some(node)))
                || more.get_untracked().is_some_and(|button| button.contains(Some(node)))
        };
        if !into.as_ref().is_some_and(inside) {
            close_menu(false);
        }
    };
    // An action taken from the menu closes it, focus back on "⋯".
    let act = move |action: Box<dyn Fn()>| {
        close_menu(true);
        action();
    };
    view! {
        <header class="chat-header" on:keydown=on_keydown>
            <button
                type="button"
                class="ghost menu"
                data-testid="menu"
                aria-label="Conversations"
                aria-controls="sidebar"
                aria-expanded=move || state.drawer.get().to_string()
                on:click=move |_| state.set_drawer(!state.drawer.get_untracked())
            >
                "☰"
            </button>
            <div class="heading">
                <h1>"AI Chat"</h1>
                <p class="who">{move || state.session.get().map(|s| format!("Signed in as {}", s.name)).unwrap_or_default()}</p>
            </div>
            <ConnectionStatus link=state.link />
            <button
                type="button"
                class="ghost more"
                data-testid="more"
                aria-label="Conversation menu"
                aria-haspopup="true"
                aria-controls="header-actions"
                aria-expanded=move || menu_open.get().to_string()
                node_ref=more
                on:click=toggle_menu
                on:focusout=on_focusout
            >
                "⋯"
            </button>
            <div id="header-actions" class="header-actions" class:open=move || menu_open.get() node_ref=actions on:focusout=on_focusout>
                <Show when=move || state.models.with(|m| m.as_ref().is_some_and(|m| m.models.len() > 1))>
                    <select
                        class="ghost model-choice"
                        data-testid="model"
                        aria-label="The model of this conversation"
                        on:change=move |event| state.choose_model(event_target_value(&event))
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
                <button type="button" class="ghost" data-testid="instructions" title="This conversation's own instructions" on:click=move |_| act(Box::new(move || state.ask(Dialog::Instructions)))>"⚙ Instructions"</button>
                <div class="export" role="group" aria-label="Download this conversation">
                    <button type="button" class="ghost" data-testid="export-markdown" on:click=move |_| act(Box::new(move || state.export("markdown"))) title="Download this conversation as Markdown">"⇩ .md"</button>
                    <button type="button" class="ghost" data-testid="export-json" on:click=move |_| act(Box::new(move || state.export("json"))) title="Download this conversation as JSON">"⇩ .json"</button>
                </div>
                <button type="button" class="ghost" data-testid="end-session" on:click=move |_| act(Box::new(move || state.sign_out())) title="End this session: every conversation is deleted">"End session"</button>
            </div>
        </header>
    }
}
