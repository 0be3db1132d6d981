//! Several conversations in one session, in a browser: a new chat keeps the old one; switching
//! away from a reply that streams and back shows it whole; export of the open conversation,
//! search, edit and versions, the conversation's model, rename, delete with Undo, and the list
//! as a drawer on a phone.

use std::time::Duration;

use chat_stub_model::{Pacing, Scripted};
use fantoccini::Locator;
use serde_json::json;

use crate::page::{answer_dialog, click, downloaded, run, screenshot, send, sign_in, wait_for, Stack, LAST_AI};

/// `GET /conversations` of the session `token`, as the server holds it.
async fn conversation_list(http: &reqwest::Client, base: &str, token: &str) -> chat_wire::ConversationList {
    http.get(format!("{base}/conversations")).query(&[("token", token)]).send().await.unwrap().json().await.unwrap()
}

/// Several conversations in one session: a new chat keeps the old one; switching away from a
/// reply that streams and back shows it whole; rename, delete with undo, export of the open
/// conversation, and the list as a drawer on a phone.
#[tokio::test]
async fn a_person_keeps_several_conversations() {
    let pacing = Pacing { between_tokens: Duration::from_millis(50), ..Default::default() };
    let mut stack = Stack::start("conversations", pacing, &[("ALLOWED_MODELS", "stub-large")]).await;
    let client = stack.client.clone();
    let http = reqwest::Client::new();
    let base = format!("http://{}", stack.gateway_addr);
    client.goto(&stack.site_url).await.unwrap();
    wait_for(&client, "the welcome modal", "document.querySelector('#name')", 20).await;
    sign_in(&client, "Ada").await;
    let token = client.execute("return JSON.parse(localStorage.getItem('chat.session')).token;", vec![]).await.unwrap();
    let token = token.as_str().unwrap().to_string();
    let listed = |http: reqwest::Client, base: String, token: String| async move {
        let list = conversation_list(&http, &base, &token).await;
        list.conversations.into_iter().map(|c| (c.id, c.title)).collect::<Vec<_>>()
    };

    send(&client, "Tell me about tides").await;
    let done = |text: &str| {
        format!("{LAST_AI} && !{LAST_AI}.classList.contains('streaming') && {LAST_AI}.innerText.includes('{text}')")
    };
    wait_for(&client, "the first reply", &done("You said: Tell me about tides"), 10).await;

    // "New chat": a second conversation; the first stays listed.
    client.find(Locator::Css("[data-testid=new-chat]")).await.unwrap().click().await.unwrap();
    wait_for(
        &client,
        "two conversations listed",
        "document.querySelectorAll('[data-testid=conversation]').length === 2",
        10,
    )
    .await;
    wait_for(&client, "an empty thread", "document.querySelectorAll('.bubble').length === 0", 5).await;
    let long = "word ".repeat(40);
    // It stalls after five pieces: still streaming while the person switches away and back.
    stack.stub.push([Scripted::StallAfter(5, Duration::from_secs(4))]);
    send(&client, long.trim()).await;
    wait_for(
        &client,
        "the second reply streaming",
        &format!("{LAST_AI} && {LAST_AI}.classList.contains('streaming') && {LAST_AI}.innerText.includes('word')"),
        10,
    )
    .await;

    // Back to the first while the second streams: its own thread only.
    client
        .find(Locator::Css("[data-testid=conversation][data-id=main] button.open"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "the first thread", &done("You said: Tell me about tides"), 10).await;
    let words = client
        .execute("return document.querySelector('.messages').innerText.includes('word word');", vec![])
        .await
        .unwrap();
    assert_eq!(words, json!(false), "no delta of the other conversation shows here");
    screenshot(&client, "conversations-1440x900.png").await;

    // And back to the second: the reply, resumed, ends whole.
    let second = listed(http.clone(), base.clone(), token.clone()).await[0].0.clone();
    assert_ne!(second, "main", "the new conversation is the most recently active");
    client
        .find(Locator::Css(&format!("[data-testid=conversation][data-id='{second}'] button.open")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "the second reply, whole", &done(&format!("You said: {}", long.trim())), 20).await;
    let stored = chat_testkit::api::history_request(&http, &base, &token)
        .query(&[("conversation", &second)])
        .send()
        .await
        .unwrap();
    let stored: chat_wire::ChatSession = stored.json().await.unwrap();
    let whole = json!(stored.messages[1].msg.trim());
    let shown = wait_for(
        &client,
        "the stored reply shown",
        &format!("{LAST_AI}.querySelector('.markdown').innerText.trim() === {whole} && {LAST_AI}.querySelector('.markdown').innerText"),
        10,
    )
    .await;
    assert_eq!(shown.as_str().unwrap().trim(), stored.messages[1].msg.trim(), "the page shows the stored reply");

    // Export: the open conversation's file.
    client.find(Locator::Css("[data-testid=export-json]")).await.unwrap().click().await.unwrap();
    let (_, exported) = downloaded(&stack.profile, "json").await;
    let exported: serde_json::Value = serde_json::from_str(&exported).unwrap();
    let messages: Vec<chat_wire::ChatMessage> = serde_json::from_value(exported["messages"].clone()).unwrap();
    assert_eq!(messages, stored.messages, "the JSON file holds the open conversation");

    // Rename, in the page's own dialog: the person's title, on the page and on the server.
    click(&client, "[data-testid=conversation][data-id=main] [data-testid=rename]").await;
    answer_dialog(&client, "Tides").await;
    wait_for(
        &client,
        "the new title",
        "[...document.querySelectorAll('[data-testid=conversation-title]')].some(t => t.innerText === 'Tides')",
        10,
    )
    .await;
    assert!(listed(http.clone(), base.clone(), token.clone())
        .await
        .contains(&("main".to_string(), "Tides".to_string())));

    // Search: the hits of both conversations; one opens its conversation at the message.
    let search = client.find(Locator::Css("[data-testid=search]")).await.unwrap();
    search.send_keys("TIDES\u{E007}").await.unwrap();
    wait_for(&client, "the search hits", "document.querySelectorAll('[data-testid=search-hit]').length === 3", 10)
        .await;
    // A title's hit says the title once (no snippet that repeats it); a message's hit shows its text.
    let shown = run(
        &client,
        "return [...document.querySelectorAll('[data-testid=search-hit]')].map(h => [h.querySelector('.title').innerText, h.querySelector('.snippet')?.innerText ?? null]);",
    )
    .await;
    let hits: Vec<(String, Option<String>)> = serde_json::from_value(shown).unwrap();
    assert!(hits.contains(&("Tides".to_string(), None)), "the title's hit, once: {hits:?}");
    assert!(
        hits.iter().filter(|(_, snippet)| snippet.is_some()).all(|(title, snippet)| snippet.as_deref() != Some(title)),
        "{hits:?}"
    );
    screenshot(&client, "conversations-search-1440x900.png").await;
    let hit = "[...document.querySelectorAll('[data-testid=search-hit]')].find(h => h.innerText.includes('You said: Tell me about tides'))";
    client.execute(&format!("{hit}.click();"), vec![]).await.unwrap();
    wait_for(&client, "the hit's message, marked", "document.querySelector('article.found[data-id$=\".reply\"]')?.innerText.includes('You said: Tell me about tides')", 10).await;
    client.find(Locator::Css("[data-testid=clear-search]")).await.unwrap().click().await.unwrap();
    wait_for(&client, "the list back", "!document.querySelector('[data-testid=search-hit]') && document.querySelectorAll('[data-testid=conversation]').length === 2", 5).await;

    // Edit the question: a new version with its own reply; the old one is a click away.
    run(&client, "document.querySelector('article.bubble.user [data-testid=edit]').click();").await;
    answer_dialog(&client, "Tell me about the moon").await;
    wait_for(&client, "the edited question's reply", &done("You said: Tell me about the moon"), 10).await;
    let count = "document.querySelector('article.bubble.user [data-testid=version-count]')?.innerText";
    wait_for(&client, "the versions", &format!("{count} === '2 / 2'"), 10).await;
    let thread = client.execute("return document.querySelector('.messages').innerText;", vec![]).await.unwrap();
    assert!(!thread.as_str().unwrap().contains("about tides"), "the old branch is not on screen");
    screenshot(&client, "conversations-versions-1440x900.png").await;
    client
        .execute("document.querySelector('article.bubble.user [data-testid=version-previous]').click();", vec![])
        .await
        .unwrap();
    wait_for(
        &client,
        "the first version",
        &format!("{count} === '1 / 2' && {}", done("You said: Tell me about tides")),
        10,
    )
    .await;
    let stored = chat_testkit::api::history(&http, &base, &token).await.unwrap();
    assert_eq!(stored.messages[0].msg, "Tell me about tides", "the server shows the version the page shows");
    assert_eq!(stored.messages[0].versions.as_ref().map(Vec::len), Some(2));

    // The conversation's own model: chosen in the header, it writes the next reply.
    wait_for(&client, "the model choice", "document.querySelectorAll('[data-testid=model] option').length === 2", 10)
        .await;
    client
        .execute("const s = document.querySelector('[data-testid=model]'); s.value = 'stub-large'; s.dispatchEvent(new Event('change'));", vec![])
        .await
        .unwrap();
    let chosen = chat_testkit::wait::wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        async move {
            let list = conversation_list(&http, &base, &token).await;
            list.conversations.iter().any(|c| c.id == "main" && c.model.as_deref() == Some("stub-large"))
        }
    })
    .await;
    assert!(chosen, "the server keeps the conversation's model");
    send(&client, "Which model?").await;
    wait_for(
        &client,
        "the reply by the chosen model",
        &format!("{} && {LAST_AI}.querySelector('.model')?.innerText === 'stub-large'", done("You said: Which model?")),
        10,
    )
    .await;

    // Delete, undone: nothing happens on the server. Deleted again: gone from it too.
    let delete_main = "[data-testid=conversation][data-id=main] [data-testid=delete]";
    client.find(Locator::Css(delete_main)).await.unwrap().click().await.unwrap();
    wait_for(
        &client,
        "one conversation listed",
        "document.querySelectorAll('[data-testid=conversation]').length === 1",
        5,
    )
    .await;
    client.find(Locator::Css("[data-testid=undo]")).await.unwrap().click().await.unwrap();
    wait_for(
        &client,
        "the conversation back",
        "document.querySelectorAll('[data-testid=conversation]').length === 2",
        5,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(listed(http.clone(), base.clone(), token.clone()).await.len(), 2, "an undone delete deletes nothing");
    client.find(Locator::Css(delete_main)).await.unwrap().click().await.unwrap();
    let deleted = chat_testkit::wait::wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        async move { listed(http, base, token).await.len() == 1 }
    })
    .await;
    assert!(deleted, "the delete reached the server once the undo window passed");

    // On a phone the list is a drawer behind the menu button.
    client.set_window_size(390, 844).await.unwrap();
    client.find(Locator::Css("[data-testid=menu]")).await.unwrap().click().await.unwrap();
    wait_for(&client, "the drawer", "document.querySelector('.sidebar.open') && document.querySelector('.sidebar').getBoundingClientRect().left >= 0", 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // its slide-in
    screenshot(&client, "conversations-drawer-390x844.png").await;
    client
        .find(Locator::Css(&format!("[data-testid=conversation][data-id='{second}'] button.open")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "the drawer closed", "!document.querySelector('.sidebar.open')", 5).await;
    stack.assert_no_console_errors("several conversations").await;
    client.close().await.unwrap();
    stack.gateway.kill().await;
}
