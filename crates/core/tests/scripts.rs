//! The store's Lua scripts on a real redis-server, through the public [`Store`] API: one test per
//! script that refuses, asserting each refusal it can answer; the workers' lease rule; a search
//! that reads a full session a page at a time.
//!
//! Each test starts its own redis-server (on a free loopback port, nothing persisted), killed when
//! the test ends.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chat_core::store::keys::{worker_leases, SessionKeys};
use chat_core::store::session::UnknownCursor;
use chat_core::store::Setting;
use chat_core::{Bound, Config, Refusal, Store};
use chat_wire::{ChatMessage, ConnectionId, ConversationId, MessageId, ReplyStatus, TitleSource, Token};

/// A redis-server child process, killed when dropped.
struct RedisServer {
    process: Child,
    port: u16,
}

impl RedisServer {
    /// A plain client of the server, for what the store does not say (its slow log).
    async fn client(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", self.port)).unwrap();
        client.get_multiplexed_async_connection().await.unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A store on a fresh redis-server, configured by `vars` over the defaults.
async fn store(vars: &[(&str, &str)]) -> (RedisServer, Store) {
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        let server = RedisServer { process: child, port };
        let mut env: HashMap<String, String> =
            [("APP_ENV", "development".to_string()), ("REDIS_URL", format!("redis://127.0.0.1:{port}"))]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
        env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let store = Store::connect(&Config::from_vars(&env).expect("a valid configuration")).unwrap();
        for _ in 0..100 {
            if store.ping().await.is_ok() {
                return (server, store);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The port was taken between the probe and the start: another one.
    }
    panic!("redis-server did not answer");
}

async fn session(store: &Store) -> Token {
    Token::parse(&store.create_session("tester").await.unwrap().token).unwrap()
}

fn unknown_session() -> Token {
    Token::parse(&"a".repeat(Token::LEN)).unwrap()
}

fn main() -> ConversationId {
    ConversationId::main()
}

fn id(text: &str) -> MessageId {
    MessageId::parse(text).unwrap()
}

fn question(message_id: &str) -> ChatMessage {
    ChatMessage::question(message_id, format!("question {message_id}"), chat_core::store::now_rfc3339())
}

fn placeholder(message_id: &str) -> ChatMessage {
    ChatMessage::reply_placeholder(message_id, None, chat_core::store::now_rfc3339())
}

/// Asks `message_id` in `conversation` and stores its reply: the conversation is unlocked again.
async fn answered(store: &Store, token: &Token, conversation: &ConversationId, message_id: &str) {
    let asked = question(message_id);
    exchange(store, token, conversation, &asked, "an answer").await;
}

/// Stores a question and its finished reply, the way the worker does.
async fn exchange(store: &Store, token: &Token, conversation: &ConversationId, asked: &ChatMessage, reply: &str) {
    store.accept_user_message(token, conversation, asked).await.unwrap().unwrap();
    let begun = store.begin_reply(token, conversation, &placeholder(&asked.id), false).await.unwrap().unwrap();
    let stored = placeholder(&asked.id).with_text(reply, ReplyStatus::Done);
    store.store_reply(token, conversation, &stored, &id(&asked.id), begun.next_seq).await.unwrap().unwrap();
}

#[tokio::test]
async fn accept_refuses_an_expired_session_a_deleted_conversation_a_busy_one_and_a_resend() {
    let (_redis, store) = store(&[("MESSAGES_PER_SESSION_PER_WINDOW", "2")]).await;
    let token = session(&store).await;
    let accept = |token: Token, conversation: ConversationId, message_id: &'static str| {
        let store = store.clone();
        async move { store.accept_user_message(&token, &conversation, &question(message_id)).await.unwrap() }
    };
    assert_eq!(accept(unknown_session(), main(), "m1").await, Err(Refusal::SessionExpired));
    let never_created = ConversationId::parse("c404").unwrap();
    assert_eq!(accept(token.clone(), never_created, "m1").await, Err(Refusal::ConversationDeleted));
    assert_eq!(accept(token.clone(), main(), "m1").await, Ok(()));
    // Counted (2 of 2), then refused: m1's reply holds the lock.
    assert_eq!(accept(token.clone(), main(), "m2").await, Err(Refusal::ReplyInProgress));
    // A resend of a question already queued is only acknowledged.
    store.mark_queued(&token, &main(), &id("m1")).await.unwrap();
    assert_eq!(accept(token.clone(), main(), "m1").await, Err(Refusal::Duplicate));
    // The session's rate is counted across its conversations.
    let other = ConversationId::parse("c2").unwrap();
    store.create_conversation(&token, &other).await.unwrap().unwrap();
    let Err(Refusal::RateLimited(wait)) = accept(token.clone(), other, "m3").await else {
        panic!("the third question in the window is rate limited")
    };
    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(60), "{wait:?}");
}

#[tokio::test]
async fn accept_refuses_an_edit_of_no_question_and_one_past_the_versions_allowed() {
    let (_redis, store) = store(&[("MAX_VERSIONS_PER_MESSAGE", "2")]).await;
    let token = session(&store).await;
    store.accept_user_message(&token, &main(), &question("q1")).await.unwrap().unwrap();
    store.release_reply_lock(&token, &main(), &id("q1")).await.unwrap();
    let edit = |message_id: &'static str, edits: &'static str| {
        let (store, token) = (store.clone(), token.clone());
        async move { store.accept_edit(&token, &main(), &question(message_id), &id(edits)).await.unwrap() }
    };
    assert_eq!(edit("q9", "nope").await, Err(Refusal::UnknownMessage));
    assert_eq!(edit("q1v2", "q1").await, Ok(()));
    store.release_reply_lock(&token, &main(), &id("q1v2")).await.unwrap();
    assert_eq!(edit("q1v3", "q1v2").await, Err(Refusal::TooManyVersions));
}

#[tokio::test]
async fn begin_reply_refuses_an_expired_session_a_deleted_question_a_second_request_and_a_stored_reply() {
    let (_redis, store) = store(&[]).await;
    let token = session(&store).await;
    let begin = |token: Token, message_id: &'static str, redelivered: bool| {
        let store = store.clone();
        async move { store.begin_reply(&token, &main(), &placeholder(message_id), redelivered).await.unwrap() }
    };
    assert_eq!(begin(unknown_session(), "q1", false).await, Err(Refusal::SessionExpired));
    assert_eq!(begin(token.clone(), "q404", false).await, Err(Refusal::ConversationDeleted));
    store.accept_user_message(&token, &main(), &question("q1")).await.unwrap().unwrap();
    let begun = begin(token.clone(), "q1", false).await.unwrap();
    assert!(!begun.restarted);
    assert_eq!(begin(token.clone(), "q1", false).await, Err(Refusal::BeingAnswered));
    // A redelivered entry takes the reply over.
    let taken = begin(token.clone(), "q1", true).await.unwrap();
    assert!(taken.restarted);
    let reply = placeholder("q1").with_text("done", ReplyStatus::Done);
    store.store_reply(&token, &main(), &reply, &id("q1"), taken.next_seq).await.unwrap().unwrap();
    assert_eq!(begin(token.clone(), "q1", true).await, Err(Refusal::AlreadyStored));
}

