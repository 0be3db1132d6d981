//! Session tokens.

use base64::Engine;

/// A fresh session token: 256 bits from the operating system's CSPRNG, base64url without padding
/// (43 characters, safe in a query string).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether a string could be a token this service issued; anything else is refused before it
/// reaches Redis.
pub fn looks_like_token(candidate: &str) -> bool {
    candidate.len() == 43 && candidate.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_url_safe_and_distinct() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert!(looks_like_token(&a), "{a}");
        assert!(!looks_like_token("short"));
        assert!(!looks_like_token(&format!("{}/", &a[..42])));
    }
}
