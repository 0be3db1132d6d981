//! The wire contract as PROTOCOL.md writes it, as JSON: every frame compared with a golden value
//! (not through the types' own round trip), and every error code PROTOCOL.md lists spelled as
//! the implementation spells it. A renamed field or code fails here.

use chat_wire::{ClientFrame, Conversation, ErrorCode, ReplyStatus, ServerFrame, TitleSource, Usage};
use serde_json::{json, Value};

fn server(frame: &ServerFrame) -> Value {
    serde_json::to_value(frame).unwrap()
}

#[test]
fn server_frames_are_the_json_protocol_md_shows() {
    let cases = [
        (
            ServerFrame::Ack { id: "m1".into(), reply_id: "m1.reply".into(), conversation: None },
            json!({"type": "ack", "id": "m1", "reply_id": "m1.reply"}),
        ),
        (
            ServerFrame::Delta {
                id: "m1.reply".into(),
                reply_to: "m1".into(),
                seq: 0,
                text: "Hel".into(),
                conversation: None,
            },
            json!({"type": "delta", "id": "m1.reply", "reply_to": "m1", "seq": 0, "text": "Hel"}),
        ),
        (
            ServerFrame::Done {
                id: "m1.reply".into(),
                reply_to: "m1".into(),
                status: ReplyStatus::Done,
                model: Some("gpt-4o-mini".into()),
                next_seq: 12,
                usage: None,
                conversation: None,
            },
            json!({"type": "done", "id": "m1.reply", "reply_to": "m1", "status": "done", "model": "gpt-4o-mini", "next_seq": 12}),
        ),
        (
            ServerFrame::Done {
                id: "m1.reply".into(),
                reply_to: "m1".into(),
                status: ReplyStatus::Done,
                model: Some("gpt-4o-mini".into()),
                next_seq: 12,
                usage: Some(Usage { prompt_tokens: 31, completion_tokens: 12, cost_micro_usd: Some(12) }),
                conversation: None,
            },
            json!({"type": "done", "id": "m1.reply", "reply_to": "m1", "status": "done", "model": "gpt-4o-mini", "next_seq": 12,
                   "usage": {"prompt_tokens": 31, "completion_tokens": 12, "cost_micro_usd": 12}}),
        ),
        (
            ServerFrame::Snapshot {
                id: "m1.reply".into(),
                reply_to: "m1".into(),
                next_seq: 7,
                text: "so far".into(),
                status: ReplyStatus::Streaming,
                conversation: None,
            },
            json!({"type": "snapshot", "id": "m1.reply", "reply_to": "m1", "next_seq": 7, "text": "so far", "status": "streaming"}),
        ),
        (
            ServerFrame::Error {
                reply_to: Some("m1".into()),
                code: ErrorCode::RateLimited,
                message: "slow down".into(),
                retry_after: Some(2),
                conversation: None,
            },
            json!({"type": "error", "reply_to": "m1", "code": "rate_limited", "message": "slow down", "retry_after": 2}),
        ),
        (
            ServerFrame::Error {
                reply_to: None,
                code: ErrorCode::InvalidJson,
                message: "no".into(),
                retry_after: None,
                conversation: None,
            },
            json!({"type": "error", "reply_to": null, "code": "invalid_json", "message": "no"}),
        ),
        (ServerFrame::Pong, json!({"type": "pong"})),
    ];
    for (frame, golden) in cases {
        assert_eq!(server(&frame), golden);
        // A client reading the golden JSON gets the same frame.
        assert_eq!(serde_json::from_value::<ServerFrame>(golden).unwrap(), frame);
    }
    for (status, word) in [
        (ReplyStatus::Streaming, "streaming"),
        (ReplyStatus::Done, "done"),
        (ReplyStatus::Stopped, "stopped"),
        (ReplyStatus::Error, "error"),
    ] {
        assert_eq!(serde_json::to_value(status).unwrap(), json!(word));
    }
}

