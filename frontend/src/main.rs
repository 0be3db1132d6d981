//! The chat web app. See `app.rs` for the application, `components/` for the page's parts.

mod api;
mod app;
mod backoff;
mod chat;
mod components;
mod markdown;
mod reveal;

fn main() {
    leptos::mount::mount_to_body(app::App);
}
