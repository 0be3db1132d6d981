use leptos::prelude::*;

use crate::app::Toast;

/// Notifications for everything a person should know went wrong (or right).
#[component]
pub fn Toasts(toasts: RwSignal<Vec<Toast>>) -> impl IntoView {
    view! {
        <div class="toasts" role="region" aria-label="Notifications" aria-live="assertive">
            <For each=move || toasts.get() key=|t| t.id let:toast>
                <div class=if toast.error { "toast error" } else { "toast" } role="alert">
                    <span>{toast.text.clone()}</span>
                    <button
                        type="button"
                        class="close"
                        aria-label="Dismiss"
                        on:click=move |_| toasts.update(|t| t.retain(|x| x.id != toast.id))
                    >
                        "×"
                    </button>
                </div>
            </For>
        </div>
    }
}
