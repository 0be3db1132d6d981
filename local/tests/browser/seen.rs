//! What a person sees and can reach, checked on what is drawn rather than on the DOM's text: a
//! reply is visible while it streams (the same element, fully opaque, growing); every control
//! is the topmost element at its centre and inside the viewport at every width, with nothing cut
//! off sideways; axe-core finds nothing serious on any screen, light or dark; and the whole app
//! works from the keyboard alone. The README's screenshots are taken here.

use std::path::Path;
use std::time::{Duration, Instant};

use chat_stub_model::{Pacing, Scripted};
use fantoccini::{Client, Locator};
use serde_json::json;

use crate::page::{
    accessibility_problems, click, open_header_menu, reply_done, run, save_screenshot, screenshot, send, sign_in,
    unreachable_controls, wait_for, Stack, LAST_AI, WIDTHS,
};

/// The product of the opacities of `element` and its ancestors, as drawn now (animations
/// included): 1 when nothing makes it fade.
const DRAWN_OPACITY: &str = "(el => { let o = 1; for (let e = el; e; e = e.parentElement) o *= parseFloat(getComputedStyle(e).opacity); return o; })";

/// How far apart the darkest and the lightest pixels of a PNG are (0-255 luminance): text drawn
/// on a bubble is far from its fill; an empty or transparent bubble shows a smooth background.
fn luminance_spread(png_bytes: &[u8]) -> u8 {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).expect("a frame");
    let channels = frame.color_type.samples();
    let (mut darkest, mut lightest) = (255u8, 0u8);
    for pixel in pixels[..frame.buffer_size()].chunks(channels) {
        let luminance =
            ((u32::from(pixel[0]) * 299 + u32::from(pixel[1]) * 587 + u32::from(pixel[2]) * 114) / 1000) as u8;
        darkest = darkest.min(luminance);
        lightest = lightest.max(luminance);
    }
    lightest - darkest
}

/// The window size used at `width`: phones tall, the rest as laptops and tablets are.
fn window(width: u32) -> (u32, u32) {
    match width {
        ..=400 => (width, 844),
        768 => (768, 1024),
        1024 => (1024, 768),
        _ => (width, 900),
    }
}

/// The widths the accessibility checks run at: a phone and a desktop.
const AXE_WIDTHS: [u32; 2] = [390, 1440];

#[tokio::test]
async fn a_streaming_reply_is_drawn_as_it_grows_and_never_fades_in() {
    // One piece every 100 ms for eight seconds: still streaming at the last look (2.5 s after the
    // first piece), however slowly a busy machine shows that piece.
    let pacing = Pacing { between_tokens: Duration::from_millis(100), fixed_tokens: Some(80), ..Default::default() };
    let stack = Stack::start("drawn", pacing, &[]).await;
    let client = stack.client.clone();
    client.goto(&stack.site_url).await.unwrap();
    wait_for(&client, "the welcome screen", "document.querySelector('#name')", 20).await;
    sign_in(&client, "Ada").await;
    send(&client, "Tell me something, slowly").await;
    wait_for(&client, "the reply's first piece", &format!("{LAST_AI}?.innerText.trim().length > 0"), 10).await;
    let first_seen = Instant::now();
    run(&client, &format!("{LAST_AI}.__marker = 'the first piece';")).await;
    let mut shown_before = 0;
    for at in [500, 1500, 2500] {
        tokio::time::sleep_until((first_seen + Duration::from_millis(at)).into()).await;
        let seen = run(
            &client,
            &format!(
                "const b = {LAST_AI}; return [b.__marker ?? null, {DRAWN_OPACITY}(b), b.querySelector('.markdown').innerText.trim().length, b.classList.contains('streaming')];"
            ),
        )
        .await;
        assert_eq!(seen[0], json!("the first piece"), "at {at} ms the reply is the element of its first piece");
        assert_eq!(seen[1].as_f64(), Some(1.0), "at {at} ms the reply is drawn fully opaque");
        let shown = seen[2].as_u64().unwrap();
        assert!(shown > shown_before, "at {at} ms it shows more than before ({shown} > {shown_before} characters)");
        shown_before = shown;
        assert_eq!(seen[3], json!(true), "at {at} ms it is still streaming (an eight-second reply)");
        let bubbles = client.find_all(Locator::Css(".bubble.ai")).await.unwrap();
        let bubble = bubbles.last().expect("the reply's bubble");
        let spread = luminance_spread(&bubble.screenshot().await.unwrap());
        assert!(spread > 80, "at {at} ms its text is drawn: luminance spread {spread} in the bubble's box");
        screenshot(&client, &format!("streaming-{at}ms-1440x900.png")).await;
        if at == 1500 {
            let problems = accessibility_problems(&client).await;
            assert!(problems.is_empty(), "axe, while a reply streams: {problems:#?}");
        }
    }
    wait_for(&client, "the whole reply", &reply_done("tok79"), 20).await;
    let marker = run(&client, &format!("return {LAST_AI}.__marker ?? null;")).await;
    assert_eq!(marker, json!("the first piece"), "the finished reply is still the same element");

    // Opening a conversation draws its messages at once: none fades in.
    click(&client, "[data-testid=new-chat]").await;
    wait_for(&client, "a new conversation", "document.querySelectorAll('[data-testid=conversation]').length === 2", 10)
        .await;
    click(&client, "[data-testid=conversation][data-id=main] button.open").await;
    wait_for(&client, "the first conversation", &reply_done("tok79"), 10).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let faded = run(
        &client,
        &format!(
            "return [...document.querySelectorAll('.bubble')].map(b => {DRAWN_OPACITY}(b)).filter(o => o < 1).length;"
        ),
    )
    .await;
    assert_eq!(faded, json!(0), "100 ms after opening, every message is fully opaque");
    stack.assert_no_console_errors("a streamed reply").await;
}

