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
    // The first thing to do here is to type a name: the field has the focus from the start.
    crate::state::focus_when_shown("#name");
    // The server's rule for a name (`chat_wire::text::one_line`), with its limit from config.json.
    let state = use_context::<crate::state::AppState>();
    let max_chars = Signal::derive(move || state.and_then(|s| s.config.get()).map_or(64, |c| c.max_name_chars));
    let local_problem = move || {
        let checked = name.with(|n| chat_wire::text::one_line(n, max_chars.get(), "name"));
        checked.err().map(|why| sentence(&why))
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
        <main class="center">
            <form class="welcome glass" on:submit=submit aria-labelledby="welcome-title">
                <h1 id="welcome-title">"Chat with an AI"</h1>
                <p>"Replies stream in as they are written. Your conversation is kept for an hour after your last message."</p>
                <label for="name">"Your name"</label>
                <input
                    id="name"
                    name="name"
                    autocomplete="nickname"
                    maxlength=move || max_chars.get().to_string()
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
        </main>
    }
}

/// A rule's message as a sentence: capitalised, with its full stop.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}