#[test]
fn client_frames_read_from_the_json_protocol_md_shows() {
    let cases = [
        (
            json!({"action": "sendMessage", "id": "m1", "content": "hi"}),
            ClientFrame::SendMessage { id: "m1".into(), content: "hi".into(), conversation: None, edits: None },
        ),
        (json!({"action": "stop", "reply_to": "m1"}), ClientFrame::Stop { reply_to: "m1".into(), conversation: None }),
        (json!({"action": "ping"}), ClientFrame::Ping),
        (
            json!({"action": "resume", "reply_to": "m1"}),
            ClientFrame::Resume { reply_to: "m1".into(), conversation: None },
        ),
        (
            json!({"action": "regenerate", "reply_to": "m1"}),
            ClientFrame::Regenerate { reply_to: "m1".into(), conversation: None },
        ),
    ];
    for (golden, frame) in cases {
        assert_eq!(serde_json::from_value::<ClientFrame>(golden.clone()).unwrap(), frame);
        assert_eq!(serde_json::to_value(&frame).unwrap(), golden);
    }
}

#[test]
fn frames_name_their_conversation_when_there_is_one() {
    let sent = json!({"action": "sendMessage", "id": "m1", "content": "hi", "conversation": "Xy3_k9-q2Lw"});
    let frame = ClientFrame::SendMessage {
        id: "m1".into(),
        content: "hi".into(),
        conversation: Some("Xy3_k9-q2Lw".into()),
        edits: None,
    };
    assert_eq!(serde_json::from_value::<ClientFrame>(sent).unwrap(), frame);
    let ack = ServerFrame::Ack { id: "m1".into(), reply_id: "m1.reply".into(), conversation: Some("main".into()) };
    assert_eq!(server(&ack), json!({"type": "ack", "id": "m1", "reply_id": "m1.reply", "conversation": "main"}));
    let listed = Conversation {
        id: "Xy3_k9-q2Lw".into(),
        title: "Trip to Oslo".into(),
        titled_by: TitleSource::Model,
        created: "2026-11-26T08:00:00.000Z".into(),
        last_activity: "2026-11-26T08:01:00.000Z".into(),
        model: None,
        instructions: None,
    };
    let cases = [
        (
            ServerFrame::Conversation { conversation: listed },
            json!({"type": "conversation", "conversation": {"id": "Xy3_k9-q2Lw", "title": "Trip to Oslo",
                "titled_by": "model", "created": "2026-11-26T08:00:00.000Z", "last_activity": "2026-11-26T08:01:00.000Z"}}),
        ),
        (
            ServerFrame::ConversationDeleted { id: "Xy3_k9-q2Lw".into() },
            json!({"type": "conversation_deleted", "id": "Xy3_k9-q2Lw"}),
        ),
    ];
    for (frame, golden) in cases {
        assert_eq!(server(&frame), golden);
        assert_eq!(serde_json::from_value::<ServerFrame>(golden).unwrap(), frame);
    }
}

/// The codes of PROTOCOL.md's error table (its rows start with a backticked code).
fn documented_codes() -> Vec<String> {
    let protocol = include_str!("../../../PROTOCOL.md");
    let table = protocol.split("### Error codes").nth(1).expect("PROTOCOL.md has an error code table");
    table
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(code, _)| code.to_string()))
        .collect()
}

#[test]
fn every_error_code_protocol_md_lists_is_spelled_as_on_the_wire() {
    let documented = documented_codes();
    assert!(documented.len() >= 25, "{documented:?}");
    for code in &documented {
        let parsed: ErrorCode = serde_json::from_value(json!(code)).unwrap_or_else(|e| panic!("{code}: {e}"));
        assert_eq!(serde_json::to_value(parsed).unwrap(), json!(code));
        assert_eq!(parsed.as_str(), code);
    }
}

