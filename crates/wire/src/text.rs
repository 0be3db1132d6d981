//! The rules of a one-line text, the same on both sides: a name, a conversation's title and a
//! search are trimmed, not blank, bounded and free of control characters ([`one_line`]); a text
//! made into a title is cut at a word ([`title_from`]).

/// The one rule of a name, a title and a search: trimmed, not blank, at most `max_chars`
/// characters, no control characters (the OpenAPI document's `name_pattern` says the same).
/// The error is a sentence about `what`.
pub fn one_line(text: &str, max_chars: usize, what: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("the {what} must not be blank"));
    }
    if text.chars().count() > max_chars {
        return Err(format!("the {what} must be at most {max_chars} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("the {what} must not contain control characters"));
    }
    Ok(text.to_string())
}

/// `text` as a title of at most `max_chars` characters: its words on one line, cut at a word
/// (with an ellipsis) when it is longer.
pub fn title_from(text: &str, max_chars: usize) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let line = words.join(" ");
    if line.chars().count() <= max_chars {
        return line;
    }
    let keep = max_chars.saturating_sub(1);
    let cut: String = line.chars().take(keep).collect();
    let ends_a_word = line.chars().nth(keep).is_some_and(|next| next == ' ');
    let at_word = match cut.rfind(' ') {
        Some(space) if !ends_a_word && space >= cut.len() / 2 => &cut[..space],
        _ => &cut,
    };
    format!("{}…", at_word.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_line_text_is_trimmed_bounded_and_without_control_characters() {
        assert_eq!(one_line("  Ada  ", 64, "name").as_deref(), Ok("Ada"));
        assert!(one_line(" \t", 64, "name").is_err());
        assert!(one_line(&"é".repeat(64), 64, "name").is_ok());
        assert!(one_line(&"é".repeat(65), 64, "name").is_err());
        assert!(one_line("a\u{7}b", 64, "name").is_err());
    }

    #[test]
    fn titles_are_one_line_cut_at_a_word() {
        assert_eq!(title_from("  What is\n Rust?  ", 80), "What is Rust?");
        assert_eq!(title_from("How do lifetimes work in async Rust code", 20), "How do lifetimes…");
        assert_eq!(title_from("Plan a trip to Oslo in winter", 20), "Plan a trip to Oslo…");
        assert_eq!(title_from("Supercalifragilisticexpialidocious", 10), "Supercali…");
        assert!(title_from(&"é".repeat(100), 80).chars().count() <= 80);
        assert_eq!(title_from("", 80), "");
    }
}
