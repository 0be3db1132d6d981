//! Wire types of the chat API: what crosses the network between the browser, the HTTP and WebSocket
//! functions and the worker.
//!
//! This crate is the contract. It holds serde types only (no tokio, no Redis, no AWS), so the Leptos
//! frontend compiles it to wasm and every party agrees on one definition. `PROTOCOL.md` at the
//! repository root describes the same contract in prose for third-party clients.
//!
//! Layout:
//! * [`http`]: the HTTP bodies, both ways: [`ChatSession`], [`ConversationList`] and
//!   [`Conversation`], [`SearchResults`], [`ModelList`], [`ErrorBody`], [`Health`]; [`TokenForm`],
//!   [`NewConversation`], [`ConversationChanges`], [`ShowVersion`]; and [`SiteConfig`]
//!   (`config.json`).
//! * [`message`]: stored and returned messages: [`ChatMessage`] (with its constructors),
//!   [`Source`], [`ReplyStatus`], [`Usage`].
//! * [`frames`]: WebSocket frames, [`ClientFrame`] (browser to server) and [`ServerFrame`].
//! * [`error_code`]: the machine-readable [`ErrorCode`]s, and [`answers`]: which ones each frame
//!   and route may answer, declared once (PROTOCOL.md is checked against it).
//! * [`reply_text`]: [`ReplyText`], how a client rebuilds a reply from deltas and snapshots,
//!   shared by the web app and the tests so both follow the protocol the same way.
//! * [`text`]: the rule of a one-line text (a name, a title, a search) and a title's cut.
//! * [`ids`]: [`Token`], [`MessageId`], [`ReplyId`], [`ConversationId`] and [`ConnectionId`],
//!   each checked once where it enters.

pub mod answers;
pub mod error_code;
pub mod frames;
pub mod http;
pub mod ids;
pub mod message;
pub mod reply_text;
pub mod text;

pub use error_code::ErrorCode;
pub use frames::*;
pub use http::*;
pub use ids::{is_valid_message_id, reply_id_for, ConnectionId, ConversationId, InvalidId, MessageId, ReplyId, Token};
pub use message::*;
pub use reply_text::ReplyText;