/// Every code there is. The match makes a new code a compile error here until it is listed.
fn all_codes() -> Vec<ErrorCode> {
    use ErrorCode::*;
    let all = vec![
        InvalidJson,
        InvalidFrame,
        UnknownAction,
        EmptyMessage,
        MessageTooLarge,
        InvalidContent,
        InvalidId,
        InvalidName,
        InvalidParameter,
        SessionExpired,
        Reconnect,
        TooManyConnections,
        ReplyInProgress,
        RateLimited,
        UnknownMessage,
        NotLastQuestion,
        UnknownConversation,
        TooManyConversations,
        InvalidTitle,
        TooManyVersions,
        ModelUnauthorized,
        ModelRateLimited,
        ModelUnavailable,
        ModelTimeout,
        ModelStreamInterrupted,
        ModelRejected,
        NotFound,
        Unavailable,
        Internal,
    ];
    for code in &all {
        match code {
            InvalidJson
            | InvalidFrame
            | UnknownAction
            | EmptyMessage
            | MessageTooLarge
            | InvalidContent
            | InvalidId
            | InvalidName
            | InvalidParameter
            | SessionExpired
            | Reconnect
            | TooManyConnections
            | ReplyInProgress
            | RateLimited
            | UnknownMessage
            | NotLastQuestion
            | UnknownConversation
            | TooManyConversations
            | InvalidTitle
            | TooManyVersions
            | ModelUnauthorized
            | ModelRateLimited
            | ModelUnavailable
            | ModelTimeout
            | ModelStreamInterrupted
            | ModelRejected
            | NotFound
            | Unavailable
            | Internal => {}
        }
    }
    all
}

#[test]
fn every_error_code_is_documented_in_protocol_md() {
    let documented = documented_codes();
    for code in all_codes() {
        assert!(documented.iter().any(|d| d == code.as_str()), "{} is not in PROTOCOL.md's table", code.as_str());
    }
    assert_eq!(documented.len(), all_codes().len(), "PROTOCOL.md lists a code twice or one that does not exist");
}

/// PROTOCOL.md's table of which codes each frame, the handshake, a reply and each route may
/// answer: each row's name and codes.
fn documented_answers() -> Vec<(String, Vec<String>)> {
    let protocol = include_str!("../../../PROTOCOL.md");
    let section = protocol.split("### Which codes each frame and route answers").nth(1).expect("the table");
    let table = section.split("\n### ").next().unwrap();
    table
        .lines()
        .filter(|line| line.starts_with("| ") && !line.starts_with("| frame,") && !line.starts_with("| ---"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let name = cells[0].trim_matches('`').to_string();
            // Each code is a backticked word; a parenthesis after one explains it (and may name
            // other things in backticks).
            let mut outside = String::new();
            let mut depth = 0;
            for c in cells[1].chars() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ if depth == 0 => outside.push(c),
                    _ => {}
                }
            }
            let codes = outside.split('`').skip(1).step_by(2).map(str::to_string).collect();
            (name, codes)
        })
        .collect()
}

#[test]
fn protocol_md_lists_exactly_the_codes_each_frame_and_route_may_answer() {
    use chat_wire::answers;
    let mut declared: Vec<(String, &[ErrorCode])> = vec![
        ("any frame".into(), answers::ANY_FRAME),
        ("handshake".into(), answers::HANDSHAKE),
        ("reply".into(), answers::REPLY),
        ("any route".into(), answers::ANY_ROUTE),
    ];
    declared.extend(answers::FRAMES.iter().map(|(name, codes)| (name.to_string(), *codes)));
    declared.extend(answers::ROUTES.iter().map(|(name, codes)| (name.to_string(), *codes)));
    let documented = documented_answers();
    for (name, codes) in &declared {
        let row =
            documented.iter().find(|(row, _)| row == name).unwrap_or_else(|| panic!("PROTOCOL.md has no row {name}"));
        let mut written = row.1.clone();
        let mut wire: Vec<String> = codes.iter().map(|c| c.as_str().to_string()).collect();
        written.sort();
        wire.sort();
        assert_eq!(written, wire, "the codes of {name}: PROTOCOL.md beside crates/wire/src/answers.rs");
    }
    for (name, _) in &documented {
        assert!(declared.iter().any(|(d, _)| d == name), "PROTOCOL.md lists {name}, which answers.rs does not declare");
    }
}
