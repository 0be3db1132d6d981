//! The web app in real headless Chromium (Debian's chromium + chromedriver, over WebDriver),
//! against the real local stack, a real redis-server and the scripted stub model.
//!
//! One story: welcome -> name -> send -> streamed reply -> XSS payloads render as text ->
//! reload -> history restored -> stop mid-reply -> regenerate, reload mid-reply, the reply resumes
//! -> server killed (SIGKILL) and restarted -> reconnects and continues -> a question Redis could
//! not queue is sent again by the page and answered -> a lost connection mapping: the page
//! reconnects and carries on -> New chat revokes the token on the server. And a second story: a
//! session left idle past its TTL expires, and the page says so when the person next sends. Screenshots at 390x844 and 1440x900 go to
//! `target/screenshots/`.
//!
//! Needs `frontend/dist` (scripts/build-frontend.sh) and chromium; scripts/test.sh provides both.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chat_local::redis_server::{free_port, RedisServer};
use chat_local::site::SiteConfig;
use chat_stub_model::{Pacing, StubModel};
use chat_testkit::wait::wait_for_port;
use chat_testkit::{TempDir, Vars};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::process::Command;

/// The `local` binary serving the gateway and its worker, a process of its own: killed for real.
struct Gateway {
    child: tokio::process::Child,
}

async fn start_gateway(addr: SocketAddr, env: &Vars) -> Gateway {
    let child = Command::new(env!("CARGO_BIN_EXE_local"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter())
        .env("LOCAL_BIND", addr.ip().to_string())
        .env("LOCAL_HTTP_PORT", addr.port().to_string())
        // Its own copy of the site, unused: the test serves the page with its config.
        .env("LOCAL_SITE_PORT", free_port().to_string())
        .env("LOCAL_SITE_DIR", PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../frontend/dist"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the local binary runs");
    assert!(wait_for_port(addr.port(), Duration::from_secs(30)).await, "the gateway did not start");
    Gateway { child }
}

impl Gateway {
    /// Kills the gateway and its worker (SIGKILL: no close frames, no clean-up).
    async fn kill(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

async fn chromedriver() -> (tokio::process::Child, u16) {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver is installed (apt-get install chromium-driver)");
    assert!(wait_for_port(port, Duration::from_secs(5)).await, "chromedriver did not start");
    (child, port)
}

/// Kills the browser started with `profile` when the test ends, passed or failed (chromedriver
/// does not take its Chromium down with it when the test panics).
struct BrowserGuard(PathBuf);

impl Drop for BrowserGuard {
    fn drop(&mut self) {
        let _ =
            std::process::Command::new("pkill").arg("-f").arg(format!("user-data-dir={}", self.0.display())).status();
    }
}

async fn browser(port: u16, profile: &std::path::Path) -> Client {
    // Two TLS back ends are in the dependency tree; WebDriver is plain HTTP, any will do.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     format!("--user-data-dir={}", profile.display()), "--window-size=1440,900"],
            // Downloads land in the test's own directory, without asking.
            "prefs": {"download.default_directory": downloads(profile), "download.prompt_for_download": false}
        }),
    );
    ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session")
}

/// Where the browser started with `profile` saves downloads.
fn downloads(profile: &std::path::Path) -> PathBuf {
    profile.with_file_name("downloads")
}

