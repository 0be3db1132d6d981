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
    let list = NodeRef::<leptos::html::Section>::new();
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
    // One element per message, keyed by its id alone: a reply that grows (or ends) is the same
    // element from its first piece on, and nothing on screen is made again when the list
    // changes elsewhere. Each bubble follows its own message (see `MessageBubble`).
    let ids = move || messages.with(|m| m.iter().map(|m| m.id.clone()).collect::<Vec<_>>());
    // Not a live region: a screen reader hears a reply once, whole, from the page's announcer
    // (`aria-live="polite"`), not every token of it here.
    view! {
        <section class="messages" node_ref=list on:scroll=on_scroll on:click=on_click aria-label="Conversation" tabindex="0">
            <Show when=move || messages.with(|m| m.is_empty())>
                <p class="empty">"Say hello to start the conversation."</p>
            </Show>
            <For each=ids key=|id| id.clone() let:id>
                <MessageBubble id=id messages=messages reveal=reveal awaiting=awaiting on_version=on_version on_edit=on_edit />
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
                <div class="bubble ai typing" role="img" aria-label="The assistant is typing">
                    <span></span><span></span><span></span>
                </div>
            </Show>
        </section>
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

/// Where message `id` is in `list`, looked for first at `hint` (where it was last time).
fn position(list: &[UiMessage], id: &str, hint: &StoredValue<usize>) -> Option<usize> {
    let at = hint.get_value();
    if list.get(at).is_some_and(|m| m.id == id) {
        return Some(at);
    }
    let found = list.iter().position(|m| m.id == id)?;
    hint.set_value(found);
    Some(found)
}

/// One message: the person's text as typed, the assistant's as sanitized markdown. The element
/// lives as long as the message is on screen; its text, footer and state follow the message.
#[component]
fn MessageBubble(
    id: String,
    messages: Signal<Vec<UiMessage>>,
    reveal: RwSignal<Reveal>,
    awaiting: Signal<bool>,
    on_version: Callback<String>,
    on_edit: Callback<String>,
) -> impl IntoView {
    let hint = StoredValue::new(usize::MAX);
    let message = Memo::new({
        let id = id.clone();
        move |_| messages.with(|list| position(list, &id, &hint).map(|at| list[at].clone()))
    });
    // Only what the person just sent comes in with a movement; a reply, and everything a
    // conversation opens with, is simply there.
    let fresh = message.with_untracked(|m| m.as_ref().is_some_and(|m| m.delivery == Delivery::Sending));
    let is_user = message.with_untracked(|m| m.as_ref().is_some_and(|m| m.source == Source::User));
    // The text shown: a streaming reply's revealed part (crate::reveal), the rest as it is.
    let shown = Memo::new({
        let id = id.clone();
        move |_| {
            let (text, status) = message.with(|m| m.as_ref().map(|m| (m.text.clone(), m.status)))?;
            if is_user {
                return Some(text);
            }
            let followed = reveal.with_untracked(|r| r.id() == Some(id.as_str()));
            if !followed && status != ReplyStatus::Streaming {
                return Some(text);
            }
            Some(reveal.with(|r| {
                if r.id() == Some(id.as_str()) {
                    r.visible(&id, &text).to_string()
                } else if newest_streaming(messages).as_deref() == Some(id.as_str()) {
                    // Its reveal has not started yet (the effect that starts it runs after this
                    // render): shown from nothing, not in full for one frame and then from nothing.
                    String::new()
                } else {
                    text
                }
            }))
        }
    });
    let streaming = move || message.with(|m| m.as_ref().is_some_and(|m| m.status == ReplyStatus::Streaming));
    let class = move || {
        let sending = message.with(|m| m.as_ref().is_some_and(|m| m.delivery == Delivery::Sending));
        format!(
            "bubble {}{}{}{}",
            if is_user { "user" } else { "ai" },
            if streaming() { " streaming" } else { "" },
            if sending { " sending" } else { "" },
            if fresh { " fresh" } else { "" },
        )
    };
    let note = move || {
        message.with(|m| {
            let m = m.as_ref()?;
            match m.status {
                ReplyStatus::Stopped => Some("stopped"),
                // `text` may be the revealed part only; `reply` holds all that arrived.
                ReplyStatus::Error if m.text.is_empty() && m.reply.text().is_empty() => {
                    Some("the model failed to answer")
                }
                ReplyStatus::Error => Some("interrupted"),
                _ => None,
            }
        })
    };
    let body = if is_user {
        view! { <p class="plain">{move || shown.get().unwrap_or_default()}</p> }.into_any()
    } else {
        view! { <div class="markdown" inner_html=move || shown.with(|t| markdown::render(t.as_deref().unwrap_or_default()))></div> }.into_any()
    };
    let edit_id = id.clone();
    view! {
        <article class=class data-id=id aria-label=if is_user { "You" } else { "Assistant" } aria-busy=move || streaming().to_string()>
            {body}
            <footer>
                {move || message.with(|m| m.as_ref().and_then(|m| m.model.clone())).map(|m| view! { <span class="model" title="The model that wrote this reply">{m}</span> })}
                {move || message.with(|m| m.as_ref().and_then(|m| m.usage)).map(|u| view! { <span class="usage" title="Prompt + completion tokens, and their price">{usage_text(&u)}</span> })}
                <time>{move || message.with(|m| m.as_ref().map(|m| clock(&m.timestamp)).unwrap_or_default())}</time>
                {move || note().map(|n| view! { <span class="note">{n}</span> })}
                {move || message.with(|m| m.as_ref().and_then(|m| versions(m, on_version)))}
                {is_user.then(|| {
                    let id = edit_id.clone();
                    view! {
                        <button type="button" class="icon edit" data-testid="edit" title="Edit this question: a new version, the old one kept" aria-label="Edit this question" disabled=move || awaiting.get() on:click=move |_| on_edit.run(id.clone())>"✎"</button>
                    }
                })}
            </footer>
        </article>
    }
}

/// The newest reply still streaming: the one the reveal follows.
fn newest_streaming(messages: Signal<Vec<UiMessage>>) -> Option<String> {
    messages.with(|m| {
        m.iter()
            .rev()
            .find(|m| m.source == Source::Assistant && m.status == ReplyStatus::Streaming)
            .map(|m| m.id.clone())
    })
}
