//! The worker as Lambda runs it: replies have an upper bound, an entry its workers keep dying on
//! ends, a running (or lingering) invocation with a free slot spares the next question a wake-up,
//! and a session whose worker died takes no second question until the first is answered.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chat_core::Store;
use chat_local::Options;
use chat_stub_model::Pacing;
use chat_testkit::{on_each_store, LambdaStack, StoreKind, TestApp, Vars};
use chat_wire::{ErrorCode, ReplyStatus, ReplyText, ServerFrame};
use chat_worker::{ManagementApi, Outcome, Worker};

/// A connection for a worker's blocking stream reads, as the worker binary opens one.
fn reader(app: &TestApp) -> Store {
    Store::connect_for_blocking_reads(&app.config, chat_worker::INVOCATION_READ_BLOCK).unwrap()
}

/// A worker of this process, reading as `consumer` (its Management API is the stack's gateway).
fn worker(app: &TestApp, consumer: &str, vars: &[(&str, &str)]) -> Arc<Worker> {
    let mut config = Vars::stack(&app.redis.url(), &app.stub, "test-key")
        .with(&[("WORKER_CONSUMER", consumer)])
        .with(vars)
        .config()
        .unwrap();
    config.request_stream = app.config.request_stream.clone();
    config.ws_management_endpoint = app.config.ws_management_endpoint.clone();
    let store = Store::connect(&config).unwrap();
    let connections = ManagementApi::local(&config);
    Arc::new(Worker::new(config, store, connections))
}