#[tokio::test]
async fn append_delta_refuses_a_reply_taken_over_and_one_whose_placeholder_is_gone() {
    let (_redis, store) = store(&[]).await;
    let token = session(&store).await;
    store.accept_user_message(&token, &main(), &question("q1")).await.unwrap().unwrap();
    let first = store.begin_reply(&token, &main(), &placeholder("q1"), false).await.unwrap().unwrap();
    let logged = store.append_delta(&token, &main(), &id("q1"), first.next_seq, "Hel").await.unwrap();
    assert!(logged.is_ok(), "{logged:?}");
    // Another worker takes the reply over: the first one's next delta is refused.
    let second = store.begin_reply(&token, &main(), &placeholder("q1"), true).await.unwrap().unwrap();
    assert!(second.next_seq > first.next_seq + 1);
    let late = store.append_delta(&token, &main(), &id("q1"), first.next_seq + 1, "lo").await.unwrap();
    assert_eq!(late, Err(Refusal::TakenOver));
    let never_begun = store.append_delta(&token, &main(), &id("q2"), 0, "x").await.unwrap();
    assert_eq!(never_begun, Err(Refusal::ConversationDeleted));
}

#[tokio::test]
async fn store_reply_refuses_a_deleted_question_a_reply_taken_over_and_a_second_store() {
    let (_redis, store) = store(&[]).await;
    let token = session(&store).await;
    let store_done = |message_id: &'static str, next_seq: u64| {
        let (store, token) = (store.clone(), token.clone());
        async move {
            let reply = placeholder(message_id).with_text("done", ReplyStatus::Done);
            store.store_reply(&token, &main(), &reply, &id(message_id), next_seq).await.unwrap()
        }
    };
    assert_eq!(store_done("q404", 0).await, Err(Refusal::ConversationDeleted));
    store.accept_user_message(&token, &main(), &question("q1")).await.unwrap().unwrap();
    let begun = store.begin_reply(&token, &main(), &placeholder("q1"), false).await.unwrap().unwrap();
    assert_eq!(store_done("q1", begun.next_seq + 5).await, Err(Refusal::TakenOver));
    assert!(store_done("q1", begun.next_seq).await.is_ok());
    assert_eq!(store_done("q1", begun.next_seq).await, Err(Refusal::AlreadyStored));
}

