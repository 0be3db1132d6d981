//! The ids that name things across the API, each checked once where it enters and carried as its
//! own type after that: a [`Token`] can never be passed where a [`MessageId`] is expected, and a
//! function that takes one never checks its shape again.
//!
//! On the wire (frames, stored messages) ids stay plain strings, so a malformed one reaches the
//! handler and gets its own error code instead of a generic "invalid frame".

use std::fmt;

/// Why a string is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidId {
    /// Which kind of id was expected.
    pub kind: &'static str,
}

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a valid {}", self.kind)
    }
}

impl std::error::Error for InvalidId {}

/// A session token: the bearer secret of a session, 256 random bits in base64url (43 characters).
///
/// Its `Debug` shows only a prefix and it has no `Display`, so a token does not end up in a log
/// line by accident; [`Token::expose`] is the one way to read it whole.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    /// The length of every token this service issues.
    pub const LEN: usize = 43;

    /// Checks a string's shape (anything else is refused before it reaches storage).
    pub fn parse(candidate: &str) -> Result<Token, InvalidId> {
        let well_formed = candidate.len() == Self::LEN
            && candidate.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if well_formed {
            Ok(Token(candidate.to_string()))
        } else {
            Err(InvalidId { kind: "session token" })
        }
    }

    /// The whole secret, for the places that must send or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A short digest that names the session in logs and spans without revealing the token: 64
    /// bits of SipHash over 256 random bits cannot be turned back into it.
    pub fn log_id(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        self.0.hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}…)", &self.0[..4])
    }
}

/// A message id chosen by the client: 1 to 64 characters of `A-Z a-z 0-9 - _ .`. Resending the
/// same id is harmless, which makes retries after a dropped connection safe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageId(String);

impl MessageId {
    /// Checks a client's id.
    pub fn parse(candidate: &str) -> Result<MessageId, InvalidId> {
        if is_valid_message_id(candidate) {
            Ok(MessageId(candidate.to_string()))
        } else {
            Err(InvalidId { kind: "message id" })
        }
    }

    /// The id of the reply to this message.
    pub fn reply_id(&self) -> ReplyId {
        ReplyId(reply_id_for(&self.0))
    }
}

/// The id of a reply, always derived from the user message it answers (`m1` -> `m1.reply`), so a
/// retried request can never store a second reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplyId(String);

impl ReplyId {}

/// An API Gateway WebSocket connection id (12 random bytes in base64 on AWS, `=` included).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectionId(String);

impl ConnectionId {
    /// Checks an id from an API Gateway event or from storage: 1 to 128 characters of base64
    /// (standard or URL-safe alphabet, padding included) or `-`.
    pub fn parse(candidate: &str) -> Result<ConnectionId, InvalidId> {
        let well_formed = (1..=128).contains(&candidate.len())
            && candidate.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'));
        if well_formed {
            Ok(ConnectionId(candidate.to_string()))
        } else {
            Err(InvalidId { kind: "connection id" })
        }
    }
}

/// A conversation of a session: `main` (every session's first, and its current one until it
/// has others) or an id the server chose, 1 to 32 characters of `A-Z a-z 0-9 - _`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConversationId(String);

impl ConversationId {
    /// The id of every session's first conversation.
    pub const MAIN: &'static str = "main";

    /// Checks an id from a client or from storage.
    pub fn parse(candidate: &str) -> Result<ConversationId, InvalidId> {
        let well_formed = (1..=32).contains(&candidate.len())
            && candidate.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
        if well_formed {
            Ok(ConversationId(candidate.to_string()))
        } else {
            Err(InvalidId { kind: "conversation id" })
        }
    }

    /// Every session's first conversation.
    pub fn main() -> ConversationId {
        ConversationId(Self::MAIN.to_string())
    }

    /// Whether this is the session's first conversation, which always exists (deleting it empties it).
    pub fn is_main(&self) -> bool {
        self.0 == Self::MAIN
    }
}

/// What the plain ids share: the id as sent and stored, and that text as their `Display`.
macro_rules! plain_id {
    ($($name:ident),*) => {$(
        impl $name {
            /// The id as sent and stored.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}

plain_id!(MessageId, ReplyId, ConnectionId, ConversationId);

/// The id a reply carries, derived from the user message it answers so that a retried request
/// can never store a second reply.
pub fn reply_id_for(user_message_id: &str) -> String {
    format!("{user_message_id}{REPLY_SUFFIX}")
}

/// What a reply's id adds to its question's.
const REPLY_SUFFIX: &str = ".reply";

/// Whether a client-chosen message id is acceptable: 1 to 64 characters of `A-Z a-z 0-9 - _ .`,
/// not ending in `.reply`, which names replies: a question `b.reply` would collide with the
/// reply to `b`, and a reply id is never a question to answer again.
pub fn is_valid_message_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !id.ends_with(REPLY_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_restricted() {
        assert!(MessageId::parse("c-1700000000000-ab_x.2").is_ok());
        assert!(MessageId::parse("").is_err());
        assert!(MessageId::parse("has space").is_err());
        assert!(MessageId::parse(&"x".repeat(65)).is_err());
        assert!(MessageId::parse("é").is_err());
        assert!(MessageId::parse("b.reply").is_err(), "a reply's id is never a question's");
        assert!(MessageId::parse("b.replying").is_ok());
        assert_eq!(MessageId::parse("m1").unwrap().reply_id().as_str(), "m1.reply");
    }

    #[test]
    fn tokens_have_one_shape_and_do_not_print() {
        let token = Token::parse("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123-_6").unwrap();
        assert_eq!(format!("{token:?}"), "Token(abcd…)");
        assert_eq!(token.log_id().len(), 16);
        assert!(!token.log_id().contains("abcd"));
        assert!(Token::parse("short").is_err());
        assert!(Token::parse("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123-_/").is_err());
    }

    #[test]
    fn conversation_ids_are_restricted() {
        assert!(ConversationId::parse("main").unwrap().is_main());
        assert!(!ConversationId::parse("c7Hq2x_-").unwrap().is_main());
        assert!(ConversationId::parse("").is_err());
        assert!(ConversationId::parse("a.b").is_err());
        assert!(ConversationId::parse(&"a".repeat(33)).is_err());
    }

    #[test]
    fn connection_ids_are_base64_like() {
        assert!(ConnectionId::parse("L0SM9cOFvHcCIhw=").is_ok());
        assert!(ConnectionId::parse("").is_err());
        assert!(ConnectionId::parse("a b").is_err());
        assert!(ConnectionId::parse(&"a".repeat(129)).is_err());
    }
}
