use chat_wire::Conversation;
use leptos::prelude::*;

/// When a conversation was last active, as the person's clock shows it.
fn when(rfc3339: &str) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(rfc3339));
    let today = js_sys::Date::new_0().to_date_string() == date.to_date_string();
    let shown = if today {
        date.to_locale_time_string("default")
    } else {
        date.to_locale_date_string("default", &wasm_bindgen::JsValue::UNDEFINED)
    };
    shown.as_string().unwrap_or_default()
}

/// The session's conversations, newest activity first: open, rename or delete one, or start a
/// new one. On a phone it is a drawer, opened from the header's menu button.
#[component]
pub fn Sidebar(
    conversations: Signal<Vec<Conversation>>,
    open: Signal<String>,
    drawer: RwSignal<bool>,
    on_new: Callback<()>,
    on_open: Callback<String>,
    on_rename: Callback<String>,
    on_delete: Callback<String>,
) -> impl IntoView {
    view! {
        <div class="drawer-shade" class:shown=move || drawer.get() on:click=move |_| drawer.set(false) aria-hidden="true"></div>
        <nav class="sidebar glass" class:open=move || drawer.get() aria-label="Conversations" data-testid="sidebar">
            <button type="button" class="ghost new-chat" data-testid="new-chat" on:click=move |_| on_new.run(())>"+ New chat"</button>
            <ul>
                <For
                    each=move || conversations.get()
                    key=|c| (c.id.clone(), c.title.clone(), c.last_activity.clone())
                    let:conversation
                >
                    {
                        let id = conversation.id.clone();
                        let (open_id, rename_id, delete_id) = (id.clone(), id.clone(), id.clone());
                        let current = Signal::derive({
                            let id = id.clone();
                            move || open.get() == id
                        });
                        let title = if conversation.title.is_empty() { "New conversation".to_string() } else { conversation.title.clone() };
                        view! {
                            <li class="conversation" class:current=current data-testid="conversation" data-id=id.clone()>
                                <button
                                    type="button"
                                    class="open"
                                    aria-current=move || if current.get() { "page" } else { "false" }
                                    on:click=move |_| on_open.run(open_id.clone())
                                >
                                    <span class="title" data-testid="conversation-title">{title.clone()}</span>
                                    <span class="when">{when(&conversation.last_activity)}</span>
                                </button>
                                <button type="button" class="icon" data-testid="rename" aria-label=format!("Rename {title}") title="Rename" on:click=move |_| on_rename.run(rename_id.clone())>"✎"</button>
                                <button type="button" class="icon" data-testid="delete" aria-label=format!("Delete {title}") title="Delete" on:click=move |_| on_delete.run(delete_id.clone())>"✕"</button>
                            </li>
                        }
                    }
                </For>
            </ul>
        </nav>
    }
}
