//! The web app's figures (`scripts/bench-frontend.sh`, not part of the test suite).

use chat_stub_model::Pacing;
use serde_json::json;

use crate::page::{wait_for, Stack};

/// The web app's figures: run by `scripts/bench-frontend.sh` (not part of the test suite).
/// Prints the time from navigation to an interactive page, and the time to render a restored
/// conversation of 1,000 messages, medians of five page loads each.
#[tokio::test]
#[ignore = "a benchmark: scripts/bench-frontend.sh runs it"]
async fn bench_frontend() {
    let stack = Stack::start("bench", Pacing::default(), &[]).await;
    let Stack { client, env, site_url, .. } = &stack;

    // A session with 1,000 stored messages (500 questions, 500 markdown replies), written
    // directly, past the per-session message rate.
    let mut config = env.config().unwrap();
    config.rate_limits.messages_per_session = 0;
    let store = chat_core::Store::connect(&config).unwrap();
    let session = store.create_session("Bench").await.unwrap();
    let token = chat_wire::Token::parse(&session.token).unwrap();
    let main = chat_wire::ConversationId::main();
    for i in 0..500 {
        let question = chat_wire::ChatMessage::question(
            format!("q{i}"),
            format!("Question number {i}: how does this work?"),
            "2026-11-24T20:00:00.000Z",
        );
        assert_eq!(store.accept_user_message(&token, &main, &question).await.unwrap(), Ok(()));
        let reply = chat_wire::ChatMessage::reply_placeholder(&question.id, None, &question.timestamp).with_text(
            format!("Answer **{i}**:\n\n- first point\n- second point with `code`\n\n```rust\nfn answer() -> u32 {{ {i} }}\n```"),
            chat_wire::ReplyStatus::Done,
        );
        let question_id = chat_wire::MessageId::parse(&question.id).unwrap();
        store.store_reply(&token, &main, &reply, &question_id, 0).await.unwrap().expect("stored");
    }

    let measure = |script: &'static str| {
        let client = client.clone();
        async move { wait_for(&client, "the mark", script, 30).await.as_f64().unwrap() }
    };
    let (mut interactive, mut restored, mut restored_interactive) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        client.goto(site_url).await.unwrap();
        client.execute("localStorage.clear();", vec![]).await.unwrap();
        client.refresh().await.unwrap();
        interactive.push(measure("performance.getEntriesByName('chat-interactive')[0]?.startTime").await);
    }
    let saved = json!({"token": session.token, "name": "Bench"}).to_string();
    for _ in 0..5 {
        client.execute("localStorage.setItem('chat.session', arguments[0]);", vec![json!(saved)]).await.unwrap();
        client.refresh().await.unwrap();
        let render = "(() => { const a = performance.getEntriesByName('history-received')[0]; \
                      const b = performance.getEntriesByName('history-rendered')[0]; return a && b ? b.startTime - a.startTime : null; })()";
        restored.push(measure(render).await);
        restored_interactive.push(measure("performance.getEntriesByName('chat-interactive')[0]?.startTime").await);
        let shown = client.execute("return document.querySelectorAll('.bubble').length;", vec![]).await.unwrap();
        assert_eq!(shown, json!(1000));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let mut figures = json!({
        "navigation_to_interactive_ms": median(interactive),
        "navigation_to_interactive_with_1000_messages_ms": median(restored_interactive),
        "render_1000_restored_messages_ms": median(restored),
    });
    if let Some(lighthouse) = std::env::var_os("LIGHTHOUSE") {
        figures["lighthouse"] = json!({
            "mobile": lighthouse_scores(&lighthouse, site_url, false).await,
            "desktop": lighthouse_scores(&lighthouse, site_url, true).await,
        });
    }
    println!("FRONTEND_BENCH {figures}");
    client.clone().close().await.unwrap();
}

/// Lighthouse's scores (0-100) of the page at `url` as a first visit sees it (the welcome
/// screen), with its mobile preset (a throttled phone) or its desktop one, in the tests' Chromium.
/// Awaited, not waited for: this test's runtime serves the page Lighthouse loads.
async fn lighthouse_scores(lighthouse: &std::ffi::OsStr, url: &str, desktop: bool) -> serde_json::Value {
    let report = std::env::temp_dir().join(format!("lighthouse-{}-{desktop}.json", std::process::id()));
    let mut command = tokio::process::Command::new(lighthouse);
    command
        .arg(url)
        .args(["--output=json", "--quiet", "--only-categories=performance,accessibility,best-practices"])
        .arg(format!("--output-path={}", report.display()))
        .arg("--chrome-flags=--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run --disable-background-networking --disable-component-update --disable-sync")
        .env("CHROME_PATH", "/usr/bin/chromium");
    if desktop {
        command.arg("--preset=desktop");
    }
    let status = command.status().await.expect("lighthouse runs");
    assert!(status.success(), "lighthouse failed: {status}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let score = |category: &str| report["categories"][category]["score"].as_f64().map(|s| (s * 100.0).round());
    json!({
        "performance": score("performance"),
        "accessibility": score("accessibility"),
        "best_practices": score("best-practices"),
        "largest_contentful_paint_ms": report["audits"]["largest-contentful-paint"]["numericValue"],
    })
}
