//! The chat web app. `app.rs` mounts the screens, `state/` holds what they share and what changes
//! it, `components/` the page's parts, `chat.rs` the conversation's logic.

mod api;
mod app;
mod backoff;
mod chat;
mod components;
mod markdown;
mod reveal;
mod state;

fn main() {
    leptos::mount::mount_to_body(app::App);
}