#[tokio::test]
async fn regenerate_refuses_every_way_it_can() {
    let (_redis, store) = store(&[("MAX_VERSIONS_PER_MESSAGE", "2")]).await;
    let token = session(&store).await;
    let regenerate = |token: Token, message_id: &'static str| {
        let store = store.clone();
        async move { store.regenerate(&token, &main(), &id(message_id)).await.unwrap() }
    };
    assert_eq!(regenerate(unknown_session(), "q1").await, Err(Refusal::SessionExpired));
    assert_eq!(regenerate(token.clone(), "q404").await, Err(Refusal::UnknownMessage));
    answered(&store, &token, &main(), "q1").await;
    answered(&store, &token, &main(), "q2").await;
    assert_eq!(regenerate(token.clone(), "q1").await, Err(Refusal::NotLastQuestion));
    assert_eq!(regenerate(token.clone(), "q2").await, Ok(()));
    // Locked for the new reply.
    assert_eq!(regenerate(token.clone(), "q2").await, Err(Refusal::ReplyInProgress));
    let begun = store.begin_reply(&token, &main(), &placeholder("q2"), false).await.unwrap().unwrap();
    let reply = placeholder("q2").with_text("again", ReplyStatus::Done);
    store.store_reply(&token, &main(), &reply, &id("q2"), begun.next_seq).await.unwrap().unwrap();
    // Two versions of q2's reply now: a third is one too many.
    assert_eq!(regenerate(token.clone(), "q2").await, Err(Refusal::TooManyVersions));
}

#[tokio::test]
async fn switch_version_refuses_while_a_reply_is_written_and_an_unknown_version() {
    let (_redis, store) = store(&[]).await;
    let token = session(&store).await;
    store.accept_user_message(&token, &main(), &question("q1")).await.unwrap().unwrap();
    assert_eq!(store.switch_version(&token, &main(), "q1").await.unwrap(), Err(Refusal::ReplyInProgress));
    store.release_reply_lock(&token, &main(), &id("q1")).await.unwrap();
    assert_eq!(store.switch_version(&token, &main(), "nope").await.unwrap(), Err(Refusal::UnknownMessage));
    // One on the path shown is shown already.
    assert_eq!(store.switch_version(&token, &main(), "q1").await.unwrap(), Ok(()));
}

