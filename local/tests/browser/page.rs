//! What every browser story stands on: the stack it runs against ([`Stack`]), the page as a
//! person meets it (waits named after what they wait for, sending, signing in), and what is
//! checked of what is drawn: the controls a person can reach at their centres, what axe-core
//! finds, the console's errors, and screenshots.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chat_local::redis_server::{free_port, RedisServer};
use chat_local::site::SiteConfig;
use chat_stub_model::{Pacing, StubModel};
use chat_testkit::wait::wait_for_port;
use chat_testkit::{TempDir, Vars};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::process::Command;

/// The newest reply bubble on the page (a JavaScript expression).
pub const LAST_AI: &str =
    "(() => { const b = [...document.querySelectorAll('.bubble.ai:not(.typing)')]; return b.length ? b[b.length-1] : null; })()";

/// The widths a person uses: two phones, a tablet, a small laptop, a desktop.
pub const WIDTHS: [u32; 5] = [320, 390, 768, 1024, 1440];

/// The `local` binary serving the gateway and its worker, a process of its own: killed for real.
pub struct Gateway {
    child: tokio::process::Child,
}

pub async fn start_gateway(addr: SocketAddr, env: &Vars) -> Gateway {
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
    pub async fn kill(&mut self) {
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
    assert!(wait_for_port(port, Duration::from_secs(30)).await, "chromedriver did not start");
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

async fn browser(port: u16, profile: &Path) -> Client {
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
    // The console's messages (errors, failed requests), read back by `console_errors`.
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session")
}

/// Where the browser started with `profile` saves downloads.
fn downloads(profile: &Path) -> PathBuf {
    profile.with_file_name("downloads")
}

/// Waits for a finished download whose name ends with `extension` and answers its name and text.
pub async fn downloaded(profile: &Path, extension: &str) -> (String, String) {
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

/// Polls a JavaScript expression until it is truthy (fails the test after `seconds`, naming
/// `what` it waited for and what the page shows).
pub async fn wait_for(client: &Client, what: &str, script: &str, seconds: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let value = client.execute(&format!("return ({script});"), vec![]).await.unwrap_or(Value::Null);
        let truthy = match &value {
            Value::Null | Value::Bool(false) => false,
            Value::String(s) => !s.is_empty(),
            Value::Number(n) => n.as_f64() != Some(0.0),
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

/// Runs `script` (a statement) in the page.
pub async fn run(client: &Client, script: &str) -> Value {
    client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// Clicks the element `selector` names, as a person would (it must be the topmost there).
pub async fn click(client: &Client, selector: &str) {
    client
        .find(Locator::Css(selector))
        .await
        .unwrap_or_else(|e| panic!("no {selector}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("could not click {selector}: {e}"));
}

/// Enters `name` on the welcome screen and waits until the chat is connected.
pub async fn sign_in(client: &Client, name: &str) {
    client.find(Locator::Css("#name")).await.unwrap().send_keys(name).await.unwrap();
    click(client, "form.welcome button[type=submit]").await;
    wait_for(
        client,
        "the connection",
        "document.querySelector('[data-testid=connection-status]')?.innerText === 'Connected'",
        20,
    )
    .await;
}

/// Types `text` in the message box and presses Enter.
pub async fn send(client: &Client, text: &str) {
    let input = client.find(Locator::Css("textarea")).await.unwrap();
    input.send_keys(text).await.unwrap();
    input.send_keys("\u{E007}").await.unwrap(); // Enter
}

/// A script that waits until the newest reply says `text` and has finished streaming.
pub fn reply_done(text: &str) -> String {
    format!("{LAST_AI} && !{LAST_AI}.classList.contains('streaming') && {LAST_AI}.innerText.includes({})", json!(text))
}

/// The session token the page keeps.
pub async fn token(client: &Client) -> String {
    let token = run(client, "return JSON.parse(localStorage.getItem('chat.session')).token;").await;
    token.as_str().expect("a saved session").to_string()
}

/// Fills the open in-page dialog with `text` and saves it.
pub async fn answer_dialog(client: &Client, text: &str) {
    wait_for(client, "the dialog", "document.querySelector('dialog[open] [data-testid=dialog-text]')", 5).await;
    run(
        client,
        &format!(
            "const field = document.querySelector('dialog[open] [data-testid=dialog-text]'); field.value = {}; \
             field.dispatchEvent(new Event('input', {{bubbles: true}}));",
            json!(text)
        ),
    )
    .await;
    click(client, "dialog[open] [data-testid=dialog-save]").await;
    wait_for(client, "the dialog closed", "!document.querySelector('dialog[open]')", 5).await;
}

/// Opens the header's "⋯" menu where the header is folded (narrow chats); nothing where the
/// controls show in a row.
pub async fn open_header_menu(client: &Client) {
    let folded = run(
        client,
        "const more = document.querySelector('[data-testid=more]'); return !!more && getComputedStyle(more).display !== 'none';",
    )
    .await;
    if folded == json!(true) {
        if run(client, "return document.querySelector('[data-testid=more]').getAttribute('aria-expanded');").await
            != json!("true")
        {
            click(client, "[data-testid=more]").await;
        }
        wait_for(client, "the header's menu", "document.querySelector('.header-actions.open')", 5).await;
    }
}

/// Saves a screenshot of the page under `target/screenshots/`.
pub async fn screenshot(client: &Client, name: &str) -> PathBuf {
    save_screenshot(client, &Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots"), name).await
}

/// Saves a screenshot of the page in `dir`.
pub async fn save_screenshot(client: &Client, dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, client.screenshot().await.unwrap()).unwrap();
    path
}

/// Everything a browser test runs against: a redis-server, the stub model, the gateway (with
/// its worker), the static site, chromedriver and a Chromium session.
pub struct Stack {
    pub client: Client,
    pub env: Vars,
    pub redis: RedisServer,
    pub stub: StubModel,
    pub site_url: String,
    pub gateway_addr: SocketAddr,
    pub gateway: Gateway,
    /// The browser's profile (its downloads go next to it).
    pub profile: PathBuf,
    driver_port: u16,
    _driver: tokio::process::Child,
    _browser: BrowserGuard,
    _work: TempDir,
}

impl Stack {
    pub async fn start(name: &str, pacing: Pacing, vars: &[(&str, &str)]) -> Stack {
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
            max_name_chars: 64,
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
            stub,
            site_url,
            gateway_addr,
            gateway,
            profile,
            driver_port,
            _driver: driver,
            _browser: browser_guard,
            _work: work,
        }
    }

    /// The gateway's HTTP API.
    pub fn base(&self) -> String {
        format!("http://{}", self.gateway_addr)
    }

    /// A chromedriver command of this session that WebDriver itself does not name (`path`
    /// under `/session/{id}/`).
    pub async fn driver(&self, path: &str, body: Value) -> Value {
        let session = self.client.session_id().await.unwrap().expect("a session");
        let url = format!("http://127.0.0.1:{}/session/{session}/{path}", self.driver_port);
        let response = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
        let answer: Value = response.json().await.unwrap();
        answer["value"].clone()
    }

    /// The console's messages since the last call: `(level, text)`, errors and failed requests
    /// (`SEVERE`) included.
    pub async fn console(&self) -> Vec<(String, String)> {
        let entries = self.driver("se/log", json!({"type": "browser"})).await;
        entries
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        (
                            e["level"].as_str().unwrap_or_default().to_string(),
                            e["message"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Fails the test if the console holds an error (a script error, a failed request) since
    /// the last look.
    pub async fn assert_no_console_errors(&self, during: &str) {
        let errors: Vec<_> = self.console().await.into_iter().filter(|(level, _)| level == "SEVERE").collect();
        assert!(errors.is_empty(), "console errors during {during}: {errors:#?}");
    }

    /// Makes the page prefer a dark (or light) colour scheme, as the system setting would.
    pub async fn prefer_dark(&self, dark: bool) {
        let scheme = if dark { "dark" } else { "light" };
        let params = json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]});
        self.driver("goog/cdp/execute", json!({"cmd": "Emulation.setEmulatedMedia", "params": params})).await;
    }
}

/// axe-core's script (npm `axe-core`, installed by scripts/install-node-tools.sh).
fn axe_source() -> String {
    let path = std::env::var_os("AXE_CORE_JS").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        home.join(".cache/chatbot/node/node_modules/axe-core/axe.min.js")
    });
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("axe-core at {}: {e} (scripts/install-node-tools.sh installs it)", path.display()))
}

/// What axe-core finds on the page as it is drawn now, serious and critical only: one line per
/// rule and element.
pub async fn accessibility_problems(client: &Client) -> Vec<String> {
    static AXE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let source = AXE.get_or_init(axe_source);
    run(client, &format!("if (!window.axe) {{ {source} }}")).await;
    let results = client
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map(v => \
               ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)})))) \
             .catch(e => done([{id: 'axe-failed', impact: 'critical', help: String(e), nodes: []}]));",
            vec![],
        )
        .await
        .unwrap();
    let mut problems = Vec::new();
    for violation in results.as_array().cloned().unwrap_or_default() {
        let impact = violation["impact"].as_str().unwrap_or_default();
        if impact == "serious" || impact == "critical" {
            problems.push(format!("{} ({impact}): {} -> {}", violation["id"], violation["help"], violation["nodes"]));
        }
    }
    problems
}

