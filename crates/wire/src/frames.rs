//! The WebSocket frames: what the browser sends ([`ClientFrame`], routed by its `action`) and what
//! the server sends back ([`ServerFrame`]).

use serde::{Deserialize, Serialize};

use crate::{Conversation, ErrorCode, ReplyStatus, Usage};

/// The `action` value of a [`ClientFrame::SendMessage`] frame (API Gateway's route selection reads it).
pub const ACTION_SEND_MESSAGE: &str = "sendMessage";
/// The `action` value of a [`ClientFrame::Stop`] frame.
pub const ACTION_STOP: &str = "stop";
/// The `action` value of a [`ClientFrame::Ping`] frame.
pub const ACTION_PING: &str = "ping";
/// The `action` value of a [`ClientFrame::Resume`] frame.
pub const ACTION_RESUME: &str = "resume";
/// The `action` value of a [`ClientFrame::Regenerate`] frame.
pub const ACTION_REGENERATE: &str = "regenerate";
/// The actions the server understands, in the order the protocol document lists them.
pub const KNOWN_ACTIONS: &[&str] = &[ACTION_SEND_MESSAGE, ACTION_STOP, ACTION_PING, ACTION_RESUME, ACTION_REGENERATE];

/// A frame the browser sends over the WebSocket. The `action` field selects the API Gateway route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action")]
pub enum ClientFrame {
    /// Ask the model something.
    #[serde(rename = "sendMessage")]
    SendMessage {
        /// The client's id for this message (1 to 64 of `A-Z a-z 0-9 - _ .`); resending the same id
        /// is harmless, which makes retries after a dropped connection safe.
        id: String,
        /// The question.
        content: String,
        /// The conversation ([`crate::ConversationId`]); absent: the session's current one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
        /// An earlier question of the person this one edits: it takes that question's place as a
        /// new version, and the old question with everything after it is kept as the other.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        edits: Option<String>,
    },
    /// Stops the reply to `reply_to` being written; what was sent so far is kept, marked `stopped`.
    #[serde(rename = "stop")]
    Stop {
        /// The user message whose reply should stop.
        reply_to: String,
        /// The conversation ([`crate::ConversationId`]); absent: the session's current one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
    },
    /// Keeps an idle connection open (API Gateway closes connections idle for 10 minutes).
    #[serde(rename = "ping")]
    Ping,
    /// Asks for the reply to `reply_to` as it stands (a [`ServerFrame::Snapshot`]), after a reload
    /// or a reconnect; the deltas that follow arrive on this connection as on any other.
    #[serde(rename = "resume")]
    Resume {
        /// The user message whose reply the client wants.
        reply_to: String,
        /// The conversation ([`crate::ConversationId`]); absent: the session's current one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
    },
    /// Writes the reply to `reply_to` again (after a model failure, a stop, or an answer the person
    /// did not like). Only the last question of the session can be regenerated; its old reply is
    /// replaced.
    #[serde(rename = "regenerate")]
    Regenerate {
        /// The user message to answer again.
        reply_to: String,
        /// The conversation ([`crate::ConversationId`]); absent: the session's current one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
    },
}

/// A frame the server sends over the WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The user message `id` is stored; a reply follows.
    Ack {
        /// The client's message id.
        id: String,
        /// The id the reply will carry.
        reply_id: String,
        /// The conversation it belongs to (absent only from servers that predate conversations).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
    },
    /// A piece of a reply. Concatenating a reply's deltas in `seq` order gives the stored reply.
    Delta {
        /// The reply's id.
        id: String,
        /// The user message it answers.
        reply_to: String,
        /// Position of this piece in the reply, from 0.
        seq: u64,
        /// The text of this piece.
        text: String,
        /// The conversation it belongs to (absent only from servers that predate conversations).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
    },
    /// The reply is complete (or ended early: see `status`).
    Done {
        /// The reply's id.
        id: String,
        /// The user message it answers.
        reply_to: String,
        /// How it ended.
        status: ReplyStatus,
        /// The model that wrote it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        /// The seq after the reply's last delta: a client whose text stops short of it missed
        /// deltas (or the reply was sent again after a crash) and asks for a snapshot.
        next_seq: u64,
        /// The tokens the reply took (and their price), as stored with it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<Usage>,
        /// The conversation it belongs to (absent only from servers that predate conversations).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
    },
    /// A reply as it stands: `text` is every delta before `next_seq`. Sent in answer to
    /// [`ClientFrame::Resume`], and by a worker that restarts a reply another worker left
    /// unfinished (then `text` is empty: what was shown before is void).
    Snapshot {
        /// The reply's id.
        id: String,
        /// The user message it answers.
        reply_to: String,
        /// The seq of the next delta.
        next_seq: u64,
        /// The reply's text so far.
        text: String,
        /// `streaming`, or how the reply ended.
        status: ReplyStatus,
        /// The conversation it belongs to (absent only from servers that predate conversations).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
    },
    /// Something went wrong; nothing the person sent is lost.
    Error {
        /// The user message concerned, when there is one.
        reply_to: Option<String>,
        /// A stable machine-readable code.
        code: ErrorCode,
        /// A sentence a person can read.
        message: String,
        /// Seconds to wait before trying again (rate limits, outages).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
        /// The conversation concerned, when there is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
    },
    /// The answer to a [`ClientFrame::Ping`].
    Pong,
    /// A conversation of the session was created, renamed, titled or asked something: every
    /// connection of the session gets it, so every open tab's list stays current.
    Conversation {
        /// The conversation as it now stands.
        conversation: Conversation,
    },
    /// A conversation of the session was deleted.
    ConversationDeleted {
        /// Its id.
        id: String,
    },
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn client_frames_use_the_action_field() {
        let frame: ClientFrame =
            serde_json::from_value(json!({"action": "sendMessage", "id": "m1", "content": "hi"})).unwrap();
        assert_eq!(
            frame,
            ClientFrame::SendMessage { id: "m1".into(), content: "hi".into(), conversation: None, edits: None }
        );
        let frame: ClientFrame =
            serde_json::from_value(json!({"action": "stop", "reply_to": "m1", "conversation": "c1"})).unwrap();
        assert_eq!(frame, ClientFrame::Stop { reply_to: "m1".into(), conversation: Some("c1".into()) });
        assert_eq!(serde_json::to_value(ClientFrame::Ping).unwrap(), json!({"action": "ping"}));
    }

    #[test]
    fn server_frames_match_the_protocol_document() {
        let delta = ServerFrame::Delta {
            id: "m1.reply".into(),
            reply_to: "m1".into(),
            seq: 0,
            text: "Hel".into(),
            conversation: Some("main".into()),
        };
        assert_eq!(
            serde_json::to_value(&delta).unwrap(),
            json!({"type": "delta", "id": "m1.reply", "reply_to": "m1", "seq": 0, "text": "Hel", "conversation": "main"})
        );
        let deleted = ServerFrame::ConversationDeleted { id: "c1".into() };
        assert_eq!(serde_json::to_value(&deleted).unwrap(), json!({"type": "conversation_deleted", "id": "c1"}));
        let error = ServerFrame::Error {
            reply_to: None,
            code: ErrorCode::UnknownAction,
            message: "no".into(),
            retry_after: None,
            conversation: None,
        };
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            json!({"type": "error", "reply_to": null, "code": "unknown_action", "message": "no"})
        );
    }
}