#[tokio::test]
async fn a_reply_longer_than_max_reply_seconds_is_cut_and_kept_as_an_error() {
    // 60 tokens, 100 ms apart: six seconds of reply against a two-second bound (time enough for
    // its first pieces on any machine).
    let pacing = Pacing { between_tokens: Duration::from_millis(100), fixed_tokens: Some(60), ..Default::default() };
    let app = TestApp::builder().vars(&[("MAX_REPLY_SECONDS", "2")]).pacing(pacing).spawn().await;
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "talk for a long time").await;
    let mut saw_error = None;
    let mut text = ReplyText::default();
    let done = loop {
        match ws.next_frame().await {
            ServerFrame::Delta { seq, text: piece, .. } => text.delta(seq, &piece),
            ServerFrame::Error { code, .. } => saw_error = Some(code),
            done @ ServerFrame::Done { .. } => break done,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(saw_error, Some(ErrorCode::ModelTimeout));
    assert!(matches!(done, ServerFrame::Done { status: ReplyStatus::Error, .. }), "{done:?}");
    let stored = &app.session(&session.token).await.messages[1];
    assert_eq!(stored.status, ReplyStatus::Error);
    assert!(!stored.msg.is_empty() && stored.msg.len() < "tok59 ".len() * 60, "{:?}", stored.msg);
    assert_eq!(stored.msg, text.text(), "what the client saw is what was kept");
    // The model's request was dropped, not left running.
    let stopped = chat_testkit::wait::wait_until(Duration::from_secs(5), Duration::from_millis(20), || async {
        app.stub.in_flight() == 0
    })
    .await;
    assert!(stopped, "the model request was cancelled");
}

#[tokio::test]
async fn an_entry_its_workers_keep_dying_on_ends_with_an_error_and_is_acknowledged() {
    let app = TestApp::builder()
        .vars(&[("WORKER_CLAIM_IDLE_MS", "50")])
        .options(Options { in_process_worker: false, ..Default::default() })
        .spawn()
        .await;
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "this one kills workers").await;
    // Three workers take the entry and die before answering (deliveries 1, 2, 3).
    let store = Store::connect(&app.config).unwrap();
    store.ensure_group().await.unwrap();
    assert_eq!(store.read_new("dead-1", 10, None).await.unwrap().len(), 1);
    for dead in ["dead-2", "dead-3"] {
        tokio::time::sleep(Duration::from_millis(80)).await;
        let claimed = store.claim_stale(dead, Duration::from_millis(50), 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
    }
    tokio::time::sleep(Duration::from_millis(80)).await;
    let rescuer = worker(&app, "rescuer", &[("WORKER_CLAIM_IDLE_MS", "50"), ("WORKER_MAX_DELIVERIES", "3")]);
    let claimed = store.claim_stale("rescuer", Duration::from_millis(50), 10).await.unwrap();
    assert_eq!(claimed[0].deliveries, 4, "XPENDING's count, read back");
    assert_eq!(rescuer.process(&claimed[0]).await.unwrap(), Outcome::GaveUp);

    let mut error = None;
    let done = loop {
        match ws.next_frame().await {
            ServerFrame::Error { code, reply_to, .. } => error = Some((code, reply_to)),
            done @ ServerFrame::Done { .. } => break done,
            ServerFrame::Snapshot { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(error, Some((ErrorCode::Internal, Some("m1".to_string()))));
    assert!(matches!(done, ServerFrame::Done { status: ReplyStatus::Error, .. }), "{done:?}");
    let history = app.session(&session.token).await;
    assert_eq!((history.messages.len(), history.messages[1].status), (2, ReplyStatus::Error));
    assert!(app.stub.requests().is_empty(), "the model was never asked");
    assert_eq!(store.pending_count().await.unwrap(), 0, "acknowledged");
    // The session is free again: the person can ask again (or regenerate).
    ws.ask("m2", "and now?").await;
}

async fn a_running_invocation_with_a_free_slot_spares_the_next_question_a_wake_up(kind: StoreKind) {
    let pacing = Pacing { between_tokens: Duration::from_millis(50), fixed_tokens: Some(20), ..Default::default() };
    let app = TestApp::builder()
        .options(Options { in_process_worker: false, ..Default::default() })
        .pacing(pacing)
        .on(kind)
        .spawn()
        .await;
    let store = Store::connect(&app.config).unwrap();
    assert!(store.wake_needed().await.unwrap(), "no worker runs: wake one");
    store.renew_worker_lease("w1", Duration::from_secs(10), 3).await.unwrap();
    assert!(!store.wake_needed().await.unwrap(), "a running worker has room");
    store.renew_worker_lease("w1", Duration::from_secs(10), 0).await.unwrap();
    assert!(store.wake_needed().await.unwrap(), "a full worker is no help");
    store.renew_worker_lease("w1", Duration::from_millis(1000), 3).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(store.wake_needed().await.unwrap(), "an expired lease is a dead worker's");
    store.renew_worker_lease("w2", Duration::from_secs(10), 3).await.unwrap();
    store.release_worker_lease("w2").await.unwrap();
    assert!(store.wake_needed().await.unwrap(), "a released lease offers nothing");

    // A real invocation holds its lease while it writes, and gives it up when it ends.
    let (_, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "a one-second reply").await;
    let invocation = worker(&app, "invocation", &[("WORKER_CONCURRENCY", "4")]);
    let running = tokio::spawn({
        let invocation = invocation.clone();
        let reader = reader(&app);
        async move { invocation.drain(&reader, Some(tokio::time::Instant::now() + Duration::from_secs(600))).await }
    });
    let mut shown = ReplyText::default();
    match ws.next_frame().await {
        ServerFrame::Delta { seq, text, .. } => shown.delta(seq, &text),
        other => panic!("expected a delta, got {other:?}"),
    }
    assert!(!store.wake_needed().await.unwrap(), "mid-reply, the invocation offers its free slots");
    let reply = ws.read_reply_from(shown).await;
    assert!(matches!(reply.end, ServerFrame::Done { status: ReplyStatus::Done, .. }));
    assert_eq!(running.await.unwrap().unwrap(), 1, "one entry, then the empty stream (after the linger) ends it");
    assert!(store.wake_needed().await.unwrap(), "an ended invocation holds no lease");
}

#[tokio::test]
async fn an_invocation_near_its_deadline_takes_no_new_entry() {
    let app = TestApp::builder().options(Options { in_process_worker: false, ..Default::default() }).spawn().await;
    let (_, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "too late for this invocation").await;
    // 30 s left, but a reply may take 120 s (MAX_REPLY_SECONDS): it is left for the next one.
    let late = worker(&app, "late", &[]);
    let processed =
        late.drain(&reader(&app), Some(tokio::time::Instant::now() + Duration::from_secs(30))).await.unwrap();
    assert_eq!(processed, 0);
    assert_eq!(app.stream_len().await, 1);
    let next = worker(&app, "next", &[]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    assert_eq!(next.drain(&reader(&app), Some(deadline)).await.unwrap(), 1);
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { status: ReplyStatus::Done, .. }));
}

#[tokio::test]
async fn a_session_whose_worker_died_takes_no_second_question_until_the_first_is_answered() {
    const CLAIM_IDLE_MS: &str = "1500";
    let pacing = Pacing { between_tokens: Duration::from_millis(30), ..Default::default() };
    let app = TestApp::builder()
        .vars(&[("WORKER_CLAIM_IDLE_MS", CLAIM_IDLE_MS)])
        .options(Options { in_process_worker: false, ..Default::default() })
        .pacing(pacing)
        .spawn()
        .await;
    let local = Path::new(env!("CARGO_BIN_EXE_local"));
    let (session, mut ws) = app.signed_in("Ada").await;
    let mut dying = app.spawn_worker(local, CLAIM_IDLE_MS, "dying");
    let question = "a question long enough to be cut in the middle of its reply";
    // The dying worker's model call stalls after three pieces: it is still mid-reply when it is
    // killed, however slowly this machine reads the first two.
    app.stub.push([chat_stub_model::Scripted::StallAfter(3, Duration::from_secs(20))]);
    ws.ask("q1", question).await;
    let mut shown = ReplyText::default();
    for _ in 0..2 {
        match ws.next_frame().await {
            ServerFrame::Delta { seq, text, .. } => shown.delta(seq, &text),
            other => panic!("expected a delta, got {other:?}"),
        }
    }
    dying.start_kill().unwrap();
    dying.wait().await.unwrap();
    let killed_at = std::time::Instant::now();

    // Its lock holds: a second question is refused, and nothing about it is stored or queued.
    ws.send_message("q2", "may I ask another?").await;
    match ws.next_frame().await {
        ServerFrame::Error { code: ErrorCode::ReplyInProgress, .. } => {}
        other => panic!("expected reply_in_progress, got {other:?}"),
    }
    assert_eq!(app.stream_len().await, 1);

    let _rescuer = app.spawn_worker(local, CLAIM_IDLE_MS, "rescuer");
    let reply = ws.read_reply_from(shown).await;
    println!("taken over and finished {:.2} s after the kill", killed_at.elapsed().as_secs_f64());
    assert!(matches!(reply.end, ServerFrame::Done { status: ReplyStatus::Done, .. }), "{:?}", reply.end);
    assert_eq!(reply.text, format!("You said: {question}"));
    assert!(!reply.snapshots.is_empty(), "the clients were told the reply restarts");
    assert_eq!(app.stub.requests().len(), 2, "the dead worker's call, and the rescuer's");

    // Now the second question is taken.
    ws.ask("q2", "may I ask another?").await;
    assert_eq!(ws.read_reply().await.text, "You said: may I ask another?");
    let history = app.session(&session.token).await;
    let ids: Vec<_> = history.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["q1", "q1.reply", "q2", "q2.reply"]);
}

/// The worker's Lambda binary, as the tests' own (debug) profile builds it.
fn worker_binary() -> std::path::PathBuf {
    chat_testkit::lambda_stack::worker_binary(Path::new(env!("CARGO_MANIFEST_DIR")), "dev")
}

#[tokio::test]
async fn a_question_asked_while_an_invocation_lingers_is_answered_by_it_without_a_new_wake_up() {
    // The invocation lingers ten seconds for the next question: far longer than this story
    // takes between a reply's `done` and the next question, on any machine.
    let stack = LambdaStack::start(
        worker_binary(),
        Pacing::default(),
        &[("WORKER_LINGER_MS", "10000"), ("MAX_REPLY_SECONDS", "5"), ("RUST_LOG", "warn")],
        Duration::from_secs(120),
        5,
    )
    .await;
    let (_, mut ws) = stack.person("Ada").await;
    ws.ask("q1", "the first question wakes a worker").await;
    assert!(matches!(ws.read_reply().await.end, ServerFrame::Done { status: ReplyStatus::Done, .. }));
    ws.ask("q2", "the second finds it lingering").await;
    assert_eq!(ws.read_reply().await.text, "You said: the second finds it lingering");
    let counts = stack.lambda.counts();
    assert_eq!((counts.invoked, counts.environments), (1, 1), "the lingering invocation took it: {counts:?}");

    // With nothing more to do, it ends once its linger is over, within its deadline.
    assert!(stack.settle(Duration::from_secs(30)).await, "the invocation ended: {:?}", stack.lambda.counts());
    let counts = stack.lambda.counts();
    assert_eq!((counts.completed, counts.timed_out), (1, 0), "{counts:?}");
    // Then a question wakes a worker again (the same environment, warm).
    ws.ask("q3", "nobody is running now").await;
    assert_eq!(ws.read_reply().await.text, "You said: nobody is running now");
    assert_eq!(stack.lambda.counts().invoked, 2);
    assert_eq!(stack.stub.requests().len(), 3, "one model call per question");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_binary_lives_within_a_short_lambda_timeout_under_steady_questions() {
    const TIMEOUT: Duration = Duration::from_secs(20);
    const TRAFFIC: Duration = Duration::from_secs(65);
    // Replies of about three seconds: 30 tokens, 100 ms apart.
    let pacing = Pacing { between_tokens: Duration::from_millis(100), fixed_tokens: Some(30), ..Default::default() };
    let vars = [("MAX_REPLY_SECONDS", "10"), ("WORKER_CONCURRENCY", "32"), ("RUST_LOG", "warn")];
    let stack = LambdaStack::start(worker_binary(), pacing, &vars, TIMEOUT, 5).await;

    // Eight people asking one question after another for more than three timeouts' worth: every
    // invocation reaches the point where it takes no new question and hands over.
    let started = std::time::Instant::now();
    let people = (0..8).map(|person| {
        let stack = &stack;
        async move {
            let (token, mut ws) = stack.person(&format!("P{person}")).await;
            let mut asked = 0;
            while started.elapsed() < TRAFFIC {
                ws.ask(&format!("q{asked}"), &format!("question {asked} from person {person}")).await;
                let reply = ws.read_reply().await;
                assert!(matches!(reply.end, ServerFrame::Done { status: ReplyStatus::Done, .. }), "{:?}", reply.end);
                asked += 1;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            (token, asked)
        }
    });
    let results = futures_util::future::join_all(people).await;
    let questions: usize = results.iter().map(|(_, asked)| asked).sum();
    assert!(stack.settle(TIMEOUT).await, "every invocation ended: {:?}", stack.lambda.counts());

    // Every question answered once, whole: one stored reply each, one model call each.
    for (token, asked) in &results {
        let response = chat_testkit::api::history_request(&stack.http, &stack.base, token).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.json::<chat_wire::ChatSession>().await.unwrap();
        assert_eq!(body.messages.len(), 2 * asked);
        assert!(body
            .messages
            .chunks(2)
            .all(|pair| pair[1].status == ReplyStatus::Done && pair[1].id == format!("{}.reply", pair[0].id)));
    }
    assert_eq!(stack.stub.requests().len(), questions, "no reply was written twice");
    let counts = stack.lambda.counts();
    // How many invocations the traffic took depends on the machine's speed: `bench lambda`
    // measures it (PERFORMANCE.md); here it is only shown.
    println!(
        "{questions} questions over {:.0} s; worker invocations: {} ({:.1} per 100 questions), execution environments: {}, timed out: {}",
        started.elapsed().as_secs_f64(),
        counts.invoked,
        100.0 * counts.invoked as f64 / questions as f64,
        counts.environments,
        counts.timed_out
    );
    assert_eq!(counts.timed_out, 0, "no invocation reached its deadline with a reply in flight");
    assert_eq!(counts.completed, counts.invoked, "every invocation answered");
}

on_each_store!(a_running_invocation_with_a_free_slot_spares_the_next_question_a_wake_up);
