//! All that calls the product's store directly (`chat_core::Store`, and the Redis keys it
//! keeps), from this process: the timing of each Redis step of a question's path, histories
//! written past the message rate, and the Management API floor (which finds a live connection in
//! the store). When the store's API changes, this is the file to adapt.

use std::time::Instant;

use chat_core::{Config, Store};
use chat_testkit::{Error, Vars};
use chat_wire::{ChatMessage, ConnectionId, ConversationId, MessageId, ReplyStatus, ServerFrame, Token};

use crate::measure::ms;
use crate::stack::Stack;

/// The product's store on the stack's Redis, its settings adjusted by `adjust`.
fn store(stack: &Stack, adjust: impl FnOnce(&mut Config)) -> Result<Store, Error> {
    let mut config = Vars::default().set("REDIS_URL", stack.redis.url()).config()?;
    adjust(&mut config);
    Ok(Store::connect(&config)?)
}

/// A question as the message function stores it.
fn question(id: &str, text: &str) -> ChatMessage {
    ChatMessage::question(id, text, chat_core::store::now_rfc3339())
}

/// A reply to `question` as the worker stores it.
fn reply_to(question: &ChatMessage, text: &str, status: ReplyStatus) -> ChatMessage {
    ChatMessage::reply_placeholder(&question.id, Some("stub".into()), &question.timestamp).with_text(text, status)
}

/// Each Redis step of a question's path to its first delta, timed from this process through the
/// product's own `Store` (one shared, multiplexed connection, as in the functions and the worker).
pub async fn store_steps(stack: &Stack) -> Result<Vec<(&'static str, Vec<f64>)>, Error> {
    let store = store(stack, |config| {
        config.rate_limits.messages_per_session = 0; // 300 questions in a row
        config.request_stream = "bench:steps".into(); // the stack's worker must not answer these
    })?;
    let session = store.create_session("steps").await?;
    let token = &Token::parse(&session.token)?;
    let connection = ConnectionId::parse("steps-connection=")?;
    store.bind_connection(&connection, token).await?;
    let names =
        ["count frame", "accept message", "enqueue", "read context", "begin reply", "append delta", "store reply"];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let main = ConversationId::main();
    for i in 0..300 {
        let id = MessageId::parse(&format!("s{i}"))?;
        let question = question(id.as_str(), "hello");
        let mut reply = reply_to(&question, "hello", ReplyStatus::Streaming);
        let request = chat_core::ReplyRequest {
            token: token.clone(),
            conversation: main.clone(),
            message_id: id.clone(),
            endpoint: "http://unused".into(),
        };
        let mut step = 0;
        let mut timed = |samples: &mut Vec<Vec<f64>>, started: Instant| {
            samples[step].push(ms(started.elapsed()));
            step += 1;
        };
        let t = Instant::now();
        store.connection_frame(&connection).await?;
        timed(&mut samples, t);
        let t = Instant::now();
        let accepted = store.accept_user_message(token, &main, &question).await?;
        timed(&mut samples, t);
        if accepted.is_err() {
            return Err(format!("step timing: the question was not stored ({accepted:?})").into());
        }
        let t = Instant::now();
        store.enqueue(&request).await?;
        timed(&mut samples, t);
        let t = Instant::now();
        store.recent(token, &main, 10).await?;
        timed(&mut samples, t);
        let t = Instant::now();
        store.begin_reply(token, &main, &reply, false).await?.map_err(|refusal| format!("not begun: {refusal:?}"))?;
        timed(&mut samples, t);
        let t = Instant::now();
        store
            .append_delta(token, &main, &id, 0, "hello ")
            .await?
            .map_err(|refusal| format!("not logged: {refusal:?}"))?;
        timed(&mut samples, t);
        reply.status = ReplyStatus::Done;
        let t = Instant::now();
        store.store_reply(token, &main, &reply, &id, 1).await?.map_err(|refusal| format!("not stored: {refusal:?}"))?;
        timed(&mut samples, t);
    }
    Ok(names.into_iter().zip(samples).collect())
}

