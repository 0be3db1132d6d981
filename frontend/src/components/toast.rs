use leptos::prelude::*;

use crate::state::{AppState, Toast};

/// Notifications for everything a person should know went wrong (or right).
#[component]
pub fn Toasts(toasts: RwSignal<Vec<Toast>>) -> impl IntoView {
    // Read here: an event handler runs outside the component's owner.
    let state = use_context::<AppState>();
    view! {
        <div class="toasts" role="region" aria-label="Notifications">
            <For each=move || toasts.get() key=|t| t.id let:toast>
                // An error interrupts a screen reader; anything else waits its turn.
                <div class=if toast.error { "toast error" } else { "toast" } role=if toast.error { "alert" } else { "status" } data-testid="toast">
                    <span>{toast.text.clone()}</span>
                    {toast.undo.clone().map(|conversation| {
                        let id = toast.id;
                        view! {
                            <button
                                type="button"
                                class="undo"
                                data-testid="undo"
                                on:click=move |_| {
                                    toasts.update(|t| t.retain(|x| x.id != id));
                                    if let Some(state) = state {
                                        state.undo_delete(&conversation);
                                    }
                                }
                            >
                                "Undo"
                            </button>
                        }
                    })}
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
