use leptos::prelude::*;

/// Shown while the configuration loads and a saved session is restored.
#[component]
pub fn SessionRestoreLoader() -> impl IntoView {
    view! {
        <div class="center">
            <div class="loader glass" role="status" aria-live="polite">
                <span class="spinner" aria-hidden="true"></span>
                <span>"Restoring your conversation…"</span>
            </div>
        </div>
    }
}
