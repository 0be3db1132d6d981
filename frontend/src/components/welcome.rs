use leptos::prelude::*;

/// The first screen: a name, then "Get Started" creates the session.
///
/// `on_start` receives the name, a `busy` flag to raise while the session is created, and a
/// `problem` slot for the server's validation message.
#[component]
pub fn WelcomeModal(on_start: Callback<(String, RwSignal<bool>, RwSignal<Option<String>>)>) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let problem = RwSignal::new(None::<String>);
    let local_problem = move || {
        let trimmed = name.with(|n| n.trim().to_string());
        if trimmed.is_empty() {
            Some("Please enter your name.".to_string())
        } else if trimmed.chars().count() > 64 {
            Some("Names are at most 64 characters.".to_string())
        } else {
            None
        }
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if let Some(message) = local_problem() {
            problem.set(Some(message));
            return;
        }
        problem.set(None);
        on_start.run((name.get_untracked().trim().to_string(), busy, problem));
    };
    view! {
        <div class="center">
            <form class="welcome glass" on:submit=submit role="dialog" aria-modal="true" aria-labelledby="welcome-title">
                <h1 id="welcome-title">"Chat with an AI"</h1>
                <p>"Replies stream in as they are written. Your conversation is kept for an hour after your last message."</p>
                <label for="name">"Your name"</label>
                <input
                    id="name"
                    name="name"
                    autocomplete="nickname"
                    maxlength="64"
                    placeholder="Ada"
                    prop:value=move || name.get()
                    on:input=move |ev| name.set(event_target_value(&ev))
                    aria-invalid=move || problem.get().is_some().to_string()
                    aria-describedby="name-problem"
                />
                <p id="name-problem" class="problem" role="alert">{move || problem.get().unwrap_or_default()}</p>
                <button type="submit" class="primary" disabled=move || busy.get()>
                    {move || if busy.get() { "Starting…" } else { "Get Started" }}
                </button>
            </form>
        </div>
    }
}