#[tokio::test]
async fn create_conversation_refuses_an_expired_session_and_one_too_many() {
    let (_redis, store) = store(&[("MAX_CONVERSATIONS_PER_SESSION", "2")]).await;
    let token = session(&store).await;
    let c = |name: &str| ConversationId::parse(name).unwrap();
    let expired = store.create_conversation(&unknown_session(), &c("c2")).await.unwrap();
    assert_eq!(expired.unwrap_err(), Refusal::SessionExpired);
    assert!(store.create_conversation(&token, &c("c2")).await.unwrap().is_ok());
    // A retry answers the conversation as it stands.
    assert!(store.create_conversation(&token, &c("c2")).await.unwrap().is_ok());
    let full = store.create_conversation(&token, &c("c3")).await.unwrap();
    assert_eq!(full.unwrap_err(), Refusal::TooManyConversations);
}

#[tokio::test]
async fn title_conversation_refuses_an_expired_session_and_a_deleted_conversation() {
    let (_redis, store) = store(&[]).await;
    let token = session(&store).await;
    let gone = ConversationId::parse("c404").unwrap();
    let expired = store.title_conversation(&unknown_session(), &main(), "t", TitleSource::Person).await.unwrap();
    assert_eq!(expired.unwrap_err(), Refusal::SessionExpired);
    let deleted = store.title_conversation(&token, &gone, "t", TitleSource::Person).await.unwrap();
    assert_eq!(deleted.unwrap_err(), Refusal::ConversationDeleted);
    // The model's title gives way to the person's: kept, not refused.
    store.title_conversation(&token, &main(), "mine", TitleSource::Person).await.unwrap().unwrap();
    let kept = store.title_conversation(&token, &main(), "model's", TitleSource::Model).await.unwrap().unwrap();
    assert_eq!(kept.title, "mine");
}

#[tokio::test]
async fn configure_conversation_refuses_an_expired_session_and_a_deleted_conversation() {
    let (_redis, store) = store(&[]).await;
    let token = session(&store).await;
    let gone = ConversationId::parse("c404").unwrap();
    let expired = store.configure_conversation(&unknown_session(), &main(), Setting::Model, "m").await.unwrap();
    assert_eq!(expired.unwrap_err(), Refusal::SessionExpired);
    let deleted = store.configure_conversation(&token, &gone, Setting::Instructions, "be brief").await.unwrap();
    assert_eq!(deleted.unwrap_err(), Refusal::ConversationDeleted);
    let set = store.configure_conversation(&token, &main(), Setting::Model, "m").await.unwrap().unwrap();
    assert_eq!(set.model.as_deref(), Some("m"));
}

#[tokio::test]
async fn delete_conversation_refuses_an_expired_session_and_a_deleted_conversation() {
    let (_redis, store) = store(&[]).await;
    let token = session(&store).await;
    let other = ConversationId::parse("c2").unwrap();
    assert_eq!(store.delete_conversation(&unknown_session(), &main()).await.unwrap(), Err(Refusal::SessionExpired));
    store.create_conversation(&token, &other).await.unwrap().unwrap();
    assert_eq!(store.delete_conversation(&token, &other).await.unwrap(), Ok(()));
    assert_eq!(store.delete_conversation(&token, &other).await.unwrap(), Err(Refusal::ConversationDeleted));
}

#[tokio::test]
async fn bind_refuses_an_expired_session_and_one_connection_too_many() {
    let (_redis, store) = store(&[("MAX_CONNECTIONS_PER_SESSION", "1")]).await;
    let token = session(&store).await;
    let (first, second) = (ConnectionId::parse("AAAA").unwrap(), ConnectionId::parse("BBBB").unwrap());
    assert_eq!(store.bind_connection(&first, &unknown_session()).await.unwrap(), Bound::Expired);
    assert_eq!(store.bind_connection(&first, &token).await.unwrap(), Bound::Bound);
    // Binding the same one again is no new connection.
    assert_eq!(store.bind_connection(&first, &token).await.unwrap(), Bound::Bound);
    assert_eq!(store.bind_connection(&second, &token).await.unwrap(), Bound::Full);
}

