use leptos::prelude::*;

/// The message box: grows with its text, Enter sends, Shift+Enter adds a line; disabled while
/// disconnected; shows the character count near the limit; a Stop button while a reply streams.
#[component]
pub fn MessageInput(
    /// Whether the WebSocket is open.
    connected: Signal<bool>,
    /// Whether a reply is being written.
    streaming: Signal<bool>,
    /// The server's size limit, in UTF-8 bytes.
    max_bytes: Signal<usize>,
    /// Called with the text to send.
    on_send: Callback<String>,
    /// Called when the person presses Stop.
    on_stop: Callback<()>,
) -> impl IntoView {
    let text = RwSignal::new(String::new());
    let area = NodeRef::<leptos::html::Textarea>::new();
    let size = move || text.with(|t| t.len());
    let too_long = move || size() > max_bytes.get();
    let near_limit = move || size() * 5 >= max_bytes.get() * 4;
    let can_send = move || connected.get() && !streaming.get() && !too_long() && text.with(|t| !t.trim().is_empty());
    let resize = move || {
        if let Some(area) = area.get() {
            let style = web_sys::HtmlElement::style(&area);
            let _ = style.set_property("height", "auto");
            let height = area.scroll_height();
            let _ = style.set_property("height", &format!("{}px", height.min(200)));
            let _ = style.set_property("overflow-y", if height > 200 { "auto" } else { "hidden" });
        }
    };
    let send = move || {
        if !can_send() {
            return;
        }
        on_send.run(text.get_untracked());
        text.set(String::new());
        request_animation_frame(resize);
    };
    view! {
        <form class="composer" on:submit=move |ev| { ev.prevent_default(); send(); }>
            <textarea
                node_ref=area
                rows="1"
                placeholder=move || if connected.get() { "Ask anything…" } else { "Waiting for the connection…" }
                aria-label="Message"
                disabled=move || !connected.get()
                prop:value=move || text.get()
                on:input=move |ev| { text.set(event_target_value(&ev)); resize(); }
                on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                    if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                        ev.prevent_default();
                        send();
                    }
                }
            ></textarea>
            <Show when=near_limit>
                <span class=move || if too_long() { "count over" } else { "count" } aria-live="polite">
                    {move || format!("{} / {}", size(), max_bytes.get())}
                </span>
            </Show>
            <Show
                when=move || streaming.get()
                fallback=move || view! {
                    <button type="submit" class="primary send" disabled=move || !can_send() aria-label="Send message">"Send"</button>
                }
            >
                <button type="button" class="stop" on:click=move |_| on_stop.run(()) aria-label="Stop the reply">"Stop"</button>
            </Show>
        </form>
    }
}