/// Sets the window to `width` and waits for the page to lay itself out again.
async fn resize(client: &Client, width: u32) {
    let (width, height) = window(width);
    client.set_window_size(width, height).await.unwrap();
    wait_for(client, "the new width", &format!("document.documentElement.clientWidth <= {width}"), 5).await;
    // The drawer's and the menu's transitions settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Problems found on the screen `name` at `width`: unreachable controls, and (at the widths
/// axe runs at) axe-core's serious findings.
async fn check_screen(client: &Client, width: u32, name: &str, problems: &mut Vec<String>) {
    for problem in unreachable_controls(client).await {
        problems.push(format!("{name} at {width} px: {problem}"));
    }
    if AXE_WIDTHS.contains(&width) {
        for problem in accessibility_problems(client).await {
            problems.push(format!("{name} at {width} px, axe: {problem}"));
        }
    }
}

/// Whether the drawer's button shows (phones).
async fn has_drawer(client: &Client) -> bool {
    run(client, "return getComputedStyle(document.querySelector('[data-testid=menu]')).display !== 'none';").await
        == json!(true)
}

async fn open_drawer(client: &Client) {
    if has_drawer(client).await && run(client, "return !document.querySelector('.sidebar.open');").await == json!(true)
    {
        click(client, "[data-testid=menu]").await;
        wait_for(client, "the drawer", "document.querySelector('.sidebar.open')", 5).await;
        tokio::time::sleep(Duration::from_millis(300)).await; // its slide-in
    }
}

async fn press_escape(client: &Client) {
    client.active_element().await.unwrap().send_keys("\u{E00C}").await.unwrap();
}

#[tokio::test]
async fn every_control_works_at_every_width_and_axe_finds_nothing_serious() {
    let stack = Stack::start("screens", Pacing::default(), &[("ALLOWED_MODELS", "stub-large")]).await;
    let client = stack.client.clone();
    client.goto(&stack.site_url).await.unwrap();
    wait_for(&client, "the welcome screen", "document.querySelector('#name')", 20).await;
    let mut problems = Vec::new();
    for width in WIDTHS {
        resize(&client, width).await;
        check_screen(&client, width, "welcome", &mut problems).await;
    }
    resize(&client, 1440).await;
    sign_in(&client, "Ada Lovelace").await;
    stack.stub.push([Scripted::Reply(
        "Use `chars().rev()`:\n\n```rust\nlet reversed: String = text.chars().rev().collect();\n```\n\n\
         It reverses Unicode scalar values; for what a reader sees as one character, use the \
         `unicode-segmentation` crate's graphemes."
            .into(),
    )]);
    send(&client, "How do I reverse a string in Rust?").await;
    wait_for(&client, "the reply", &reply_done("graphemes"), 10).await;
    // A second conversation, so the list, search and delete have something to show.
    click(&client, "[data-testid=new-chat]").await;
    wait_for(&client, "two conversations", "document.querySelectorAll('[data-testid=conversation]').length === 2", 10)
        .await;
    send(&client, "A second conversation about the sea").await;
    wait_for(&client, "the second reply", &reply_done("about the sea"), 10).await;
    click(&client, "[data-testid=conversation][data-id=main] button.open").await;
    wait_for(&client, "the first conversation", &reply_done("graphemes"), 10).await;
    let second = run(&client, "return [...document.querySelectorAll('[data-testid=conversation]')].map(c => c.dataset.id).find(id => id !== 'main');").await;
    let second = second.as_str().unwrap().to_string();

    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    for width in WIDTHS {
        resize(&client, width).await;
        check_screen(&client, width, "chat", &mut problems).await;
        if width == 390 || width == 1440 {
            let device = if width == 390 { "phone" } else { "desktop" };
            save_screenshot(&client, &readme, &format!("{device}-light.png")).await;
            stack.prefer_dark(true).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            check_screen(&client, width, "chat (dark)", &mut problems).await;
            save_screenshot(&client, &readme, &format!("{device}-dark.png")).await;
            stack.prefer_dark(false).await;
        }

        // The header's menu, where the header is folded.
        open_header_menu(&client).await;
        if run(&client, "return !!document.querySelector('.header-actions.open');").await == json!(true) {
            check_screen(&client, width, "header menu", &mut problems).await;
            screenshot(&client, &format!("header-menu-{width}.png")).await;
            press_escape(&client).await;
            wait_for(&client, "the menu closed", "!document.querySelector('.header-actions.open')", 5).await;
        }

        // The instructions, in the page's own dialog.
        open_header_menu(&client).await;
        click(&client, "[data-testid=instructions]").await;
        wait_for(&client, "the instructions dialog", "document.querySelector('dialog[open]')", 5).await;
        check_screen(&client, width, "instructions dialog", &mut problems).await;
        screenshot(&client, &format!("instructions-{width}.png")).await;
        click(&client, "dialog[open] [data-testid=dialog-cancel]").await;
        wait_for(&client, "the dialog closed", "!document.querySelector('dialog[open]')", 5).await;

        // The list: the sidebar, or the drawer on a phone.
        open_drawer(&client).await;
        check_screen(&client, width, "conversations", &mut problems).await;

        // Search results in place of the list.
        let search = client.find(Locator::Css("[data-testid=search]")).await.unwrap();
        search.send_keys("sea\u{E007}").await.unwrap();
        wait_for(&client, "the search hits", "document.querySelectorAll('[data-testid=search-hit]').length > 0", 10)
            .await;
        check_screen(&client, width, "search results", &mut problems).await;
        screenshot(&client, &format!("search-{width}.png")).await;
        click(&client, "[data-testid=clear-search]").await;
        wait_for(&client, "the list back", "!document.querySelector('[data-testid=search-hit]')", 5).await;

        // A deletion's toast, with its Undo (the drawer stays open on a phone).
        click(&client, &format!("[data-testid=conversation][data-id='{second}'] [data-testid=delete]")).await;
        wait_for(&client, "the toast", "document.querySelector('[data-testid=undo]')", 5).await;
        tokio::time::sleep(Duration::from_millis(300)).await; // its slide-in
        check_screen(&client, width, "a toast", &mut problems).await;
        screenshot(&client, &format!("toast-{width}.png")).await;
        click(&client, "[data-testid=undo]").await;
        wait_for(
            &client,
            "the conversation back",
            "document.querySelectorAll('[data-testid=conversation]').length === 2",
            5,
        )
        .await;
        if has_drawer(&client).await {
            press_escape(&client).await;
            wait_for(&client, "the drawer closed", "!document.querySelector('.sidebar.open')", 5).await;
        }
        run(&client, "document.querySelectorAll('[data-testid=toast] .close').forEach(b => b.click());").await;
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    stack.assert_no_console_errors("every screen at every width").await;
}

/// Presses `keys` on whatever has the focus.
async fn press(client: &Client, keys: &str) {
    client.active_element().await.unwrap().send_keys(keys).await.unwrap();
}

/// What has the focus: its test id (or its tag), and whether a focus ring is drawn around it.
async fn focused(client: &Client) -> (String, bool) {
    let seen = run(
        client,
        "const e = document.activeElement; const s = getComputedStyle(e); \
         return [e.dataset.testid || e.id || e.tagName.toLowerCase(), s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0];",
    )
    .await;
    (seen[0].as_str().unwrap_or_default().to_string(), seen[1].as_bool().unwrap_or(false))
}

/// Tabs through the page once (at most `limit` stops), answering each stop's id, and failing
/// on a stop with no focus ring or one inside a closed drawer.
async fn tab_through(client: &Client, limit: usize) -> Vec<String> {
    let mut stops = Vec::new();
    for _ in 0..limit {
        press(client, "\u{E004}").await;
        let (id, ring) = focused(client).await;
        let hidden = run(
            client,
            "const s = document.querySelector('#sidebar'); return !!s && s.contains(document.activeElement) && getComputedStyle(s).visibility === 'hidden';",
        )
        .await;
        assert_eq!(hidden, json!(false), "Tab reached {id} in the closed drawer");
        if id != "body" {
            assert!(ring, "{id} has the focus with no visible focus ring");
        }
        if stops.first() == Some(&id) {
            break;
        }
        stops.push(id);
    }
    stops
}

#[tokio::test]
async fn everything_works_from_the_keyboard_alone() {
    let stack = Stack::start("keyboard", Pacing::default(), &[]).await;
    let client = stack.client.clone();
    let http = reqwest::Client::new();
    client.goto(&stack.site_url).await.unwrap();
    wait_for(&client, "the welcome screen", "document.querySelector('#name')", 20).await;
    // The name field has the focus; Enter starts the chat and the focus is in the message box.
    wait_for(&client, "the name field focused", "document.activeElement?.id === 'name'", 5).await;
    press(&client, "Ada\u{E007}").await;
    wait_for(
        &client,
        "the connection",
        "document.querySelector('[data-testid=connection-status]')?.innerText === 'Connected'",
        20,
    )
    .await;
    wait_for(
        &client,
        "the message box focused",
        "document.activeElement === document.querySelector('.composer textarea')",
        5,
    )
    .await;
    press(&client, "Hello from the keyboard\u{E007}").await;
    wait_for(&client, "the reply", &reply_done("You said: Hello from the keyboard"), 10).await;

    // On a desktop every action is a Tab away, each with its focus ring.
    let stops = tab_through(&client, 40).await;
    for action in ["new-chat", "search", "instructions", "export-markdown", "export-json", "end-session", "edit"] {
        assert!(stops.iter().any(|stop| stop == action), "{action} is not reachable with Tab: {stops:?}");
    }

    // On a phone: the drawer and the header's menu open and close from the keyboard, taking the
    // focus in and giving it back; the closed drawer holds no Tab stop.
    resize(&client, 390).await;
    let stops = tab_through(&client, 40).await;
    assert!(stops.iter().any(|s| s == "menu") && stops.iter().any(|s| s == "more"), "{stops:?}");
    assert!(!stops.iter().any(|s| s == "new-chat"), "the closed drawer's controls take no Tab stop: {stops:?}");
    run(&client, "document.querySelector('[data-testid=menu]').focus();").await;
    press(&client, "\u{E007}").await;
    wait_for(
        &client,
        "the drawer, focused",
        "document.querySelector('.sidebar.open') && document.activeElement.dataset.testid === 'new-chat'",
        5,
    )
    .await;
    press(&client, "\u{E00C}").await;
    wait_for(
        &client,
        "the drawer closed, its button focused",
        "!document.querySelector('.sidebar.open') && document.activeElement.dataset.testid === 'menu'",
        5,
    )
    .await;
    run(&client, "document.querySelector('[data-testid=more]').focus();").await;
    press(&client, "\u{E007}").await;
    wait_for(
        &client,
        "the menu, focused",
        "document.querySelector('.header-actions.open')?.contains(document.activeElement)",
        5,
    )
    .await;
    press(&client, "\u{E00C}").await;
    wait_for(
        &client,
        "the menu closed, its button focused",
        "!document.querySelector('.header-actions.open') && document.activeElement.dataset.testid === 'more'",
        5,
    )
    .await;

    // The instructions from the keyboard: menu, Instructions, type, Save.
    press(&client, "\u{E007}").await;
    wait_for(
        &client,
        "the menu",
        "document.querySelector('.header-actions.open')?.contains(document.activeElement)",
        5,
    )
    .await;
    for _ in 0..6 {
        if focused(&client).await.0 == "instructions" {
            break;
        }
        press(&client, "\u{E004}").await;
    }
    assert_eq!(focused(&client).await.0, "instructions");
    press(&client, "\u{E007}").await;
    wait_for(
        &client,
        "the dialog, focused",
        "document.querySelector('dialog[open]')?.contains(document.activeElement)",
        5,
    )
    .await;
    press(&client, "Answer in one sentence.").await;
    press(&client, "\u{E004}\u{E004}").await; // past Cancel, to Save
    assert_eq!(focused(&client).await.0, "dialog-save");
    press(&client, "\u{E007}").await;
    wait_for(&client, "the dialog closed", "!document.querySelector('dialog[open]')", 5).await;
    let token = crate::page::token(&client).await;
    let saved = chat_testkit::wait::wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        let (http, base, token) = (http.clone(), stack.base(), token.clone());
        async move {
            let list: chat_wire::ConversationList = http
                .get(format!("{base}/conversations"))
                .query(&[("token", token)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            list.conversations.iter().any(|c| c.instructions.as_deref() == Some("Answer in one sentence."))
        }
    })
    .await;
    assert!(saved, "the instructions typed in the dialog reached the server");
    // And a dialog is left with Escape, changing nothing.
    click(&client, "[data-testid=more]").await;
    click(&client, "[data-testid=instructions]").await;
    wait_for(&client, "the dialog again", "document.querySelector('dialog[open]')", 5).await;
    press(&client, "\u{E00C}").await;
    wait_for(&client, "the dialog closed by Escape", "!document.querySelector('dialog[open]')", 5).await;
    stack.assert_no_console_errors("the keyboard story").await;
}