#[tokio::test]
async fn frame_refuses_an_unknown_connection_and_counts_frames_over_the_limit() {
    let (_redis, store) = store(&[("FRAMES_PER_CONNECTION_PER_WINDOW", "1")]).await;
    let token = session(&store).await;
    let connection = ConnectionId::parse("AAAA").unwrap();
    assert_eq!(store.connection_frame(&connection).await.unwrap(), None);
    store.bind_connection(&connection, &token).await.unwrap();
    let within = store.connection_frame(&connection).await.unwrap().unwrap();
    assert_eq!((within.token, within.over_limit, within.frames_over), (token.clone(), None, 0));
    let over = store.connection_frame(&connection).await.unwrap().unwrap();
    assert!(over.over_limit.is_some_and(|wait| wait > Duration::ZERO), "{over:?}");
    assert_eq!(over.frames_over, 1);
}

#[tokio::test]
async fn count_refuses_past_the_limit_until_the_window_ends() {
    let (_redis, store) = store(&[]).await;
    let window = Duration::from_secs(60);
    assert_eq!(store.count_session_creation("192.0.2.1", 1, window).await.unwrap(), None);
    let wait = store.count_session_creation("192.0.2.1", 1, window).await.unwrap();
    assert!(wait.is_some_and(|wait| wait > Duration::ZERO && wait <= window), "{wait:?}");
    // Another address counts on its own.
    assert_eq!(store.count_session_creation("192.0.2.2", 1, window).await.unwrap(), None);
}

#[tokio::test]
async fn count_session_refuses_an_unknown_session_and_counts_past_the_limit() {
    let (_redis, store) = store(&[]).await;
    let token = session(&store).await;
    assert_eq!(store.count_history_read(&unknown_session(), 1).await.unwrap(), Err(Refusal::SessionExpired));
    assert_eq!(store.count_history_read(&token, 1).await.unwrap(), Ok(None));
    let over = store.count_history_read(&token, 1).await.unwrap();
    assert!(matches!(over, Ok(Some(wait)) if wait > Duration::ZERO), "{over:?}");
    // No limit: never over it.
    assert_eq!(store.count_search(&token, 0).await.unwrap(), Ok(None));
}

#[tokio::test]
async fn read_refuses_an_unknown_session_and_an_unknown_cursor() {
    let (_redis, store) = store(&[]).await;
    let token = session(&store).await;
    answered(&store, &token, &main(), "q1").await;
    assert!(store.history(&unknown_session(), &main()).await.unwrap().is_none());
    let page = store.history_page(&token, &main(), Some("nope"), None, 0).await.unwrap().unwrap();
    assert_eq!(page.unwrap_err(), UnknownCursor);
    let page = store.history_page(&token, &main(), Some("q1.reply"), None, 0).await.unwrap().unwrap();
    assert_eq!(page.unwrap().messages.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["q1"]);
}

#[tokio::test]
async fn snapshot_answers_nothing_for_no_such_reply() {
    let (_redis, store) = store(&[]).await;
    let token = session(&store).await;
    assert!(store.reply_snapshot(&token, &main(), &id("q1").reply_id()).await.unwrap().is_none());
    answered(&store, &token, &main(), "q1").await;
    let stored = store.reply_snapshot(&token, &main(), &id("q1").reply_id()).await.unwrap().unwrap();
    assert_eq!(stored.msg, "an answer");
}

