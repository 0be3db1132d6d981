use leptos::prelude::*;

use crate::state::AppState;

/// What the in-page dialog asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialog {
    /// The open conversation's own instructions.
    Instructions,
    /// A new title for conversation `id`.
    Rename(String),
    /// A new version of question `id`.
    Edit(String),
}

impl Dialog {
    /// The dialog's title, the line under it, whether the text is long, and its button.
    fn texts(&self) -> (&'static str, &'static str, bool, &'static str) {
        match self {
            Dialog::Instructions => (
                "Instructions for this conversation",
                "Sent to the model as its system prompt. Empty: the deployment's default.",
                true,
                "Save",
            ),
            Dialog::Rename(_) => ("Rename this conversation", "A title of your own, never replaced.", false, "Rename"),
            Dialog::Edit(_) => {
                ("Edit your question", "Sent as a new version; the old question and its reply are kept.", true, "Send")
            }
        }
    }
}

/// An in-page dialog for a line or a paragraph of text (a modal `<dialog>`: focus moves into it,
/// stays in it, and returns to where it was when it closes; Escape cancels).
#[component]
pub fn TextDialog() -> impl IntoView {
    let state = expect_context::<AppState>();
    let element = NodeRef::<leptos::html::Dialog>::new();
    let value = RwSignal::new(String::new());
    Effect::new(move |_| {
        let asked = state.dialog.get();
        let Some(dialog) = element.get() else { return };
        match asked {
            Some(asked) => {
                value.set(state.current_text(&asked));
                if !dialog.open() {
                    let _ = dialog.show_modal();
                }
            }
            None if dialog.open() => dialog.close(),
            None => {}
        }
    });
    let texts = move || state.dialog.with(|d| d.as_ref().map(Dialog::texts));
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        if let Some(asked) = state.dialog.get_untracked() {
            state.dialog.set(None);
            state.answer(asked, value.get_untracked());
        }
    };
    let field = move || {
        let multiline = texts().is_some_and(|(_, _, multiline, _)| multiline);
        if multiline {
            view! {
                <textarea
                    data-testid="dialog-text"
                    aria-labelledby="dialog-title"
                    aria-describedby="dialog-hint"
                    autofocus
                    prop:value=move || value.get()
                    on:input=move |event| value.set(event_target_value(&event))
                ></textarea>
            }
            .into_any()
        } else {
            view! {
                <input
                    data-testid="dialog-text"
                    aria-labelledby="dialog-title"
                    aria-describedby="dialog-hint"
                    autofocus
                    prop:value=move || value.get()
                    on:input=move |event| value.set(event_target_value(&event))
                />
            }
            .into_any()
        }
    };
    view! {
        <dialog class="text-dialog" node_ref=element aria-labelledby="dialog-title" data-testid="dialog" on:close=move |_| state.dialog.set(None)>
            <form on:submit=submit>
                <h2 id="dialog-title">{move || texts().map(|(title, ..)| title)}</h2>
                <p id="dialog-hint">{move || texts().map(|(_, hint, ..)| hint)}</p>
                {field}
                <div class="actions">
                    <button type="button" class="ghost" data-testid="dialog-cancel" on:click=move |_| state.dialog.set(None)>"Cancel"</button>
                    <button type="submit" class="primary" data-testid="dialog-save">{move || texts().map(|(.., save)| save)}</button>
                </div>
            </form>
        </dialog>
    }
}
