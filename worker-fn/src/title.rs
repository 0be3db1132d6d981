//! A conversation's title from the model: asked once, after its first reply's entry is
//! acknowledged, as background work (a person's reply always goes first), and kept only when it
//! reads as a topic. Anything else (no answer in time, an empty line, a line too long, a sentence
//! addressed to the person) leaves the title the question's own start, which the conversation
//! already has.

use std::time::Duration;

use chat_core::ReplyRequest;
use chat_wire::{ServerFrame, TitleSource};

use crate::provider::ContextMessage;
use crate::worker::Worker;

/// The longest a conversation's title may take the model.
const TITLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most words a title may have.
const MAX_TITLE_WORDS: usize = 8;

/// A conversation to title once its first reply's entry is acknowledged.
pub(crate) struct TitleWanted {
    /// The person's first question.
    pub(crate) question: String,
}

/// What the model is asked: a topic for the question, nothing else.
pub fn title_prompt(question: &str) -> [ContextMessage; 2] {
    [
        ContextMessage {
            role: "system".into(),
            content: "You label conversations. Reply with a topic of two to six words for the user's message, \
                      like a heading: no sentence, no answer, no quotes, no final punctuation."
                .into(),
        },
        ContextMessage { role: "user".into(), content: question.chars().take(600).collect() },
    ]
}

impl Worker {
    /// Names a conversation after its first question: one small non-streamed call, bounded by
    /// [`TITLE_TIMEOUT`], announced to every tab when it is kept.
    pub(crate) async fn title(&self, request: &ReplyRequest, wanted: TitleWanted) {
        let max_chars = self.config.max_title_chars;
        let asked = tokio::time::timeout(TITLE_TIMEOUT, self.model.title(&title_prompt(&wanted.question))).await;
        let title = match asked {
            Ok(Ok(text)) => match model_title(&text, max_chars) {
                Some(title) => title,
                None => {
                    return tracing::info!(answer = %text, "the model's title reads as no title; the question's start stays")
                }
            },
            Ok(Err(error)) => {
                return tracing::warn!(error = %error, "the model gave no title; the question's start stays")
            }
            Err(_) => {
                return tracing::warn!("the model took too long to title a conversation; the question's start stays")
            }
        };
        let titled =
            self.store.title_conversation(&request.token, &request.conversation, &title, TitleSource::Model).await;
        let conversation = match titled {
            Ok(Ok(conversation)) => conversation,
            Ok(Err(_)) => return,
            Err(error) => return tracing::warn!(error = %error, "could not store a conversation's title"),
        };
        let frame = ServerFrame::Conversation { conversation };
        chat_core::management::broadcast(&self.store, &self.connections, &request.endpoint, &request.token, &frame)
            .await;
    }
}

/// The model's answer as a title, if it reads as one: its first line, without the quotes,
/// markup and label models like to add; `None` when that is empty, longer than `max_chars` or
/// [`MAX_TITLE_WORDS`], or a sentence rather than a topic (it speaks to the person or of itself,
/// asks or exclaims, or holds more than one sentence).
pub fn model_title(text: &str, max_chars: usize) -> Option<String> {
    let line = text.lines().map(str::trim).find(|line| !line.is_empty())?;
    let strip = |text: &'_ str| -> String {
        text.trim_matches(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '*' | '#' | '`' | '.' | '“' | '”'))
            .to_string()
    };
    let line = strip(line);
    let line = match line.get(..6).filter(|label| label.eq_ignore_ascii_case("title:")) {
        Some(_) => strip(&line[6..]),
        None => line,
    };
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.is_empty() || words.len() > MAX_TITLE_WORDS || line.chars().count() > max_chars {
        return None;
    }
    let speaks = words.iter().any(|word| {
        let word = word.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'').to_lowercase();
        matches!(
            word.as_str(),
            "i" | "i'm" | "i've" | "i'd" | "i'll" | "me" | "my" | "you" | "your" | "you're" | "yours" | "we" | "let's"
        )
    });
    let sentence = line.ends_with(['?', '!']) || line.contains(". ") || line.contains("! ") || line.contains("? ");
    let opener = ["sure", "certainly", "of course", "hello", "hi", "yes", "no,", "okay", "ok,", "thank"]
        .iter()
        .any(|start| line.to_lowercase().starts_with(start));
    (!speaks && !sentence && !opener).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::model_title;

    #[test]
    fn model_titles_lose_their_decoration() {
        assert_eq!(
            model_title("\n  \"Rust lifetimes explained.\"\nMore text", 80).as_deref(),
            Some("Rust lifetimes explained")
        );
        assert_eq!(model_title("**Title:** Trip to Oslo", 80).as_deref(), Some("Trip to Oslo"));
        assert_eq!(model_title("TITLE: Trip to Oslo", 80).as_deref(), Some("Trip to Oslo"));
        assert_eq!(model_title("“Sourdough starter care”", 80).as_deref(), Some("Sourdough starter care"));
    }

    #[test]
    fn what_reads_as_no_title_is_dropped() {
        for answer in [
            "   ",
            "Your answer contains commas and commas. I'm glad you enjoyed your chat so far.",
            "I can help with that",
            "Sure, here is a title",
            "What do you want to know?",
            "Hello! Who are you",
            "Thanks for asking",
            "one two three four five six seven eight nine",
        ] {
            assert_eq!(model_title(answer, 80), None, "{answer:?}");
        }
        assert_eq!(model_title("Rust lifetimes explained in detail", 20), None, "longer than the limit");
    }
}