#[tokio::test]
async fn the_lock_scripts_refuse_a_lock_that_is_not_their_replys() {
    let (_redis, store) = store(&[]).await;
    let token = session(&store).await;
    let lock = SessionKeys::new(&token).conversation(&main()).lock;
    let holder = || {
        let store = store.clone();
        let lock = lock.clone();
        async move {
            let mut conn = store.connection().await.unwrap();
            redis::cmd("GET").arg(&lock).query_async::<Option<String>>(&mut conn).await.unwrap()
        }
    };
    store.accept_user_message(&token, &main(), &question("q1")).await.unwrap().unwrap();
    // release_lock.lua: another reply's release leaves the lock.
    store.release_reply_lock(&token, &main(), &id("q2")).await.unwrap();
    assert_eq!(holder().await.as_deref(), Some("q1"));
    store.release_reply_lock(&token, &main(), &id("q1")).await.unwrap();
    assert_eq!(holder().await, None);
    // renew_lock.lua: renewing a lock no longer held takes nothing.
    store.renew_reply_lock(&token, &main(), &id("q1")).await.unwrap();
    assert_eq!(holder().await, None);
}

#[tokio::test]
async fn a_worker_lease_yields_to_one_before_it_with_a_free_slot() {
    let (_redis, store) = store(&[("REQUEST_STREAM", "chat:requests")]).await;
    let lease = Duration::from_secs(30);
    let advertised = |worker: &'static str| {
        let store = store.clone();
        async move {
            let (_, free) = worker_leases("chat:requests");
            let mut conn = store.connection().await.unwrap();
            redis::cmd("HGET").arg(free).arg(worker).query_async::<Option<u64>>(&mut conn).await.unwrap()
        }
    };
    assert!(!store.renew_worker_lease("a", lease, 3).await.unwrap(), "nothing before a");
    assert!(store.renew_worker_lease("b", lease, 2).await.unwrap(), "a is before b and has a free slot");
    assert_eq!(advertised("b").await, Some(0), "a holder that yields advertises no slot");
    assert!(!store.renew_worker_lease("a", lease, 0).await.unwrap(), "b is after a");
    assert!(store.wake_needed().await.unwrap(), "a has no slot, b advertises none");
    store.release_worker_lease("a").await.unwrap();
    assert!(!store.renew_worker_lease("b", lease, 2).await.unwrap(), "nothing before b now");
    assert!(!store.wake_needed().await.unwrap(), "b has room");
    store.release_worker_lease("b").await.unwrap();
    assert!(store.wake_needed().await.unwrap(), "no worker runs");
}