/// `GET /chat_history` of a session holding `n` messages (written directly, past the message
/// rate): 200 reads' latencies, and the body's size.
pub async fn history_latency(stack: &Stack, n: usize) -> Result<(Vec<f64>, usize), Error> {
    let store = store(stack, |config| {
        config.max_history_messages = n.max(1000);
        config.rate_limits.messages_per_session = 0; // written directly, past the message rate
    })?;
    let session = stack.session(&format!("history-{n}")).await?;
    let token = Token::parse(&session.token)?;
    let main = ConversationId::main();
    for i in 0..n / 2 {
        let id = MessageId::parse(&format!("q{i}"))?;
        let question = question(id.as_str(), &format!("Question number {i}: how does this part work, and why?"));
        if store.accept_user_message(&token, &main, &question).await?.is_err() {
            return Err("could not store a history message".into());
        }
        let answer = format!("Answer **{i}**: it works like this.\n\n- first point\n- second point with `code`\n\n```rust\nfn answer() -> u32 {{ {i} }}\n```");
        let reply = reply_to(&question, &answer, ReplyStatus::Done);
        store
            .store_reply(&token, &main, &reply, &id, 0)
            .await?
            .map_err(|refusal| format!("not stored: {refusal:?}"))?;
    }
    let mut samples = Vec::with_capacity(200);
    let mut bytes = 0;
    for _ in 0..200 {
        let started = Instant::now();
        let body =
            chat_testkit::api::history_request(&stack.http, &stack.base, &session.token).send().await?.bytes().await?;
        samples.push(ms(started.elapsed()));
        bytes = body.len();
    }
    Ok((samples, bytes))
}

/// What one session of `conversations` conversations of `messages` messages each costs to read:
/// 200 `GET /conversations`, 200 `GET /chat_history` of one of them and 50 `GET /search` over
/// all (for a word one message holds: every message is scanned), each one's latencies; and the
/// sizes read.
pub struct ConversationReads {
    pub list: Vec<f64>,
    pub history: Vec<f64>,
    pub search: Vec<f64>,
    pub list_bytes: usize,
    pub history_bytes: usize,
}

/// Writes the conversations directly (past the message rate), then reads them as the web app does.
pub async fn conversation_reads(
    stack: &Stack,
    conversations: usize,
    messages: usize,
) -> Result<ConversationReads, Error> {
    let store = store(stack, |config| {
        config.max_history_messages = messages.max(1000);
        config.max_conversations_per_session = conversations + 1;
        config.rate_limits.messages_per_session = 0;
    })?;
    let session = stack.session(&format!("conversations-{conversations}x{messages}")).await?;
    let token = Token::parse(&session.token)?;
    for c in 0..conversations {
        let conversation = ConversationId::parse(&format!("c{c}"))?;
        store.create_conversation(&token, &conversation).await?.map_err(|refusal| format!("{refusal:?}"))?;
        for i in 0..messages / 2 {
            let id = MessageId::parse(&format!("q{i}"))?;
            let rare = if c + 1 == conversations && i == 0 { " zephyr" } else { "" };
            let text = format!("Question {i} of conversation {c}: how does this part work?{rare}");
            let question = question(id.as_str(), &text);
            if store.accept_user_message(&token, &conversation, &question).await?.is_err() {
                return Err("could not store a conversation's message".into());
            }
            let answer = format!(
                "Answer **{i}**: it works like this.

- first point
- second point with `code`"
            );
            let reply = reply_to(&question, &answer, ReplyStatus::Done);
            store
                .store_reply(&token, &conversation, &reply, &id, 0)
                .await?
                .map_err(|refusal| format!("not stored: {refusal:?}"))?;
        }
    }
    let read = |path: &'static str, query: Vec<(&'static str, String)>| {
        let request = stack.http.get(format!("{}{path}", stack.base)).query(&[("token", &session.token)]).query(&query);
        async move {
            let started = Instant::now();
            let body = request.send().await?.error_for_status()?.bytes().await?;
            Ok::<_, Error>((ms(started.elapsed()), body.len()))
        }
    };
    let (mut list, mut history, mut search) = (Vec::new(), Vec::new(), Vec::new());
    let (mut list_bytes, mut history_bytes) = (0, 0);
    for _ in 0..200 {
        let (took, bytes) = read("/conversations", vec![]).await?;
        list.push(took);
        list_bytes = bytes;
        let one = format!("c{}", conversations / 2);
        let (took, bytes) = read("/chat_history", vec![("conversation", one)]).await?;
        history.push(took);
        history_bytes = bytes;
    }
    for _ in 0..50 {
        search.push(read("/search", vec![("q", "zephyr".to_string())]).await?.0);
    }
    Ok(ConversationReads { list, history, search, list_bytes, history_bytes })
}

/// One frame posted to one of the session's connections (as the store lists them) through the
/// worker's own Management API client, as the worker does it for every delta.
pub async fn management_post_floor(stack: &Stack, token: &str) -> Result<Vec<f64>, Error> {
    let store = store(stack, |_| {})?;
    let connections = store.session_connections(&Token::parse(token)?).await?;
    let connection = connections.first().ok_or("the session has no connection")?;
    let api = chat_worker::ManagementApi::local(&Vars::default().config()?);
    let endpoint = &stack.management_endpoint;
    let frame = serde_json::to_vec(&ServerFrame::Pong)?;
    let mut samples = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let started = Instant::now();
        if api.post(endpoint, connection, &frame).await != chat_worker::notify::Delivery::Sent {
            return Err("a post to a live connection failed".into());
        }
        samples.push(ms(started.elapsed()));
    }
    Ok(samples)
}
