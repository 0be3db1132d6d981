//! Many conversations in one session: a person starts new ones without losing the old, finds
//! them listed newest first, renames and deletes them; replies stream in two at once; a client
//! that knows nothing of conversations keeps working on the current one.

use std::time::Duration;

use chat_local::Options;
use chat_stub_model::{Pacing, Scripted};
use chat_testkit::{on_each_store, StoreKind, TestApp};
use chat_wire::{ErrorCode, ReplyStatus, ReplyText, ServerFrame, TitleSource};
use reqwest::Method;
use serde_json::json;

/// How long a reply held back in a story stalls: far longer than the story's next steps take.
const STALL: Duration = Duration::from_secs(4);

/// A stack whose replies take about a second (20 words, 40 ms apart), so two overlap.
async fn slow_app(kind: StoreKind, vars: &[(&str, &str)]) -> TestApp {
    let pacing = Pacing { between_tokens: Duration::from_millis(40), ..Default::default() };
    TestApp::builder().vars(vars).pacing(pacing).on(kind).spawn().await
}

/// Reads frames until both replies are done, each rebuilt from its own deltas by its
/// `conversation` field; answers the two texts and whether their deltas interleaved.
async fn two_replies(ws: &mut chat_testkit::WsClient, first: &str, second: &str) -> (String, String, bool) {
    let (mut a, mut b) = (ReplyText::default(), ReplyText::default());
    let (mut a_done, mut b_done) = (false, false);
    let mut order = Vec::new();
    while !(a_done && b_done) {
        match ws.next_frame().await {
            ServerFrame::Delta { seq, text, conversation, .. } => {
                let conversation = conversation.expect("a delta names its conversation");
                order.push(conversation.clone());
                if conversation == first {
                    a.delta(seq, &text);
                } else {
                    assert_eq!(conversation, second);
                    b.delta(seq, &text);
                }
            }
            ServerFrame::Done { status, conversation, .. } => {
                assert_eq!(status, ReplyStatus::Done);
                match conversation.as_deref() {
                    Some(c) if c == first => a_done = true,
                    Some(c) if c == second => b_done = true,
                    other => panic!("a done for {other:?}"),
                }
            }
            ServerFrame::Ack { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // Interleaved: after the first switch from one conversation to the other, a switch back.
    let switches = order.windows(2).filter(|pair| pair[0] != pair[1]).count();
    (a.text().to_string(), b.text().to_string(), switches >= 2)
}

async fn new_chat_keeps_the_old_one_and_both_stream_at_once(kind: StoreKind) {
    let app = slow_app(kind, &[]).await;
    let session = app.create_session("Ada").await;
    let token = &session.token;
    // A new session has one conversation, `main`, current and untitled.
    let list = app.conversations(token).await;
    assert_eq!(list.current, "main");
    assert_eq!(list.conversations.len(), 1);
    assert_eq!((list.conversations[0].title.as_str(), list.conversations[0].titled_by), ("", TitleSource::None));

    let mut ws = app.connect(token).await;
    // Whichever reply the model starts first stalls after two pieces, long enough for the other
    // to stream meanwhile on any machine.
    app.stub.push([Scripted::StallAfter(2, STALL)]);
    ws.ask("m1", "first conversation, tell me about tides and the moon please").await;
    // "New chat": a second conversation in the same session, current from now on.
    let second = app.new_conversation(token).await;
    assert_ne!(second.id, "main");
    ws.send_message_in(&second.id, "m1", "second conversation, same message id, other question").await;
    let (first_text, second_text, interleaved) = two_replies(&mut ws, "main", &second.id).await;
    assert_eq!(first_text, "You said: first conversation, tell me about tides and the moon please");
    assert_eq!(second_text, "You said: second conversation, same message id, other question");
    assert!(interleaved, "the two replies streamed at once");

    // Each conversation holds its own question and reply; ids are per conversation.
    let main = app.history_of(token, "main").await;
    let other = app.history_of(token, &second.id).await;
    assert_eq!(main.messages.iter().map(|m| m.msg.as_str()).collect::<Vec<_>>()[1], first_text);
    assert_eq!(other.messages.iter().map(|m| m.msg.as_str()).collect::<Vec<_>>()[1], second_text);
    // The seed's contract: without `conversation`, the history is the current conversation's.
    assert_eq!(app.session(token).await.messages, other.messages);

    // Listed newest activity first, titled from their questions.
    let list = app.conversations(token).await;
    let ids: Vec<&str> = list.conversations.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, [second.id.as_str(), "main"]);
    assert_eq!(list.current, second.id);
    let titled = &list.conversations[0];
    assert_eq!(
        (titled.title.as_str(), titled.titled_by),
        ("second conversation, same message id, other question", TitleSource::Question)
    );
    assert!(titled.last_activity >= titled.created);

    // A question without `conversation` goes to the current one.
    ws.ask("m2", "where does this go?").await;
    assert_eq!(ws.read_reply().await.text, "You said: where does this go?");
    assert_eq!(app.history_of(token, &second.id).await.messages.len(), 4);
    assert_eq!(app.history_of(token, "main").await.messages.len(), 2);
}

async fn one_reply_at_a_time_per_conversation_not_per_session(kind: StoreKind) {
    let app = slow_app(kind, &[]).await;
    let session = app.create_session("Ada").await;
    let token = &session.token;
    let second = app.new_conversation(token).await;
    let mut ws = app.connect(token).await;
    app.stub.push([Scripted::StallAfter(1, STALL)]);
    ws.send_message_in("main", "a1", "a slow reply in the first conversation").await;
    assert!(matches!(ws.next_frame().await, ServerFrame::Ack { .. } | ServerFrame::Delta { .. }));
    // The same conversation is busy...
    ws.send_message_in("main", "a2", "too soon").await;
    let refused = loop {
        match ws.next_frame().await {
            ServerFrame::Error { code, conversation, .. } => break (code, conversation),
            ServerFrame::Delta { .. } | ServerFrame::Ack { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(refused, (ErrorCode::ReplyInProgress, Some("main".to_string())));
    // ...the other is not.
    ws.send_message_in(&second.id, "b1", "meanwhile here").await;
    let (a, b, _) = two_replies(&mut ws, "main", &second.id).await;
    assert_eq!(
        (a.as_str(), b.as_str()),
        ("You said: a slow reply in the first conversation", "You said: meanwhile here")
    );
    assert_eq!(app.history_of(token, "main").await.messages.len(), 2, "the refused question was not stored");
}

async fn renamed_and_deleted_conversations(kind: StoreKind) {
    let app = TestApp::builder()
        .vars(&[("MAX_CONVERSATIONS_PER_SESSION", "3"), ("MAX_TITLE_CHARS", "20")])
        .on(kind)
        .spawn()
        .await;
    let session = app.create_session("Ada").await;
    let token = &session.token;
    // Another tab hears every change to the list as it is made.
    let mut tab = app.connect(token).await;
    let trip = app.new_conversation(token).await;
    assert_eq!(tab.next_notice().await, ServerFrame::Conversation { conversation: trip.clone() });
    let mut ws = app.connect(token).await;
    ws.send_message_in(&trip.id, "q1", "Plan a trip to Oslo in winter for two people").await;
    assert_eq!(ws.read_reply().await.text, "You said: Plan a trip to Oslo in winter for two people");
    // Titled from the question, cut to MAX_TITLE_CHARS at a word.
    let listed = app.conversations(token).await.conversations[0].clone();
    assert_eq!((listed.id.as_str(), listed.title.as_str()), (trip.id.as_str(), "Plan a trip to Oslo…"));

    // Renamed by the person.
    let path = format!("/conversations/{}", trip.id);
    let (status, body) = app.call(Method::PATCH, &path, token, &[], Some(json!({"title": "  Oslo  "}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["title"].as_str(), body["titled_by"].as_str()), (Some("Oslo"), Some("person")));
    loop {
        let ServerFrame::Conversation { conversation } = tab.next_notice().await else {
            panic!("a conversation notice")
        };
        if conversation.title == "Oslo" {
            break assert_eq!(conversation.titled_by, TitleSource::Person);
        }
    }
    for (title, why) in [("", "blank"), ("a title far too long for twenty", "too long"), ("two\nlines", "control")] {
        let (status, body) = app.call(Method::PATCH, &path, token, &[], Some(json!({ "title": title }))).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_title")), "{why}: {body}");
    }
    let (status, body) = app.call(Method::PATCH, "/conversations/nope", token, &[], Some(json!({"title": "x"}))).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("unknown_conversation")));

    // A retried create with the same id makes one conversation; the limit is answered clearly.
    assert_eq!(create(&app, token, "third").await.0, 201);
    assert_eq!(create(&app, token, "third").await.0, 201, "a retry answers the same conversation");
    let (status, body) = create(&app, token, "fourth").await;
    assert_eq!((status, body["code"].as_str()), (409, Some("too_many_conversations")), "{body}");
    assert_eq!(app.conversations(token).await.conversations.len(), 3);

    // Deleted: gone from the list and its history; its messages go with it.
    let (status, _) = app.call(Method::DELETE, &path, token, &[], None).await;
    assert_eq!(status, 204);
    loop {
        if let ServerFrame::ConversationDeleted { id } = tab.next_notice().await {
            break assert_eq!(id, trip.id);
        }
    }
    let ids: Vec<String> = app.conversations(token).await.conversations.into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["third", "main"]);
    let (status, body) = app.call(Method::GET, "/chat_history", token, &[("conversation", &trip.id)], None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("unknown_conversation")));
    let (status, _) = app.call(Method::DELETE, &path, token, &[], None).await;
    assert_eq!(status, 404, "deleting twice");
    let keys = chat_testkit::session_keys(token).conversation(&chat_wire::ConversationId::parse(&trip.id).unwrap());
    let mut redis = app.redis().await;
    for key in [keys.meta, keys.order, keys.messages] {
        let exists: bool = redis::AsyncCommands::exists(&mut redis, &key).await.unwrap();
        assert!(!exists, "{key} outlived the conversation");
    }
    // A question for it is refused, and stored nowhere.
    ws.send_message_in(&trip.id, "q2", "still there?").await;
    match ws.next_frame().await {
        ServerFrame::Error { code, reply_to, conversation, .. } => {
            assert_eq!(
                (code, reply_to.as_deref(), conversation.as_deref()),
                (ErrorCode::UnknownConversation, Some("q2"), Some(trip.id.as_str()))
            );
        }
        other => panic!("expected unknown_conversation, got {other:?}"),
    }
    // And a room was freed.
    assert_eq!(create(&app, token, "fourth").await.0, 201);
}

/// Reads a reply of conversation `conversation` to its end from what the client holds (`text`),
/// checking that every frame names that conversation. Answers the text and how many snapshots
/// came (one a takeover, or the answer to a resume).
async fn rest_of_reply_in(ws: &mut chat_testkit::WsClient, conversation: &str, mut text: ReplyText) -> (String, usize) {
    let mut snapshots = 0;
    loop {
        match ws.next_frame().await {
            ServerFrame::Snapshot { next_seq, text: shown, conversation: of, .. } => {
                assert_eq!(of.as_deref(), Some(conversation));
                text.snapshot(next_seq, &shown);
                snapshots += 1;
            }
            ServerFrame::Delta { seq, text: piece, conversation: of, .. } => {
                assert_eq!(of.as_deref(), Some(conversation));
                text.delta(seq, &piece);
            }
            ServerFrame::Done { status, conversation: of, .. } => {
                assert_eq!((status, of.as_deref()), (ReplyStatus::Done, Some(conversation)));
                return (text.text().to_string(), snapshots);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads frames until a reply's first delta: the reply is being written.
async fn until_a_delta(ws: &mut chat_testkit::WsClient) {
    while !matches!(ws.next_frame().await, ServerFrame::Delta { .. }) {}
}

/// `POST /conversations` with a client-chosen id.
async fn create(app: &TestApp, token: &str, id: &str) -> (u16, serde_json::Value) {
    app.call(Method::POST, "/conversations", token, &[], Some(json!({ "id": id }))).await
}

async fn a_deleted_conversation_stops_its_reply(kind: StoreKind) {
    let app = slow_app(kind, &[]).await;
    let session = app.create_session("Ada").await;
    let token = &session.token;
    let doomed = app.new_conversation(token).await;
    let mut ws = app.connect(token).await;
    // Eight seconds of reply: it is still being written when the deletion lands.
    ws.send_message_in(&doomed.id, "q1", &"word ".repeat(200)).await;
    until_a_delta(&mut ws).await;
    let (status, _) = app.call(Method::DELETE, &format!("/conversations/{}", doomed.id), token, &[], None).await;
    assert_eq!(status, 204);
    // The worker stops at its next delta and stores nothing: no `done`, no keys left behind.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Some(frame) = ws.frame_before(deadline).await {
        assert!(matches!(frame, ServerFrame::Delta { .. } | ServerFrame::Ack { .. }), "after the delete: {frame:?}");
    }
    // Every tab hears it: after the reply's announcement, the deletion.
    let deleted = ServerFrame::ConversationDeleted { id: doomed.id.clone() };
    loop {
        match ws.next_notice().await {
            ServerFrame::Conversation { conversation } => assert_eq!(conversation.id, doomed.id),
            notice => break assert_eq!(notice, deleted),
        }
    }
    let keys = chat_testkit::session_keys(token).conversation(&chat_wire::ConversationId::parse(&doomed.id).unwrap());
    let mut redis = app.redis().await;
    let log = keys.log_of("q1.reply");
    for key in [keys.meta, keys.order, keys.messages, keys.lock, log] {
        let exists: bool = redis::AsyncCommands::exists(&mut redis, &key).await.unwrap();
        assert!(!exists, "{key} outlived the conversation");
    }
    let cancelled = chat_testkit::wait::wait_until(Duration::from_secs(10), Duration::from_millis(20), || async {
        app.stub.in_flight() == 0
    })
    .await;
    assert!(cancelled, "the model's request was cancelled");
}

async fn a_reply_in_a_conversation_left_behind_is_resumed_from_another_tab(kind: StoreKind) {
    let app = slow_app(kind, &[]).await;
    let session = app.create_session("Ada").await;
    let token = &session.token;
    let older = app.new_conversation(token).await;
    let mut laptop = app.connect(token).await;
    // The reply stalls after two pieces: still streaming while the person moves on.
    app.stub.push([Scripted::StallAfter(2, STALL)]);
    laptop.send_message_in(&older.id, "q1", &"word ".repeat(30)).await;
    until_a_delta(&mut laptop).await;
    // The person starts another conversation: the first is no longer current, and is still written.
    let newer = app.new_conversation(token).await;
    assert_eq!(app.conversations(token).await.current, newer.id);
    let history = app.history_of(token, &older.id).await;
    let streaming = history.messages.last().unwrap();
    assert_eq!(streaming.status, ReplyStatus::Streaming);
    // A phone opens the older conversation and resumes its reply there.
    let mut phone = app.connect(token).await;
    let resume = json!({"action": "resume", "reply_to": "q1", "conversation": older.id});
    phone.send_text(&resume.to_string()).await;
    let text = ReplyText::from_snapshot(streaming.next_seq.unwrap(), streaming.msg.clone());
    let (text, _) = rest_of_reply_in(&mut phone, &older.id, text).await;
    let stored = app.history_of(token, &older.id).await.messages.pop().unwrap();
    assert_eq!(text, stored.msg);
    assert_eq!(stored.msg.trim_end(), format!("You said: {}", "word ".repeat(30).trim_end()));
}

on_each_store!(
    new_chat_keeps_the_old_one_and_both_stream_at_once,
    one_reply_at_a_time_per_conversation_not_per_session,
    renamed_and_deleted_conversations,
    a_deleted_conversation_stops_its_reply,
    a_reply_in_a_conversation_left_behind_is_resumed_from_another_tab,
);

#[tokio::test]
async fn the_model_titles_a_conversation_and_every_tab_hears_it() {
    let app = TestApp::builder().vars(&[("CONVERSATION_TITLES", "true")]).spawn().await;
    let session = app.create_session("Ada").await;
    let token = &session.token;
    let mut laptop = app.connect(token).await;
    let mut phone = app.connect(token).await;
    // The reply, then the title the model gives.
    app.stub.push([
        Scripted::Reply("Oxygen atoms high up glow green when the solar wind excites them.".into()),
        Scripted::Reply("Why auroras glow green".into()),
    ]);
    laptop.ask("q1", "What makes the northern lights green?").await;
    assert!(matches!(laptop.read_reply().await.end, ServerFrame::Done { .. }));
    // The other tab hears the question's title first, then the model's.
    let ServerFrame::Conversation { conversation } = phone.next_notice().await else { panic!("a conversation notice") };
    assert_eq!(
        (conversation.title.as_str(), conversation.titled_by),
        ("What makes the northern lights green?", TitleSource::Question)
    );
    let ServerFrame::Conversation { conversation } = phone.next_notice().await else { panic!("a conversation notice") };
    assert_eq!((conversation.title.as_str(), conversation.titled_by), ("Why auroras glow green", TitleSource::Model));
    // Asked as a title: one line of a few tokens, for the question.
    let asked = app.stub.requests().into_iter().find(|r| r["stream"].as_bool() != Some(true)).expect("a title request");
    assert!(asked["messages"][0]["content"].as_str().unwrap().contains("topic"), "{asked}");
    assert_eq!(asked["messages"][1]["content"], "What makes the northern lights green?");
    assert_eq!((asked["max_tokens"].as_u64(), asked["stop"].clone()), (Some(24), json!(["\n"])));
    assert_eq!(app.conversations(token).await.conversations[0], conversation);

    // A person's title is never replaced by the model's.
    let (status, _) =
        app.call(Method::PATCH, "/conversations/main", token, &[], Some(json!({"title": "Auroras"}))).await;
    assert_eq!(status, 200);
    let other = app.new_conversation(token).await;
    laptop.send_message_in(&other.id, "q1", "Another question").await;
    assert!(matches!(laptop.read_reply().await.end, ServerFrame::Done { .. }));
    let list = app.conversations(token).await;
    let main = list.conversations.iter().find(|c| c.id == "main").unwrap();
    assert_eq!((main.title.as_str(), main.titled_by), ("Auroras", TitleSource::Person));
}

#[tokio::test]
async fn a_model_title_that_reads_as_a_reply_leaves_the_questions_words() {
    let app = TestApp::builder().vars(&[("CONVERSATION_TITLES", "true")]).spawn().await;
    let (session, mut ws) = app.signed_in("Ada").await;
    app.stub.push([
        Scripted::Reply("Hi! I am an assistant.".into()),
        Scripted::Reply("Hello! I'm glad you asked, here is what I think.".into()),
    ]);
    ws.ask("q1", "Hello! Who are you?").await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
    let title_answered = chat_testkit::wait::wait_until(Duration::from_secs(10), Duration::from_millis(20), || async {
        app.stub.requests().len() == 2
    })
    .await;
    assert!(title_answered, "the model was asked for a title");
    // However long the worker takes to judge it, the title stays the question's.
    for _ in 0..10 {
        let list = app.conversations(&session.token).await;
        let main = &list.conversations[0];
        assert_eq!((main.title.as_str(), main.titled_by), ("Hello! Who are you?", TitleSource::Question));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_question_in_one_conversation_keeps_the_others_alive() {
    let app = TestApp::builder().vars(&[("SESSION_TTL_SECONDS", "6")]).spawn().await;
    let session = app.create_session("Ada").await;
    let token = &session.token;
    let mut ws = app.connect(token).await;
    ws.ask("q1", "kept?").await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
    let other = app.new_conversation(token).await;
    // Nine seconds of questions in the other conversation only: half as long again as the
    // session's TTL.
    for i in 0..6 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        ws.send_message_in(&other.id, &format!("r{i}"), "still here").await;
        assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
    }
    let main = app.history_of(token, "main").await;
    assert_eq!(main.messages.len(), 2, "the first conversation lived as long as the session");
}

#[tokio::test]
async fn search_finds_titles_and_messages_and_forgets_deleted_conversations() {
    let app = TestApp::builder().vars(&[("SEARCHES_PER_SESSION_PER_WINDOW", "7")]).spawn().await;
    let session = app.create_session("Ada").await;
    let token = &session.token;
    let mut ws = app.connect(token).await;
    ws.ask("q1", "Why are the TIDES higher at full moon?").await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
    let other = app.new_conversation(token).await;
    ws.send_message_in(&other.id, "q1", "Quote \"this\" and tides, with a\nnew line").await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));

    // Case-insensitive, in titles and in both sides of each conversation; newest activity first.
    let (status, body) = search(&app, token, "tides").await;
    assert_eq!(status, 200, "{body}");
    let results: chat_wire::SearchResults = serde_json::from_value(body).unwrap();
    let places: Vec<(String, Option<String>)> =
        results.hits.iter().map(|h| (h.conversation.clone(), h.message_id.clone())).collect();
    let main = "main".to_string();
    let newer = other.id.clone();
    for expected in [
        (newer.clone(), None),
        (newer.clone(), Some("q1".to_string())),
        (newer.clone(), Some("q1.reply".to_string())),
        (main.clone(), None),
        (main.clone(), Some("q1".to_string())),
        (main.clone(), Some("q1.reply".to_string())),
    ] {
        assert!(places.contains(&expected), "{expected:?} missing from {places:?}");
    }
    assert_eq!(places.len(), 6, "{places:?}");
    assert_eq!(places[0], (newer.clone(), None), "the most recently active conversation first");
    let hit = results.hits.iter().find(|h| h.message_id.as_deref() == Some("q1") && h.conversation == main).unwrap();
    assert_eq!(hit.snippet, "Why are the TIDES higher at full moon?");
    // Quotes and line breaks are found as written, not as stored (escaped in JSON).
    let (_, body) = search(&app, token, "quote \"this\"").await;
    assert_eq!(body["hits"].as_array().unwrap().len(), 3, "{body}");
    let (_, body) = search(&app, token, "a new").await;
    assert_eq!(body["hits"].as_array().unwrap().len(), 1, "a line break is no space: only the one-line title: {body}");

    // A deleted conversation is found no more.
    let (status, _) = app.call(Method::DELETE, &format!("/conversations/{}", other.id), token, &[], None).await;
    assert_eq!(status, 204);
    let (_, body) = search(&app, token, "tides").await;
    let results: chat_wire::SearchResults = serde_json::from_value(body).unwrap();
    assert!(results.hits.iter().all(|h| h.conversation == "main"), "{results:?}");
    assert_eq!(results.hits.len(), 3);

    // Bad queries are answered clearly, and searches are counted.
    let (status, body) = search(&app, token, "   ").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_parameter")));
    // Letters beyond ASCII are compared without case too.
    ws.ask("q2", "Viel ÄRGER heute?").await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
    let (_, body) = search(&app, token, "ärger").await;
    let ids: Vec<&str> = body["hits"].as_array().unwrap().iter().filter_map(|h| h["message_id"].as_str()).collect();
    assert_eq!(ids, ["q2.reply", "q2"], "{body}");
    let (status, body) = search(&app, token, "nothing like this").await;
    assert_eq!((status, body["hits"].as_array().map(Vec::len)), (200, Some(0)));
    let (status, _) = search(&app, token, "moon").await;
    assert_eq!(status, 200, "the seventh search (a refused query is not counted)");
    let (status, body) = search(&app, token, "moon").await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")), "the eighth search: {body}");
}

#[tokio::test]
async fn creating_changing_and_deleting_conversations_is_counted_in_one_window() {
    let app = TestApp::builder().vars(&[("CHANGES_PER_SESSION_PER_WINDOW", "3")]).spawn().await;
    let session = app.create_session("Ada").await;
    let token = &session.token;
    let other = app.new_conversation(token).await;
    let path = format!("/conversations/{}", other.id);
    let title = serde_json::json!({"title": "Tides"});
    let (status, body) = app.call(Method::PATCH, &path, token, &[], Some(title.clone())).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        app.call(Method::PATCH, &path, token, &[], Some(serde_json::json!({"instructions": "Be brief."}))).await;
    assert_eq!(status, 200, "the third change: {body}");
    for (method, path, body) in [
        (Method::POST, "/conversations".to_string(), None),
        (Method::PATCH, path.clone(), Some(title)),
        (Method::DELETE, path.clone(), None),
    ] {
        let (status, answer) = app.call(method.clone(), &path, token, &[], body).await;
        assert_eq!((status, answer["code"].as_str()), (429, Some("rate_limited")), "{method} {path}: {answer}");
    }
    // Reads are counted apart: the list still answers, and nothing was changed by the refusals.
    let (status, body) = app.call(Method::GET, "/conversations", token, &[], None).await;
    assert_eq!(status, 200, "{body}");
    let list: chat_wire::ConversationList = serde_json::from_value(body).unwrap();
    assert_eq!(list.conversations.len(), 2, "{list:?}");
    assert!(list.conversations.iter().any(|c| c.id == other.id && c.title == "Tides"), "{list:?}");
}

/// `GET /search?q=`.
async fn search(app: &TestApp, token: &str, q: &str) -> (u16, serde_json::Value) {
    app.call(Method::GET, "/search", token, &[("q", q)], None).await
}

/// The texts of a history, in order.
fn texts(session: &chat_wire::ChatSession) -> Vec<&str> {
    session.messages.iter().map(|m| m.msg.as_str()).collect()
}

/// `POST /conversations/{id}/versions`: shows the version starting at `message_id`.
async fn show_version(app: &TestApp, token: &str, conversation: &str, message_id: &str) -> (u16, serde_json::Value) {
    let path = format!("/conversations/{conversation}/versions");
    app.call(Method::POST, &path, token, &[], Some(json!({ "message_id": message_id }))).await
}

async fn an_edit_branches_and_a_regeneration_keeps_both_replies(kind: StoreKind) {
    let app = TestApp::builder().vars(&[("MAX_VERSIONS_PER_MESSAGE", "3")]).on(kind).spawn().await;
    let session = app.create_session("Ada").await;
    let token = &session.token;
    let mut ws = app.connect(token).await;
    for (id, text) in [("q1", "one"), ("q2", "two"), ("q3", "three")] {
        ws.ask(id, text).await;
        assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
    }
    // The person edits the middle question: a new version of its place, with its own reply.
    let edit = json!({"action": "sendMessage", "id": "q2b", "content": "TWO, edited", "edits": "q2"});
    ws.send_text(&edit.to_string()).await;
    assert_eq!(ws.read_reply().await.text, "You said: TWO, edited");
    let history = app.session(token).await;
    assert_eq!(texts(&history), ["one", "You said: one", "TWO, edited", "You said: TWO, edited"]);
    let versions = |session: &chat_wire::ChatSession, id: &str| {
        session.messages.iter().find(|m| m.id == id).and_then(|m| m.versions.clone())
    };
    assert_eq!(versions(&history, "q2b"), Some(vec!["q2".to_string(), "q2b".to_string()]));
    assert_eq!(versions(&history, "q1"), None);
    // The model saw the path from the root to the edited question, not the old branch.
    let request = app.stub.requests().pop().unwrap();
    let context: Vec<&str> =
        request["messages"].as_array().unwrap().iter().filter_map(|m| m["content"].as_str()).collect();
    assert!(context.ends_with(&["one", "You said: one", "TWO, edited"]), "{context:?}");
    assert!(!context.iter().any(|c| c.contains("two") || c.contains("three")), "{context:?}");

    // The old branch is kept whole: shown again, then the new one.
    let (status, body) = show_version(&app, token, "main", "q2").await;
    assert_eq!(status, 200, "{body}");
    let shown: chat_wire::ChatSession = serde_json::from_value(body).unwrap();
    assert_eq!(texts(&shown), ["one", "You said: one", "two", "You said: two", "three", "You said: three"]);
    assert_eq!(versions(&shown, "q2"), Some(vec!["q2".to_string(), "q2b".to_string()]));
    assert_eq!(app.session(token).await.messages, shown.messages, "the history follows the version shown");
    let (status, body) = show_version(&app, token, "main", "q2b").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        texts(&serde_json::from_value(body).unwrap()),
        ["one", "You said: one", "TWO, edited", "You said: TWO, edited"]
    );

    // Regenerate: the new reply is a version beside the old one.
    ws.send_text(r#"{"action":"regenerate","reply_to":"q2b"}"#).await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
    let history = app.session(token).await;
    assert_eq!(versions(&history, "q2b.reply"), Some(vec!["q2b.reply~1".to_string(), "q2b.reply".to_string()]));
    let (status, body) = show_version(&app, token, "main", "q2b.reply~1").await;
    assert_eq!(status, 200, "{body}");
    let old: chat_wire::ChatSession = serde_json::from_value(body).unwrap();
    assert_eq!(old.messages.last().unwrap().id, "q2b.reply~1");
    assert_eq!(old.messages.last().unwrap().msg, "You said: TWO, edited");
    // Regenerated from there, the reply shown last is kept too.
    ws.send_text(r#"{"action":"regenerate","reply_to":"q2b"}"#).await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
    let history = app.session(token).await;
    let mut listed = versions(&history, "q2b.reply").unwrap();
    listed.sort();
    assert_eq!(listed, ["q2b.reply", "q2b.reply~1", "q2b.reply~2"]);

    // Limits and mistakes are answered clearly.
    let edit = json!({"action": "sendMessage", "id": "q2c", "content": "third", "edits": "q2b"});
    ws.send_text(&edit.to_string()).await;
    assert_eq!(ws.read_reply().await.text, "You said: third");
    let edit = json!({"action": "sendMessage", "id": "q2d", "content": "fourth", "edits": "q2c"});
    ws.send_text(&edit.to_string()).await;
    match ws.next_frame().await {
        ServerFrame::Error { code, reply_to, .. } => {
            assert_eq!((code, reply_to.as_deref()), (ErrorCode::TooManyVersions, Some("q2d")))
        }
        other => panic!("expected too_many_versions, got {other:?}"),
    }
    let edit = json!({"action": "sendMessage", "id": "q9", "content": "nine", "edits": "nope"});
    ws.send_text(&edit.to_string()).await;
    assert!(matches!(ws.next_frame().await, ServerFrame::Error { code: ErrorCode::UnknownMessage, .. }));
    let (status, body) = show_version(&app, token, "main", "nope").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("unknown_message")));
    // The refused edits left the conversation as it was, and unlocked.
    ws.ask("q10", "still fine?").await;
    assert_eq!(ws.read_reply().await.text, "You said: still fine?");
    assert_eq!(
        texts(&app.session(token).await)[2..],
        ["third", "You said: third", "still fine?", "You said: still fine?"]
    );

    // The JSON export holds the path shown and every other version's messages.
    let query = [("conversation", "main"), ("format", "json")];
    let (status, exported) = app.call(Method::GET, "/chat_export", token, &query, None).await;
    assert_eq!(status, 200);
    let shown: Vec<chat_wire::ChatMessage> = serde_json::from_value(exported["messages"].clone()).unwrap();
    assert_eq!(shown, app.session(token).await.messages);
    let others: Vec<chat_wire::ChatMessage> = serde_json::from_value(exported["other_versions"].clone()).unwrap();
    let mut ids: Vec<&str> = others.iter().map(|m| m.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["q2", "q2.reply", "q2b", "q2b.reply", "q2b.reply~1", "q2b.reply~2", "q3", "q3.reply"]);
}

on_each_store!(an_edit_branches_and_a_regeneration_keeps_both_replies);

async fn a_worker_killed_mid_reply_in_a_conversation_left_behind_is_taken_over(kind: StoreKind) {
    let pacing = Pacing { between_tokens: Duration::from_millis(15), ..Default::default() };
    let app = TestApp::builder()
        .vars(&[("WORKER_CLAIM_IDLE_MS", "600")])
        .options(Options { in_process_worker: false, ..Default::default() })
        .pacing(pacing)
        .on(kind)
        .spawn()
        .await;
    let session = app.create_session("Ada").await;
    let token = &session.token;
    let older = app.new_conversation(token).await;
    let newer = app.new_conversation(token).await;
    assert_eq!(app.conversations(token).await.current, newer.id, "the reply's conversation is not the current one");
    let words = |attempt: &str, n: usize| (0..n).map(|i| format!("{attempt}{i}")).collect::<Vec<_>>().join(" ");
    let (first, second) = (words("first", 200), words("second", 30));
    app.stub.push([chat_stub_model::Scripted::Reply(first.clone()), chat_stub_model::Scripted::Reply(second.clone())]);
    let local = std::path::Path::new(env!("CARGO_BIN_EXE_local"));
    let mut worker = app.spawn_worker(local, "600", "worker-0");
    let mut ws = app.connect(token).await;
    ws.send_message_in(&older.id, "q1", "a long one").await;
    let mut text = ReplyText::default();
    while text.next_seq() < 2 {
        match ws.next_frame().await {
            ServerFrame::Delta { seq, text: piece, conversation, .. } => {
                assert_eq!(conversation.as_deref(), Some(older.id.as_str()));
                text.delta(seq, &piece);
            }
            ServerFrame::Ack { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // SIGKILL mid-reply; another worker process takes the entry over.
    worker.start_kill().unwrap();
    worker.wait().await.unwrap();
    let _rescuer = app.spawn_worker(local, "600", "worker-1");
    let (text, restarts) = rest_of_reply_in(&mut ws, &older.id, text).await;
    assert_eq!(restarts, 1, "one takeover");
    assert_eq!(text, second, "the client shows the second attempt alone");
    let stored = app.history_of(token, &older.id).await;
    assert_eq!(texts(&stored), ["a long one", second.as_str()], "stored once, in its own conversation");
    assert!(app.history_of(token, &newer.id).await.messages.is_empty());
    assert!(app.history_of(token, "main").await.messages.is_empty());
}

on_each_store!(a_worker_killed_mid_reply_in_a_conversation_left_behind_is_taken_over);

#[tokio::test]
async fn a_conversation_has_its_own_model_and_instructions() {
    let allowed = [("ALLOWED_MODELS", "other-model, stub, not-served")];
    let app = TestApp::builder().vars(&allowed).spawn().await;
    let session = app.create_session("Ada").await;
    let token = &session.token;
    // The allow-list as far as the provider serves it, once the worker listed what it serves.
    let listed = chat_testkit::wait::wait_until(Duration::from_secs(10), Duration::from_millis(50), || async {
        let (_, models) = app.call(Method::GET, "/models", token, &[], None).await;
        models == json!({"default": "stub", "models": ["stub", "other-model"]})
    })
    .await;
    assert!(listed, "GET /models offers the allowed models the provider serves");

    let change = |body: serde_json::Value| app.call(Method::PATCH, "/conversations/main", token, &[], Some(body));
    for refused in ["gpt-9", "not-served"] {
        let (status, body) = change(json!({ "model": refused })).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_parameter")), "{refused}");
    }
    let (status, body) = change(json!({})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_parameter")), "nothing to change");
    let (status, body) = change(json!({"model": "other-model", "instructions": "Answer like a pirate."})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["model"].as_str(), body["instructions"].as_str()),
        (Some("other-model"), Some("Answer like a pirate."))
    );

    let mut ws = app.connect(token).await;
    ws.ask("q1", "hello").await;
    let ServerFrame::Done { model, .. } = ws.read_reply().await.end else { panic!("expected done") };
    assert_eq!(model.as_deref(), Some("other-model"));
    let asked = app.stub.requests().pop().unwrap();
    assert_eq!(asked["model"], "other-model");
    assert_eq!(asked["messages"][0], json!({"role": "system", "content": "Answer like a pirate."}));
    assert_eq!(app.session(token).await.messages[1].model.as_deref(), Some("other-model"));

    // Another conversation keeps the deployment's model and system prompt.
    let other = app.new_conversation(token).await;
    ws.send_message_in(&other.id, "q1", "hello").await;
    let ServerFrame::Done { model, .. } = ws.read_reply().await.end else { panic!("expected done") };
    assert_eq!(model.as_deref(), Some("stub"));
    let asked = app.stub.requests().pop().unwrap();
    assert_ne!(asked["messages"][0]["content"], "Answer like a pirate.");

    // Back to the defaults.
    let (status, body) = change(json!({"model": "", "instructions": ""})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("model").is_none() && body.get("instructions").is_none(), "{body}");
}

#[tokio::test]
async fn frames_answer_what_protocol_md_says_for_an_unknown_conversation_and_a_reply_edited() {
    let app = TestApp::builder().spawn().await;
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("q1", "hello").await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { .. }));
    // `resume` and `regenerate` naming a conversation the session does not hold.
    for action in ["resume", "regenerate"] {
        ws.send_text(&json!({"action": action, "reply_to": "q1", "conversation": "nowhere"}).to_string()).await;
        match ws.next_frame().await {
            ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::UnknownConversation, "{action}"),
            other => panic!("{action}: expected an error, got {other:?}"),
        }
    }
    // An edit naming a reply's id names no question of the conversation.
    ws.send_text(&json!({"action": "sendMessage", "id": "q2", "content": "again", "edits": "q1.reply"}).to_string())
        .await;
    match ws.next_frame().await {
        ServerFrame::Error { code, reply_to, .. } => {
            assert_eq!((code, reply_to.as_deref()), (ErrorCode::UnknownMessage, Some("q2")))
        }
        other => panic!("expected unknown_message, got {other:?}"),
    }
    assert_eq!(app.session(&session.token).await.messages.len(), 2, "nothing stored");
}