#[tokio::test]
async fn a_search_reads_a_full_session_a_page_at_a_time_newest_first_within_its_time() {
    let (server, full) = store(&[
        ("MAX_HISTORY_BYTES", "0"),
        ("MAX_CONVERSATION_BYTES", "0"),
        ("MAX_HISTORY_MESSAGES", "100000"),
        ("MESSAGES_PER_SESSION_PER_WINDOW", "0"),
        ("MAX_SEARCH_RESULTS", "5"),
        // Time enough to read everything, so what is found does not depend on the machine.
        ("SEARCH_TIME_BUDGET_MS", "600000"),
    ])
    .await;
    let token = session(&full).await;
    // 1,500 questions and their replies of 2 KB each: 6 MB in one conversation, which the one
    // script of old read in a single call of tens of milliseconds.
    let filler = "lorem ipsum dolor sit amet ".repeat(80);
    for n in 0..1500 {
        let question =
            if n % 500 == 0 { format!("Über needle {n} {filler}") } else { format!("question {n} {filler}") };
        let asked = ChatMessage::question(format!("m{n:04}"), question, chat_core::store::now_rfc3339());
        exchange(&full, &token, &main(), &asked, &format!("reply {n} {filler}")).await;
    }
    let mut redis = server.client().await;
    // Every call is logged (its time is the bench's business, not a test's): what is checked is
    // how much each search call was asked to read.
    for (setting, value) in [("slowlog-log-slower-than", 0), ("slowlog-max-len", 100_000)] {
        let _: () = redis::cmd("CONFIG").arg("SET").arg(setting).arg(value).query_async(&mut redis).await.unwrap();
    }
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query_async(&mut redis).await.unwrap();

    let nothing = full.search(&token, "nowhere to be found").await.unwrap().unwrap();
    assert!(nothing.hits.is_empty() && !nothing.truncated, "{nothing:?}");
    let every = full.search(&token, "LOREM").await.unwrap().unwrap();
    assert!(every.hits.len() == 5 && every.truncated, "five shown, more found: {every:?}");
    assert_eq!(every.hits[0].message_id, None, "the title first");
    let ids: Vec<_> = every.hits.iter().filter_map(|hit| hit.message_id.clone()).collect();
    assert_eq!(ids, ["m1499.reply", "m1499", "m1498.reply", "m1498"], "the newest messages first");
    let long = full.search(&token, &format!("question 1499 {}", &filler[..180])).await.unwrap().unwrap();
    assert_eq!(long.hits.len(), 1, "{long:?}");
    // A query of letters Redis's Lua cannot lower is matched here, page by page: every message
    // leaves Redis, a page per call.
    let accented = full.search(&token, "über NEEDLE").await.unwrap().unwrap();
    let found: Vec<_> = accented.hits.iter().map(|hit| hit.message_id.clone().unwrap_or_default()).collect();
    assert_eq!(found, ["", "m1000", "m0500", "m0000"], "the title, then the messages newest first, in any case");
    let no_ascii = full.search(&token, "é").await.unwrap().unwrap();
    assert!(no_ascii.hits.is_empty() && !no_ascii.truncated, "{no_ascii:?}");

    // Each call of the search script (keys: the order, the messages) read one page at most, so a
    // full session took many calls: a search that matches nothing read all 3,000 messages in at
    // least 3,000 / 32 calls, never in one.
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG").arg("GET").arg(-1).query_async(&mut redis).await.unwrap();
    let mut pages = Vec::new();
    for entry in &entries {
        let redis::Value::Array(fields) = entry else { continue };
        let Some(redis::Value::Array(args)) = fields.get(3) else { continue };
        let args: Vec<String> = args
            .iter()
            .map(|arg| match arg {
                redis::Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                other => format!("{other:?}"),
            })
            .collect();
        if args.first().is_some_and(|c| c.eq_ignore_ascii_case("evalsha"))
            && args.get(3).is_some_and(|k| k.ends_with(":order"))
        {
            pages.push(args.last().unwrap().parse::<u64>().unwrap());
        }
    }
    assert!(pages.iter().all(|&page| page <= 32), "every call reads SEARCH_PAGE_MESSAGES at most: {pages:?}");
    assert!(pages.len() >= 3000 / 32, "a full session is read in many calls: {} calls", pages.len());

    // Out of time, a search answers what it found so far, and says it stopped early.
    let (_server, hurried) = store(&[("SEARCH_TIME_BUDGET_MS", "0")]).await;
    let token = session(&hurried).await;
    answered(&hurried, &token, &main(), "m1").await;
    let stopped = hurried.search(&token, "answer").await.unwrap().unwrap();
    assert!(stopped.hits.is_empty() && stopped.truncated, "{stopped:?}");
}

