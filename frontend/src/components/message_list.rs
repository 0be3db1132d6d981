use chat_wire::{ReplyStatus, Source, Usage};
use leptos::prelude::*;
use wasm_bindgen::JsCast;

use crate::chat::{Delivery, UiMessage};
use crate::markdown;
use crate::reveal::Reveal;

/// The conversation. Follows new text while the reader is at the bottom, and stays put when they
/// have scrolled up to read.
#[component]
pub fn MessageList(
    /// The messages, oldest first.
    messages: Signal<Vec<UiMessage>>,
    /// Whether a reply is awaited (typing indicator before its first token).
    awaiting: Signal<bool>,
    /// The question a Regenerate button may answer again (the last one, once its reply ended).
    regenerable: Signal<Option<String>>,
    /// Asks for a new reply to that question.
    on_regenerate: Callback<()>,
    /// Shows another version of a place (its first message's id).
    on_version: Callback<String>,
    /// Edits a question of the person (its id).
    on_edit: Callback<String>,
) -> impl IntoView {
    let list = NodeRef::<leptos::html::Div>::new();
    let pinned = StoredValue::new(true);
    // The streaming reply is shown a little more at every animation frame (crate::reveal).
    let reveal = RwSignal::new(Reveal::default());
    let revealing = StoredValue::new(false);
    Effect::new(move |_| {
        let streaming = messages.with(|m| {
            m.iter()
                .rev()
                .find(|m| m.source == Source::Assistant && m.status == ReplyStatus::Streaming)
                .map(|m| (m.id.clone(), m.text.len()))
        });
        let now = js_sys::Date::now();
        match streaming {
            Some((id, len)) => reveal.update(|r| r.arrived(&id, len, now)),
            // A finished reply's last text (a reload of it, say) is revealed too.
            None => {
                let tracked = reveal.with_untracked(|r| r.id().map(str::to_string));
                if let Some(id) = tracked {
                    let len = messages.with(|m| m.iter().find(|m| m.id == id).map(|m| m.text.len()));
                    reveal.update(|r| r.arrived(&id, len.unwrap_or(0), now));
                }
            }
        }
        if !revealing.get_value() {
            revealing.set_value(true);
            reveal_frames(reveal, messages, revealing, now);
        }
    });
    let on_scroll = move |_| {
        if let Some(el) = list.get() {
            pinned.set_value(el.scroll_height() - el.scroll_top() - el.client_height() < 48);
        }
    };
    Effect::new(move |_| {
        messages.track();
        reveal.track();
        awaiting.track();
        if pinned.get_value() {
            request_animation_frame(move || {
                if let Some(el) = list.get() {
                    el.set_scroll_top(el.scroll_height());
                }
            });
        }
    });
    // One listener for every code block's copy button.
    let on_click = move |ev: leptos::ev::MouseEvent| {
        let Some(target) = ev.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()) else { return };
        if !target.class_list().contains("copy") {
            return;
        }
        let code = target
            .closest(".code")
            .ok()
            .flatten()
            .and_then(|block| block.query_selector("code").ok().flatten())
            .and_then(|code| code.text_content());
        if let (Some(code), Some(window)) = (code, web_sys::window()) {
            let _ = window.navigator().clipboard().write_text(&code);
            target.set_text_content(Some("Copied"));
        }
    };
    let first_token_pending =
        move || awaiting.get() && !messages.with(|m| m.last().is_some_and(|m| m.source == Source::Assistant));
    view! {
        <div class="messages" node_ref=list on:scroll=on_scroll on:click=on_click role="log" aria-label="Conversation">
            <Show when=move || messages.with(|m| m.is_empty())>
                <p class="empty">"Say hello to start the conversation."</p>
            </Show>
            <For
                each=move || {
                    let mut shown = messages.get();
                    // The reply the reveal effect follows: the newest one streaming.
                    let newest = shown
                        .iter()
                        .rev()
                        .find(|m| m.source == Source::Assistant && m.status == ReplyStatus::Streaming)
                        .map(|m| m.id.clone());
                    reveal.with(|r| {
                        for message in shown.iter_mut() {
                            if r.id() == Some(message.id.as_str()) {
                                let visible = r.visible(&message.id, &message.text).len();
                                message.text.truncate(visible);
                            } else if newest.as_deref() == Some(message.id.as_str()) {
                                // Its reveal has not started yet (the effect that starts it runs
                                // after this render): shown from nothing, not in full for one
                                // frame and then from nothing.
                                message.text.clear();
                            }
                        }
                    });
                    shown
                }
                key=|m| (m.id.clone(), m.text.len(), m.status, m.delivery, m.usage, m.versions.clone())
                let:message
            >
                <MessageBubble message=message awaiting=awaiting on_version=on_version on_edit=on_edit />
            </For>
            {move || {
                let total = messages.with(|m| m.iter().filter_map(|m| m.usage).reduce(|a, b| a + b));
                total.map(|total| {
                    view! {
                        <p class="total-usage" data-testid="total-usage" title="What this conversation's replies took, as the model's provider counted">
                            "This conversation: " {usage_text(&total)}
                        </p>
                    }
                })
            }}
            <Show when=move || regenerable.with(Option::is_some) && !awaiting.get()>
                <div class="regenerate">
                    <button type="button" class="ghost" on:click=move |_| on_regenerate.run(())>"↻ Regenerate"</button>
                </div>
            </Show>
            <Show when=first_token_pending>
                <div class="bubble ai typing" aria-label="The assistant is typing">
                    <span></span><span></span><span></span>
                </div>
            </Show>
        </div>
    }
}