/// Every control a person could use right now (shown, not inert, not scrolled out of its list,
/// inside the modal layer if one is open, not beneath the open menu or a toast), checked as
/// drawn: its box inside the viewport, and it (or a part of it) the topmost element at its
/// centre. And nothing whose content is cut off sideways where its box clips (a deliberate
/// ellipsis excepted). One line per problem.
pub const UNREACHABLE_CONTROLS: &str = r#"return (() => {
  const problems = [];
  const vw = document.documentElement.clientWidth, vh = document.documentElement.clientHeight;
  const shown = el => {
    for (let e = el; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.display === 'none' || s.visibility === 'hidden' || e.inert) return false;
    }
    const r = el.getBoundingClientRect();
    return r.width > 1 && r.height > 1;
  };
  const inScrollers = el => {
    const r = el.getBoundingClientRect();
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    for (let e = el.parentElement; e && e !== document.body; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (/(auto|scroll|hidden|clip)/.test(s.overflowY + s.overflowX)) {
        const b = e.getBoundingClientRect();
        if (x < b.left || x > b.right || y < b.top || y > b.bottom) return false;
      }
    }
    return true;
  };
  const name = el => (el.dataset.testid || el.getAttribute('aria-label') || el.innerText || el.value || el.tagName).trim().slice(0, 40);
  // A modal layer (an open dialog, the drawer over the page) is all that should be clickable;
  // what floats over the page (the header's open menu, a toast) may cover what is beneath it.
  const drawer = document.querySelector('.sidebar.open');
  const layer = document.querySelector('dialog[open]') || (drawer && getComputedStyle(drawer).position === 'fixed' ? drawer : null);
  const floating = [...document.querySelectorAll('.header-actions.open, [data-testid=toast]')]
    .filter(shown).filter(f => getComputedStyle(f).position === 'absolute' || f.closest('.toasts'));
  const beneath = el => {
    const r = el.getBoundingClientRect();
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    return floating.some(f => {
      const b = f.getBoundingClientRect();
      return !f.contains(el) && x >= b.left && x <= b.right && y >= b.top && y <= b.bottom;
    });
  };
  const controls = [...document.querySelectorAll('button, select, input, textarea, a[href]')]
    .filter(shown).filter(el => !layer || layer.contains(el)).filter(inScrollers).filter(el => !beneath(el));
  for (const el of controls) {
    const r = el.getBoundingClientRect();
    if (r.left < -0.5 || r.top < -0.5 || r.right > vw + 0.5 || r.bottom > vh + 0.5) {
      problems.push(`${name(el)}: outside the ${vw}x${vh} viewport (${Math.round(r.left)},${Math.round(r.top)} ${Math.round(r.width)}x${Math.round(r.height)})`);
      continue;
    }
    const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    if (!top || !(top === el || el.contains(top))) {
      problems.push(`${name(el)}: covered by ${top ? top.tagName.toLowerCase() + '.' + String(top.className).trim().replace(/\s+/g, '.') : 'nothing'}`);
    }
  }
  for (const el of document.querySelectorAll('body *')) {
    if (!shown(el)) continue;
    const s = getComputedStyle(el);
    if ((s.overflowX === 'hidden' || s.overflowX === 'clip') && s.textOverflow !== 'ellipsis' && el.scrollWidth > el.clientWidth + 1) {
      problems.push(`${el.tagName.toLowerCase()}.${String(el.className).trim().replace(/\s+/g, '.')}: content ${el.scrollWidth - el.clientWidth}px wider than its box`);
    }
  }
  return problems;
})();"#;

/// The problems [`UNREACHABLE_CONTROLS`] finds now.
pub async fn unreachable_controls(client: &Client) -> Vec<String> {
    let found = run(client, UNREACHABLE_CONTROLS).await;
    found.as_array().map(|p| p.iter().filter_map(|p| p.as_str().map(str::to_string)).collect()).unwrap_or_default()
}