#[tokio::test]
async fn a_session_stays_within_its_bytes_trimming_its_least_recent_conversations_first() {
    let (_server, store) = store(&[
        ("MAX_HISTORY_BYTES", "60000"),
        ("MAX_CONVERSATION_BYTES", "50000"),
        ("MESSAGES_PER_SESSION_PER_WINDOW", "0"),
    ])
    .await;
    let token = session(&store).await;
    let text = "x".repeat(2000);
    let stored_bytes = |conversation: ConversationId| {
        let (store, token) = (&store, &token);
        async move {
            let history = store.history(token, &conversation).await.unwrap().unwrap();
            history.messages.iter().map(|m| serde_json::to_string(m).unwrap().len()).sum::<usize>()
        }
    };
    // Three conversations of ten questions and replies each, about 42 KB apiece, asked in turn:
    // `main` is the least recently active, then c2, then c3.
    let (c2, c3) = (ConversationId::parse("c2").unwrap(), ConversationId::parse("c3").unwrap());
    for conversation in [&c2, &c3] {
        store.create_conversation(&token, conversation).await.unwrap().unwrap();
    }
    for conversation in [main(), c2.clone(), c3.clone()] {
        for n in 0..10 {
            let id = format!("{conversation}q{n}");
            store
                .accept_user_message(&token, &conversation, &ChatMessage::question(&id, text.clone(), "t"))
                .await
                .unwrap()
                .unwrap();
            let begun = store.begin_reply(&token, &conversation, &placeholder(&id), false).await.unwrap().unwrap();
            let reply = placeholder(&id).with_text(text.clone(), ReplyStatus::Done);
            store.store_reply(&token, &conversation, &reply, &self::id(&id), begun.next_seq).await.unwrap().unwrap();
        }
    }
    let (main_bytes, c2_bytes, c3_bytes) =
        (stored_bytes(main()).await, stored_bytes(c2.clone()).await, stored_bytes(c3.clone()).await);
    // Trimmed at each question: the last reply may carry the session past its bytes until the next.
    assert!(main_bytes + c2_bytes + c3_bytes <= 60000 + 2200, "{main_bytes} + {c2_bytes} + {c3_bytes}");
    let main_history = store.history(&token, &main()).await.unwrap().unwrap();
    assert_eq!(
        main_history.messages.len(),
        2,
        "the least recent conversation gave its oldest messages but its last two"
    );
    assert_eq!(main_history.messages[0].id, "mainq9");
    let c3_history = store.history(&token, &c3).await.unwrap().unwrap();
    assert_eq!(c3_history.messages.len(), 20, "the conversation asked in keeps everything it may");
    assert!(c2_bytes < 40000, "then the next least recent: {c2_bytes}");

    // A deleted conversation's bytes leave the session's count: the next question trims nothing.
    store.delete_conversation(&token, &c2).await.unwrap().unwrap();
    store.accept_user_message(&token, &c3, &question("c3q10")).await.unwrap().unwrap();
    assert_eq!(store.history(&token, &main()).await.unwrap().unwrap().messages.len(), 2);
    assert_eq!(store.history(&token, &c3).await.unwrap().unwrap().messages.len(), 21);
}

/// `INFO commandstats`: how many times Redis ran `command` (lower case).
async fn calls_of(redis: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(redis).await.unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
        .unwrap_or(0)
}

#[tokio::test]
async fn keeping_conversations_alive_costs_a_question_the_same_with_one_or_two_hundred() {
    let (server, store) = store(&[]).await;
    let mut redis = server.client().await;
    let mut expiries = Vec::new();
    for count in [1, 200] {
        let token = session(&store).await;
        for n in 1..count {
            store
                .create_conversation(&token, &ConversationId::parse(&format!("c{n}")).unwrap())
                .await
                .unwrap()
                .unwrap();
        }
        store.extend_conversations(&token).await.unwrap();
        let first = calls_of(&mut redis, "pexpire").await;
        for _ in 0..10 {
            store.extend_conversations(&token).await.unwrap();
        }
        expiries.push(calls_of(&mut redis, "pexpire").await - first);
        // Extended past the session's lifetime, never short of it.
        let ttl: i64 =
            redis::AsyncCommands::pttl(&mut redis, SessionKeys::new(&token).conversation(&main()).meta).await.unwrap();
        assert!(ttl > 3_600_000, "{ttl} ms");
    }
    println!(
        "PEXPIREs of ten questions after the first: {} with 1 conversation, {} with 200",
        expiries[0], expiries[1]
    );
    assert_eq!(expiries, [0, 0], "after the first, a question extends nothing until a tenth of the lifetime passed");
}