/// Shows more of the revealed reply at each animation frame until all of it is shown. Stops by
/// itself when the conversation's screen is gone (its signals disposed): a frame may still be
/// scheduled when a person starts a new chat.
fn reveal_frames(reveal: RwSignal<Reveal>, messages: Signal<Vec<UiMessage>>, revealing: StoredValue<bool>, last: f64) {
    request_animation_frame(move || {
        let now = js_sys::Date::now();
        let Some(id) = reveal.try_with_untracked(|r| r.id().map(str::to_string)) else { return };
        let text = id.and_then(|id| {
            messages.try_with_untracked(|m| m.iter().find(|m| m.id == id).map(|m| m.text.clone())).flatten()
        });
        let more = match text {
            Some(text) => reveal.try_update(|r| r.advance(&text, now - last)).unwrap_or(false),
            None => false,
        };
        if more {
            reveal_frames(reveal, messages, revealing, now);
        } else {
            revealing.try_set_value(false);
        }
    });
}

/// `12 + 34 tokens · $0.0001`: a reply's (or a conversation's) prompt and completion tokens, and
/// their price when one is configured.
fn usage_text(usage: &Usage) -> String {
    let tokens = format!("{} + {} tokens", usage.prompt_tokens, usage.completion_tokens);
    match usage.cost_micro_usd {
        // Small replies cost fractions of a cent: shown to the micro-dollar.
        Some(micro) if micro < 10_000 => format!("{tokens} · ${:.6}", micro as f64 / 1_000_000.0),
        Some(micro) => format!("{tokens} · ${:.4}", micro as f64 / 1_000_000.0),
        None => tokens,
    }
}

/// "‹ 2 / 3 ›": the versions of a message's place, to switch between.
fn versions(message: &UiMessage, on_version: Callback<String>) -> Option<impl IntoView> {
    let ids = message.versions.clone().filter(|ids| ids.len() > 1)?;
    let index = ids.iter().position(|id| *id == message.id)?;
    let previous = index.checked_sub(1).map(|i| ids[i].clone());
    let next = ids.get(index + 1).cloned();
    let count = ids.len();
    Some(view! {
        <span class="versions" role="group" aria-label="Versions">
            <button type="button" class="icon" data-testid="version-previous" aria-label="Previous version" disabled=previous.is_none() on:click=move |_| if let Some(id) = previous.clone() { on_version.run(id) }>"‹"</button>
            <span data-testid="version-count">{format!("{} / {count}", index + 1)}</span>
            <button type="button" class="icon" data-testid="version-next" aria-label="Next version" disabled=next.is_none() on:click=move |_| if let Some(id) = next.clone() { on_version.run(id) }>"›"</button>
        </span>
    })
}

fn clock(timestamp: &str) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(timestamp));
    if date.get_time().is_nan() {
        return String::new();
    }
    format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
}

/// One message: the person's text as typed, the assistant's as sanitized markdown.
#[component]
fn MessageBubble(
    message: UiMessage,
    awaiting: Signal<bool>,
    on_version: Callback<String>,
    on_edit: Callback<String>,
) -> impl IntoView {
    let is_user = message.source == Source::User;
    let streaming = message.status == ReplyStatus::Streaming;
    let note = match message.status {
        ReplyStatus::Stopped => Some("stopped"),
        // `text` may be the revealed part only; `reply` holds all that arrived.
        ReplyStatus::Error if message.text.is_empty() && message.reply.text().is_empty() => {
            Some("the model failed to answer")
        }
        ReplyStatus::Error => Some("interrupted"),
        _ => None,
    };
    let class = format!(
        "bubble {}{}{}",
        if is_user { "user" } else { "ai" },
        if streaming { " streaming" } else { "" },
        if message.delivery == Delivery::Sending { " sending" } else { "" }
    );
    let time = clock(&message.timestamp);
    let body = if is_user {
        view! { <p class="plain">{message.text.clone()}</p> }.into_any()
    } else {
        let html = markdown::render(&message.text);
        view! { <div class="markdown" inner_html=html></div> }.into_any()
    };
    view! {
        <article class=class data-id=message.id.clone() aria-label=if is_user { "You" } else { "Assistant" }>
            {body}
            <footer>
                {message.model.clone().map(|m| view! { <span class="model" title="The model that wrote this reply">{m}</span> })}
                {message.usage.map(|u| view! { <span class="usage" title="Prompt + completion tokens, and their price">{usage_text(&u)}</span> })}
                <time>{time}</time>
                {note.map(|n| view! { <span class="note">{n}</span> })}
                {versions(&message, on_version)}
                {is_user.then(|| {
                    let id = message.id.clone();
                    view! {
                        <button type="button" class="icon edit" data-testid="edit" title="Edit this question: a new version, the old one kept" aria-label="Edit this question" disabled=move || awaiting.get() on:click=move |_| on_edit.run(id.clone())>"✎"</button>
                    }
                })}
            </footer>
        </article>
    }
}
