use chat_wire::{Conversation, SearchResults};
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
    /// Closes the drawer.
    on_close: Callback<()>,
    on_new: Callback<()>,
    on_open: Callback<String>,
    on_rename: Callback<String>,
    on_delete: Callback<String>,
    found: Signal<Option<SearchResults>>,
    on_search: Callback<String>,
    on_hit: Callback<(String, Option<String>)>,
) -> impl IntoView {
    let query = RwSignal::new(String::new());
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        on_search.run(query.get_untracked());
    };
    let clear = move |_| {
        query.set(String::new());
        on_search.run(String::new());
    };
    let hits = move || found.get().map(|results| results.hits).unwrap_or_default();
    view! {
        <div class="drawer-shade" class:shown=move || drawer.get() on:click=move |_| on_close.run(()) aria-hidden="true"></div>
        <nav id="sidebar" class="sidebar glass" class:open=move || drawer.get() aria-label="Conversations" data-testid="sidebar">
            <button type="button" class="ghost new-chat" data-testid="new-chat" on:click=move |_| on_new.run(())>"+ New chat"</button>
            <form class="search" role="search" on:submit=submit>
                <input
                    type="search"
                    data-testid="search"
                    placeholder="Search conversations"
                    aria-label="Search conversations"
                    prop:value=move || query.get()
                    on:input=move |event| query.set(event_target_value(&event))
                />
                <Show when=move || found.get().is_some()>
                    <button type="button" class="icon" data-testid="clear-search" aria-label="Clear the search" on:click=clear>"✕"</button>
                </Show>
            </form>
            <Show when=move || found.get().is_some()>
                <p class="hits-count" data-testid="hits-count">
                    {move || match hits().len() { 0 => "Nothing found".to_string(), 1 => "1 place".to_string(), n => format!("{n} places") }}
                </p>
                <ul class="hits">
                    <For each=hits key=|hit| (hit.conversation.clone(), hit.message_id.clone()) let:hit>
                        {
                            let target = (hit.conversation.clone(), hit.message_id.clone());
                            view! {
                                <li>
                                    <button type="button" class="hit" data-testid="search-hit" on:click=move |_| on_hit.run(target.clone())>
                                        <span class="title">{hit.title.clone()}</span>
                                        // A title's hit is the title itself: said once.
                                        {hit.message_id.is_some().then(|| view! { <span class="snippet">{hit.snippet.clone()}</span> })}
                                    </button>
                                </li>
                            }
                        }
                    </For>
                </ul>
            </Show>
            <ul hidden=move || found.get().is_some()>
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
