//! A message of a conversation, as stored and as `GET /chat_history` returns it: who wrote it,
//! where it stands, what it cost, and its versions.

use serde::{Deserialize, Serialize};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The person.
    User,
    /// The model.
    Assistant,
}

/// Where a message stands: user messages are always `done`; a reply moves from `streaming` to one
/// of the three final states.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ReplyStatus {
    /// The model is still writing this reply.
    Streaming,
    /// Complete.
    #[default]
    Done,
    /// The person stopped the reply; `msg` holds what had been sent.
    Stopped,
    /// The model failed; `msg` holds what had been sent before the failure.
    Error,
}

impl ReplyStatus {
    /// True once the reply can no longer change.
    pub fn is_final(self) -> bool {
        !matches!(self, ReplyStatus::Streaming)
    }
}

/// One message of a conversation, as stored and as returned by `GET /chat_history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatMessage {
    /// Unique within the session: the client's id for user messages, derived from it for replies.
    pub id: String,
    /// The text (markdown for replies).
    pub msg: String,
    /// When the message was stored (RFC 3339, UTC).
    pub timestamp: String,
    /// Who wrote it.
    pub source: Source,
    /// Where the message stands; always `done` for user messages.
    #[serde(default)]
    pub status: ReplyStatus,
    /// For a reply: the id of the user message it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// For a reply: the model that wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// For a reply still `streaming` in `GET /chat_history`: `msg` holds every delta before this
    /// `seq`, so a client continues from here (see [`crate::ReplyText`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_seq: Option<u64>,
    /// For a finished reply: the tokens it took, as the model's provider counted them (absent
    /// when the provider said nothing, as for a reply stopped or cut before its end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// When its place in the conversation has other versions (an edited question, a
    /// regenerated reply): every version's first message id, oldest first, this one's included.
    /// `POST /conversations/{id}/versions` shows another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Vec<String>>,
}

/// What a reply cost: its prompt and completion tokens, and their price when prices are
/// configured for its model (`MODEL_PRICES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    /// Tokens of the context sent (system prompt, history, question).
    pub prompt_tokens: u64,
    /// Tokens of the reply.
    pub completion_tokens: u64,
    /// The price of both, in millionths of a US dollar (integers add up exactly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_micro_usd: Option<u64>,
}

/// Both together, as a conversation's total.
impl std::ops::Add for Usage {
    type Output = Usage;

    fn add(self, other: Usage) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens.saturating_add(other.prompt_tokens),
            completion_tokens: self.completion_tokens.saturating_add(other.completion_tokens),
            cost_micro_usd: match (self.cost_micro_usd, other.cost_micro_usd) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
            },
        }
    }
}

impl ChatMessage {
    /// A question of the person, stored as it arrives.
    pub fn question(id: impl Into<String>, text: impl Into<String>, at: impl Into<String>) -> ChatMessage {
        ChatMessage {
            id: id.into(),
            msg: text.into(),
            timestamp: at.into(),
            source: Source::User,
            status: ReplyStatus::Done,
            reply_to: None,
            model: None,
            next_seq: None,
            usage: None,
            versions: None,
        }
    }

    /// The reply to question `question` as its writing begins: empty, `streaming`, by `model`.
    pub fn reply_placeholder(question: &str, model: Option<String>, at: impl Into<String>) -> ChatMessage {
        ChatMessage {
            id: crate::reply_id_for(question),
            msg: String::new(),
            timestamp: at.into(),
            source: Source::Assistant,
            status: ReplyStatus::Streaming,
            reply_to: Some(question.to_string()),
            model,
            next_seq: None,
            usage: None,
            versions: None,
        }
    }

    /// The same message with another text and status (a reply as it ends).
    pub fn with_text(self, text: impl Into<String>, status: ReplyStatus) -> ChatMessage {
        ChatMessage { msg: text.into(), status, ..self }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn usages_add_up_and_a_cost_counts_once_known() {
        let priced = Usage { prompt_tokens: 10, completion_tokens: 5, cost_micro_usd: Some(7) };
        let unpriced = Usage { prompt_tokens: 1, completion_tokens: 2, cost_micro_usd: None };
        assert_eq!(priced + unpriced, Usage { prompt_tokens: 11, completion_tokens: 7, cost_micro_usd: Some(7) });
        assert_eq!((unpriced + unpriced).cost_micro_usd, None);
    }

    #[test]
    fn stored_messages_without_status_read_as_done() {
        let m: ChatMessage =
            serde_json::from_value(json!({"id": "1", "msg": "hi", "timestamp": "t", "source": "user"})).unwrap();
        assert_eq!(m.status, ReplyStatus::Done);
    }
}
