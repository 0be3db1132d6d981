//! A session left idle past its TTL expires, as on the server's clock: the open page learns it
//! when the person next sends, says so, and returns to the welcome screen.

use std::time::Duration;

use chat_stub_model::Pacing;

use crate::page::{accessibility_problems, screenshot, send, sign_in, wait_for, Stack, LAST_AI};

/// A session nobody uses expires by its TTL, as on the server's clock: the open page learns it
/// when the person next sends, says so, and returns to the welcome screen, which axe-core finds
/// nothing serious on. (The history's `400 session_expired` is the seed's contract: the one
/// failed request this story expects in the console.)
#[tokio::test]
async fn an_idle_session_expires_and_the_page_says_so() {
    let mut stack = Stack::start("expiry", Pacing::default(), &[("SESSION_TTL_SECONDS", "4")]).await;
    let client = stack.client.clone();
    client.goto(&stack.site_url).await.unwrap();
    wait_for(&client, "the welcome modal", "document.querySelector('#name')", 20).await;
    sign_in(&client, "Ada").await;
    send(&client, "Remember me?").await;
    wait_for(&client, "the reply", &format!("{LAST_AI} && !{LAST_AI}.classList.contains('streaming') && {LAST_AI}.innerText.includes('You said: Remember me?')"), 10).await;
    let token = client.execute("return JSON.parse(localStorage.getItem('chat.session')).token;", vec![]).await.unwrap();
    let token = token.as_str().unwrap().to_string();

    // Idle past the TTL, the page still open and connected.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let base = format!("http://{}", stack.gateway_addr);
    let read = reqwest::Client::new().get(format!("{base}/chat_history")).query(&[("token", &token)]).send().await;
    assert_eq!(read.unwrap().status(), 400, "the server forgot the session by itself");
    send(&client, "Still there?").await;
    wait_for(
        &client,
        "the expiry toast",
        "[...document.querySelectorAll('.toast')].some(t => t.innerText.includes('session expired'))",
        30,
    )
    .await;
    wait_for(&client, "the welcome screen", "document.querySelector('#name')", 5).await;
    screenshot(&client, "expired-1440x900.png").await;
    let problems = accessibility_problems(&client).await;
    assert!(problems.is_empty(), "axe, the expired-session screen: {problems:#?}");
    let saved = client.execute("return localStorage.getItem('chat.session');", vec![]).await.unwrap();
    assert_eq!(saved, serde_json::Value::Null, "the page forgot the expired token");
    client.close().await.unwrap();
    stack.gateway.kill().await;
}
