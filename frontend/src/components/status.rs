use leptos::prelude::*;

use crate::state::Link;

/// Connected, connecting, reconnecting in N s, or offline.
#[component]
pub fn ConnectionStatus(link: RwSignal<Link>) -> impl IntoView {
    let label = move || match link.get() {
        Link::Connected => "Connected".to_string(),
        Link::Connecting => "Connecting…".to_string(),
        Link::Reconnecting(seconds) => format!("Reconnecting in {seconds} s"),
        Link::Offline => "Offline".to_string(),
    };
    let class = move || match link.get() {
        Link::Connected => "status ok",
        Link::Connecting | Link::Reconnecting(_) => "status wait",
        Link::Offline => "status off",
    };
    view! {
        <div class=class role="status" aria-live="polite" data-testid="connection-status">
            <span class="dot" aria-hidden="true"></span>
            <span>{label}</span>
        </div>
    }
}
