//! Which error codes each client frame, the WebSocket handshake, a reply and each HTTP route may
//! answer, declared once. PROTOCOL.md's table of them is checked against these lists both ways
//! (`tests/golden.rs`), and the generated frames and requests of the fuzz stories check that the
//! handlers answer nothing else: a code added to a handler but not here, or documented for the
//! wrong frame, fails a test.

use crate::ErrorCode::{self, *};

/// What any frame may be answered, whatever it holds: before its action is known (it is not JSON,
/// not a frame, not an action), its connection's frame limit and lost mapping, an ended session,
/// and the storage.
pub const ANY_FRAME: &[ErrorCode] =
    &[InvalidJson, InvalidFrame, UnknownAction, RateLimited, Reconnect, SessionExpired, Unavailable, Internal];

/// What each action may be answered besides [`ANY_FRAME`].
pub const FRAMES: &[(&str, &[ErrorCode])] = &[
    (
        crate::ACTION_SEND_MESSAGE,
        &[
            EmptyMessage,
            MessageTooLarge,
            InvalidContent,
            InvalidId,
            UnknownMessage,
            UnknownConversation,
            ReplyInProgress,
            TooManyVersions,
        ],
    ),
    (crate::ACTION_STOP, &[InvalidId, UnknownConversation]),
    (crate::ACTION_PING, &[]),
    (crate::ACTION_RESUME, &[InvalidId, UnknownMessage, UnknownConversation]),
    (
        crate::ACTION_REGENERATE,
        &[InvalidId, UnknownMessage, UnknownConversation, NotLastQuestion, ReplyInProgress, TooManyVersions],
    ),
];

/// What the handshake (`$connect`) may be refused with.
pub const HANDSHAKE: &[ErrorCode] = &[SessionExpired, TooManyConnections, Unavailable, Internal];

/// What the worker may send while it writes a reply (an `error` frame before its `done`).
pub const REPLY: &[ErrorCode] = &[
    ModelUnauthorized,
    ModelRateLimited,
    ModelUnavailable,
    ModelTimeout,
    ModelStreamInterrupted,
    ModelRejected,
    Internal,
];

/// What every HTTP route may answer: a route or a method that is not there, the storage, a bug.
pub const ANY_ROUTE: &[ErrorCode] = &[NotFound, Unavailable, Internal];

/// What each route (`METHOD /path`, as `template.yaml` routes them) may answer besides
/// [`ANY_ROUTE`].
pub const ROUTES: &[(&str, &[ErrorCode])] = &[
    ("POST /token", &[InvalidName, RateLimited]),
    ("DELETE /token", &[SessionExpired]),
    ("GET /chat_history", &[SessionExpired, InvalidParameter, UnknownMessage, UnknownConversation, RateLimited]),
    ("GET /chat_export", &[SessionExpired, InvalidParameter, UnknownConversation, RateLimited]),
    ("GET /conversations", &[SessionExpired, RateLimited]),
    ("POST /conversations", &[SessionExpired, InvalidParameter, TooManyConversations, RateLimited]),
    ("PATCH /conversations/{id}", &[SessionExpired, InvalidTitle, InvalidParameter, UnknownConversation, RateLimited]),
    ("DELETE /conversations/{id}", &[SessionExpired, UnknownConversation, RateLimited]),
    (
        "POST /conversations/{id}/versions",
        &[SessionExpired, InvalidParameter, UnknownMessage, UnknownConversation, ReplyInProgress, RateLimited],
    ),
    ("GET /search", &[SessionExpired, InvalidParameter, RateLimited]),
    ("GET /models", &[]),
    ("GET /health", &[]),
];

/// Every code a frame of `action` may be answered (`None` for an action that does not exist).
pub fn frame(action: &str) -> Option<Vec<ErrorCode>> {
    let (_, codes) = FRAMES.iter().find(|(name, _)| *name == action)?;
    Some(ANY_FRAME.iter().chain(codes.iter()).copied().collect())
}

/// Every code the route `route` (`METHOD /path`) may answer (`None` for a route that does not
/// exist).
pub fn route(route: &str) -> Option<Vec<ErrorCode>> {
    let (_, codes) = ROUTES.iter().find(|(name, _)| *name == route)?;
    Some(ANY_ROUTE.iter().chain(codes.iter()).copied().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_its_answers() {
        for action in crate::KNOWN_ACTIONS {
            assert!(frame(action).is_some(), "{action}");
        }
        assert_eq!(FRAMES.len(), crate::KNOWN_ACTIONS.len());
        assert!(frame("sendMessage").unwrap().contains(&EmptyMessage));
        assert_eq!(route("GET /nothing"), None);
    }
}
