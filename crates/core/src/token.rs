//! Issuing session tokens and conversation ids (their shapes are [`chat_wire::Token`]'s and
//! [`chat_wire::ConversationId`]'s).

use base64::Engine;
use chat_wire::{ConversationId, Token};

/// A fresh session token: 256 bits from the operating system's CSPRNG, base64url without padding
/// (43 characters, safe in a query string).
pub fn new_token() -> Token {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    Token::parse(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)).expect("43 base64url characters")
}

/// A fresh conversation id: 64 random bits, base64url (11 characters): unguessable is not needed
/// (the token guards the session), distinct is.
pub fn new_conversation_id() -> ConversationId {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    ConversationId::parse(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
        .expect("11 base64url characters")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_url_safe_and_distinct() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), Token::LEN);
    }
}