/// Waits for a finished download whose name ends with `extension` and answers its name and text.
async fn downloaded(profile: &std::path::Path, extension: &str) -> (String, String) {
    let dir = downloads(profile);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .find(|path| path.extension().is_some_and(|e| e == extension));
        if let Some(path) = found {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            return (name, std::fs::read_to_string(path).unwrap());
        }
        assert!(Instant::now() < deadline, "no .{extension} file was downloaded to {}", dir.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls a JavaScript expression until it is truthy (fails the test after `seconds`).
async fn wait_for(client: &Client, what: &str, script: &str, seconds: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let value = client.execute(&format!("return ({script});"), vec![]).await.unwrap_or(serde_json::Value::Null);
        let truthy = match &value {
            serde_json::Value::Null | serde_json::Value::Bool(false) => false,
            serde_json::Value::String(s) => !s.is_empty(),
            serde_json::Value::Number(n) => n.as_f64() != Some(0.0),
            _ => true,
        };
        if truthy {
            return value;
        }
        if Instant::now() > deadline {
            let body = client.execute("return document.body.innerText;", vec![]).await.unwrap_or_default();
            panic!("timed out waiting for {what}; page shows: {body}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Enters `name` on the welcome screen and waits until the chat is connected.
async fn sign_in(client: &Client, name: &str) {
    client.find(Locator::Css("#name")).await.unwrap().send_keys(name).await.unwrap();
    client.find(Locator::Css("form.welcome button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for(
        client,
        "the connection",
        "document.querySelector('[data-testid=connection-status]')?.innerText === 'Connected'",
        20,
    )
    .await;
}

async fn send(client: &Client, text: &str) {
    let input = client.find(Locator::Css("textarea")).await.unwrap();
    input.send_keys(text).await.unwrap();
    input.send_keys("\u{E007}").await.unwrap(); // Enter
}

/// Everything a browser test runs against: a redis-server, the stub model, the gateway (with
/// its worker), the static site, chromedriver and a Chromium session.
struct Stack {
    client: Client,
    env: Vars,
    redis: RedisServer,
    site_url: String,
    gateway_addr: SocketAddr,
    gateway: Gateway,
    /// The browser's profile (its downloads go next to it).
    profile: PathBuf,
    _driver: tokio::process::Child,
    _browser: BrowserGuard,
    _work: TempDir,
}

impl Stack {
    async fn start(name: &str, pacing: Pacing, vars: &[(&str, &str)]) -> Stack {
        let site_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../frontend/dist");
        assert!(site_dir.join("index.html").is_file(), "build the web app first: scripts/build-frontend.sh");
        let work = TempDir::new(&format!("chat-browser-{name}"));
        let redis = RedisServer::start(&work.path().join("redis"), true).await.unwrap();
        let stub = StubModel::start(pacing).await;
        let env = Vars::stack(&redis.url(), &stub, "test")
            .with(&[("APP_ENV", "development"), ("WORKER_BLOCK_MS", "200")])
            .with(vars);
        env.config().expect("valid settings");
        let gateway_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let gateway = start_gateway(gateway_addr, &env).await;
        let site_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let site_url = format!("http://{}", site_listener.local_addr().unwrap());
        let site = SiteConfig {
            api_url: format!("http://{gateway_addr}"),
            ws_url: format!("ws://{gateway_addr}/chat"),
            max_message_bytes: 8192,
        };
        tokio::spawn(
            async move { chat_local::serve_site(site_listener, &site_dir, site, std::future::pending()).await },
        );
        let (driver, driver_port) = chromedriver().await;
        let profile = work.path().join("profile");
        let browser_guard = BrowserGuard(profile.clone());
        let client = browser(driver_port, &profile).await;
        Stack {
            client,
            env,
            redis,
            site_url,
            gateway_addr,
            gateway,
            profile,
            _driver: driver,
            _browser: browser_guard,
            _work: work,
        }
    }
}

const LAST_AI: &str = "(() => { const b = [...document.querySelectorAll('.bubble.ai:not(.typing)')]; return b.length ? b[b.length-1] : null; })()";

async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, client.screenshot().await.unwrap()).unwrap();
    path
}

#[tokio::test]
async fn a_person_chats_in_a_real_browser() {
    let mut stack = Stack::start(
        "story",
        Pacing { between_tokens: Duration::from_millis(25), ..Default::default() },
        &[("MODEL_PRICES", "stub=100/200")],
    )
    .await;
    let client = stack.client.clone();
    client.goto(&stack.site_url).await.unwrap();

    // Welcome: an empty name is refused on the spot; a real one starts the chat.
    wait_for(&client, "the welcome modal", "document.querySelector('#name')", 20).await;
    client.find(Locator::Css("form.welcome button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for(&client, "the name problem", "document.querySelector('#name-problem').innerText", 5).await;
    screenshot(&client, "welcome-1440x900.png").await;
    sign_in(&client, "Ada").await;

    // Send, and watch the reply stream in: an observer in the page records every text the reply's
    // bubble shows, so a reply rendered at once would show no partial text.
    client
        .execute(
            &format!(
                "window.__partial = []; new MutationObserver(() => {{ const b = {LAST_AI}; \
                 if (b) window.__partial.push([b.dataset.id, b.querySelector('.markdown')?.textContent ?? '']); }})\
                 .observe(document.body, {{subtree: true, childList: true, characterData: true, attributes: true}});"
            ),
            vec![],
        )
        .await
        .unwrap();
    send(&client, "Hello there, assistant: tell me about the weather, the sea and the mountains today").await;
    wait_for(&client, "the full reply", &format!("{LAST_AI} && !{LAST_AI}.classList.contains('streaming') && {LAST_AI}.innerText.includes('You said: Hello there, assistant: tell me about the weather, the sea and the mountains today')"), 10).await;
    // What the reply took, in its footer and as the conversation's total (MODEL_PRICES prices
    // the stub).
    wait_for(
        &client,
        "the reply's usage",
        &format!("{LAST_AI}.querySelector('.usage')?.innerText.includes('tokens · $')"),
        5,
    )
    .await;
    wait_for(
        &client,
        "the conversation's total",
        "document.querySelector('[data-testid=total-usage]')?.innerText.includes('tokens · $')",
        5,
    )
    .await;
    let partial = client.execute("return window.__partial;", vec![]).await.unwrap();
    let partial: Vec<(String, String)> = serde_json::from_value(partial).unwrap();
    let full = "You said: Hello there, assistant: tell me about the weather, the sea and the mountains today";
    let shown: Vec<&str> = partial.iter().map(|(_, text)| text.trim()).collect();
    assert!(partial.iter().all(|(id, _)| id == &partial[0].0), "one reply: {partial:?}");
    assert!(
        shown.iter().any(|text| !text.is_empty() && full.starts_with(text) && *text != full),
        "the reply was shown in part before it was whole: {shown:?}"
    );
    // Revealed as it grew, never a longer text then a shorter one (no flash of the whole piece).
    assert!(
        shown.windows(2).all(|pair| pair[1].starts_with(pair[0])),
        "each text the reply showed is a start of the next: {shown:?}"
    );

    // XSS payloads, from the person and echoed by the model, render as text.
    send(&client, "<img src=x onerror=\"window.__xss=1\"> [click](javascript:window.__xss=2)").await;
    wait_for(
        &client,
        "the echoed payload",
        &format!("{LAST_AI} && !{LAST_AI}.classList.contains('streaming') && {LAST_AI}.innerText.includes('onerror')"),
        10,
    )
    .await;
    let safe = client
        .execute("return [window.__xss === undefined, document.querySelectorAll('.messages img').length, [...document.querySelectorAll('.messages a')].every(a => a.getAttribute('href') === '#')];", vec![])
        .await
        .unwrap();
    assert_eq!(safe, json!([true, 0, true]), "no script ran, no image, no javascript: link");

    // A long reply is revealed smoothly: the worker posts about ten pieces a second, and the page
    // shows a little more at every animation frame, so the text grows in many more steps than
    // pieces arrived (sampled at every frame in the page).
    client
        .execute(
            &format!(
                "window.__growth = []; window.__sampling = true; (function sample() {{ const b = {LAST_AI}; \
                 window.__growth.push([performance.now(), b ? b.querySelector('.markdown')?.innerText.length ?? 0 : 0, \
                 b?.dataset.id ?? '']); if (window.__sampling) requestAnimationFrame(sample); }})();"
            ),
            vec![],
        )
        .await
        .unwrap();
    send(&client, &"stream ".repeat(100)).await;
    wait_for(
        &client,
        "the long reply to finish",
        &format!("{LAST_AI} && !{LAST_AI}.classList.contains('streaming') && {LAST_AI}.innerText.length > 700"),
        20,
    )
    .await;
    let token = client.execute("return JSON.parse(localStorage.getItem('chat.session')).token;", vec![]).await.unwrap();
    let base = format!("http://{}", stack.gateway_addr);
    let history = chat_testkit::api::history(&reqwest::Client::new(), &base, token.as_str().unwrap()).await.unwrap();
    let expected = history.messages.last().unwrap().msg.trim().chars().count();
    // The reveal runs a little behind the wire: sample until the page shows all of it.
    wait_for(
        &client,
        "the whole reply revealed",
        &format!("(() => {{ const g = window.__growth; return g.length > 0 && g[g.length-1][1] === {expected}; }})()"),
        10,
    )
    .await;
    let samples = client.execute("window.__sampling = false; return window.__growth;", vec![]).await.unwrap();
    let reply = history.messages.last().unwrap();
    let posted = reply.next_seq.expect("a finished reply keeps its delta count") as usize;
    // (time, shown length) at each frame, from the new reply's first text to its last.
    let samples: Vec<(f64, u64)> = samples
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s[2].as_str() == Some(reply.id.as_str()))
        .map(|s| (s[0].as_f64().unwrap(), s[1].as_u64().unwrap()))
        .skip_while(|(_, len)| *len == 0)
        .collect();
    let growths: Vec<f64> = samples.windows(2).filter(|pair| pair[1].1 > pair[0].1).map(|pair| pair[1].0).collect();
    let mut gaps: Vec<f64> = growths.windows(2).map(|pair| pair[1] - pair[0]).collect();
    gaps.sort_by(f64::total_cmp);
    println!(
        "reveal: {} characters in {posted} posts, shown in {} growths; gap between growths p50 {:.0} / p99 {:.0} / max {:.0} ms",
        reply.msg.len(),
        growths.len(),
        gaps.get(gaps.len() / 2).copied().unwrap_or(f64::NAN),
        gaps.get(gaps.len() * 99 / 100).copied().unwrap_or(f64::NAN),
        gaps.last().copied().unwrap_or(f64::NAN),
    );
    assert!(posted >= 2, "the reply came in pieces: {posted}");
    assert!(growths.len() > posted, "{} growths for {posted} posts: the text is revealed between posts", growths.len());
    assert_eq!(
        samples.last().unwrap().1 as usize,
        reply.msg.trim().chars().count(),
        "all of the stored reply is shown"
    );

    // Markdown: a code block gets highlighting and a copy button.
    // Shift+Enter adds a line (\u{E008} is Shift, \u{E007} Enter, \u{E000} releases Shift).
    send(
        &client,
        "Here:\u{E008}\u{E007}\u{E000}```rust\u{E008}\u{E007}\u{E000}fn main() {}\u{E008}\u{E007}\u{E000}```",
    )
    .await;
    wait_for(
        &client,
        "a highlighted code block",
        "document.querySelector('.code .tok-keyword') && document.querySelector('.code button.copy')",
        10,
    )
    .await;
    screenshot(&client, "chat-1440x900.png").await;
    client.set_window_size(390, 844).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    screenshot(&client, "chat-390x844.png").await;
    client.set_window_size(1440, 900).await.unwrap();

    // Reload: the conversation comes back from the server.
    client.refresh().await.unwrap();
    wait_for(&client, "the restored history", "document.querySelectorAll('.bubble.user').length === 4 && document.querySelectorAll('.bubble.ai').length === 4", 20).await;
    wait_for(
        &client,
        "the connection after reload",
        "document.querySelector('[data-testid=connection-status]')?.innerText === 'Connected'",
        20,
    )
    .await;

    // Stop a long reply half way.
    send(&client, &"word ".repeat(120)).await;
    wait_for(&client, "the Stop button", "document.querySelector('button.stop')", 10).await;
    wait_for(&client, "the long reply to start", &format!("{LAST_AI}?.classList.contains('streaming')"), 10).await;
    client.find(Locator::Css("button.stop")).await.unwrap().click().await.unwrap();
    wait_for(&client, "the stopped reply", &format!("{LAST_AI}?.querySelector('.note')?.innerText === 'stopped'"), 10)
        .await;
    let token = client.execute("return JSON.parse(localStorage.getItem('chat.session')).token;", vec![]).await.unwrap();
    let token = token.as_str().unwrap().to_string();
    let http = reqwest::Client::new();
    let stopped = chat_testkit::api::history(&http, &base, &token).await.unwrap().messages.pop().unwrap();
    assert_eq!(stopped.status, chat_wire::ReplyStatus::Stopped);
    // The reveal runs a little behind the wire: it ends with exactly the stored text.
    wait_for(
        &client,
        "the page to show the stopped reply as stored",
        &format!("{LAST_AI}.querySelector('.markdown').innerText.trim() === {}", json!(stopped.msg.trim())),
        10,
    )
    .await;
    let whole = format!("You said: {}", "word ".repeat(120).trim());
    assert!(stopped.msg.len() < whole.len(), "the reply stopped before its end");

    // Regenerate the stopped reply, and reload while the new one streams: the page picks it up
    // where it stands and shows it whole, in place of the stopped one.
    client.find(Locator::Css(".regenerate button")).await.unwrap().click().await.unwrap();
    wait_for(
        &client,
        "the regenerated reply to stream",
        &format!("{LAST_AI}?.classList.contains('streaming') && {LAST_AI}.innerText.length > 40"),
        10,
    )
    .await;
    client.refresh().await.unwrap();
    wait_for(
        &client,
        "the resumed reply, finished",
        &format!("{LAST_AI} && !{LAST_AI}.classList.contains('streaming') && !{LAST_AI}.querySelector('.note')"),
        20,
    )
    .await;
    let regenerated = chat_testkit::api::history(&http, &base, &token).await.unwrap().messages.pop().unwrap();
    assert_eq!((regenerated.id.as_str(), regenerated.status), (stopped.id.as_str(), chat_wire::ReplyStatus::Done));
    assert_eq!(regenerated.msg.trim(), whole, "the regenerated reply is whole");
    // The reveal runs a little behind the wire.
    let shown = wait_for(
        &client,
        "the resumed reply shown whole",
        &format!("{LAST_AI}.querySelector('.markdown').innerText.trim() === {} && {LAST_AI}.querySelector('.markdown').innerText", json!(whole)),
        10,
    )
    .await;
    assert_eq!(shown.as_str().unwrap().trim(), regenerated.msg.trim(), "the page shows the stored reply");
    let replies = client.execute("return document.querySelectorAll('.bubble.ai').length;", vec![]).await.unwrap();
    assert_eq!(replies, json!(5), "the regenerated reply replaced the stopped one");

    // Export: the conversation downloads as Markdown and as JSON, as the server stores it, and
    // neither file holds the token.
    client.find(Locator::Css("[data-testid=export-markdown]")).await.unwrap().click().await.unwrap();
    let (markdown_name, markdown) = downloaded(&stack.profile, "md").await;
    client.find(Locator::Css("[data-testid=export-json]")).await.unwrap().click().await.unwrap();
    let (json_name, exported) = downloaded(&stack.profile, "json").await;
    let stored = chat_testkit::api::history(&http, &base, &token).await.unwrap();
    let day = &stored.session_start[..10];
    assert_eq!(
        (markdown_name, json_name),
        (format!("chat-{day}.md"), format!("chat-{day}.json")),
        "the server's names"
    );
    assert!(markdown.starts_with("# Conversation of Ada"), "{markdown}");
    for message in &stored.messages {
        assert!(markdown.contains(message.msg.trim()), "{:?} is in the Markdown file", message.msg);
    }
    let exported: serde_json::Value = serde_json::from_str(&exported).unwrap();
    let messages: Vec<chat_wire::ChatMessage> = serde_json::from_value(exported["messages"].clone()).unwrap();
    assert_eq!(messages, stored.messages, "the JSON file holds every stored message");
    assert!(!markdown.contains(&token) && exported.get("token").is_none(), "no token in the files");

    // The server dies (SIGKILL: no close frame): the page says so, then reconnects by itself when
    // it is back.
    stack.gateway.kill().await;
    wait_for(
        &client,
        "the reconnecting status",
        "document.querySelector('[data-testid=connection-status]')?.innerText.startsWith('Reconnecting in')",
        15,
    )
    .await;
    let mut gateway = start_gateway(stack.gateway_addr, &stack.env).await;
    wait_for(
        &client,
        "the reconnection",
        "document.querySelector('[data-testid=connection-status]')?.innerText === 'Connected'",
        45,
    )
    .await;
    send(&client, "Still there?").await;
    wait_for(&client, "a reply after reconnecting", &format!("{LAST_AI} && !{LAST_AI}.classList.contains('streaming') && {LAST_AI}.innerText.includes('You said: Still there?')"), 15).await;

    let mut redis_conn =
        redis::Client::open(stack.redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();

    // Redis stores the question but cannot queue it: the server answers `unavailable`, and the
    // page sends the question again by itself (same id) until it is answered; nothing retyped.
    let () = redis::cmd("ACL").arg(&["SETUSER", "default", "-xadd"][..]).query_async(&mut redis_conn).await.unwrap();
    send(&client, "Queue me please").await;
    wait_for(
        &client,
        "the page telling it will send again",
        "[...document.querySelectorAll('.toast')].some(t => t.innerText.includes('sent again'))",
        10,
    )
    .await;
    let () = redis::cmd("ACL").arg(&["SETUSER", "default", "+xadd"][..]).query_async(&mut redis_conn).await.unwrap();
    wait_for(&client, "the resent question's reply", &format!("{LAST_AI} && !{LAST_AI}.classList.contains('streaming') && {LAST_AI}.innerText.includes('You said: Queue me please')"), 20).await;
    let asked = client
        .execute("return [...document.querySelectorAll('.bubble.user')].filter(b => b.innerText.includes('Queue me please')).length;", vec![])
        .await
        .unwrap();
    assert_eq!(asked, json!(1), "the question shows once");

    // The server loses this connection's mapping: the page reconnects, sends the question it
    // had sent again, and the person stays signed in.
    let mappings: Vec<String> = redis::AsyncCommands::keys(&mut redis_conn, "chat:conn:*").await.unwrap();
    assert!(!mappings.is_empty());
    for key in mappings {
        let _: usize = redis::AsyncCommands::del(&mut redis_conn, key).await.unwrap();
    }
    send(&client, "Are you still with me?").await;
    wait_for(&client, "the reply after the lost mapping", &format!("{LAST_AI} && !{LAST_AI}.classList.contains('streaming') && {LAST_AI}.innerText.includes('You said: Are you still with me?')"), 20).await;
    assert!(client
        .execute("return document.querySelector('#name') === null;", vec![])
        .await
        .unwrap()
        .as_bool()
        .unwrap());

    // "New chat" ends the session on the server: its token reads nothing any more.
    let history = |token: String| {
        let url = format!("http://{}/chat_history", stack.gateway_addr);
        async move { reqwest::Client::new().get(url).query(&[("token", token)]).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(history(token.clone()).await, 200);
    // Clicked from the page: a toast may still cover the header's button.
    client
        .execute("document.querySelector(\"button[aria-label='Start a new session']\").click();", vec![])
        .await
        .unwrap();
    wait_for(&client, "the welcome screen after New chat", "document.querySelector('#name')", 5).await;
    let mut revoked = false;
    for _ in 0..50 {
        if history(token.clone()).await == 400 {
            revoked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(revoked, "the old token still reads its history");

    client.close().await.unwrap();
    gateway.kill().await;
}

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

    // Rename: the person's title, on the page and on the server.
    client.execute("window.prompt = () => 'Tides';", vec![]).await.unwrap();
    client
        .find(Locator::Css("[data-testid=conversation][data-id=main] [data-testid=rename]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
    screenshot(&client, "conversations-search-1440x900.png").await;
    let hit = "[...document.querySelectorAll('[data-testid=search-hit]')].find(h => h.innerText.includes('You said: Tell me about tides'))";
    client.execute(&format!("{hit}.click();"), vec![]).await.unwrap();
    wait_for(&client, "the hit's message, marked", "document.querySelector('article.found[data-id$=\".reply\"]')?.innerText.includes('You said: Tell me about tides')", 10).await;
    client.find(Locator::Css("[data-testid=clear-search]")).await.unwrap().click().await.unwrap();
    wait_for(&client, "the list back", "!document.querySelector('[data-testid=search-hit]') && document.querySelectorAll('[data-testid=conversation]').length === 2", 5).await;

    // Edit the question: a new version with its own reply; the old one is a click away.
    client.execute("window.prompt = () => 'Tell me about the moon';", vec![]).await.unwrap();
    client.execute("document.querySelector('article.bubble.user [data-testid=edit]').click();", vec![]).await.unwrap();
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
    let deleted = chat_testkit::wait::wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
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
    client.close().await.unwrap();
    stack.gateway.kill().await;
}

/// A session nobody uses expires by its TTL, as on the server's clock: the open page learns it
/// when the person next sends, says so, and returns to the welcome screen.
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
    let saved = client.execute("return localStorage.getItem('chat.session');", vec![]).await.unwrap();
    assert_eq!(saved, serde_json::Value::Null, "the page forgot the expired token");
    client.close().await.unwrap();
    stack.gateway.kill().await;
}

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
        let question = chat_wire::ChatMessage {
            id: format!("q{i}"),
            msg: format!("Question number {i}: how does this work?"),
            timestamp: "2026-11-24T20:00:00.000Z".into(),
            source: chat_wire::Source::User,
            status: chat_wire::ReplyStatus::Done,
            reply_to: None,
            model: None,
            next_seq: None,
            usage: None,
            versions: None,
        };
        assert_eq!(store.accept_user_message(&token, &main, &question).await.unwrap(), Ok(()));
        let reply = chat_wire::ChatMessage {
            id: chat_wire::reply_id_for(&question.id),
            msg: format!("Answer **{i}**:\n\n- first point\n- second point with `code`\n\n```rust\nfn answer() -> u32 {{ {i} }}\n```"),
            source: chat_wire::Source::Assistant,
            reply_to: Some(question.id.clone()),
            ..question.clone()
        };
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
    let figures = json!({
        "navigation_to_interactive_ms": median(interactive),
        "navigation_to_interactive_with_1000_messages_ms": median(restored_interactive),
        "render_1000_restored_messages_ms": median(restored),
    });
    println!("FRONTEND_BENCH {figures}");
    client.clone().close().await.unwrap();
}
