//! The model's context for a reply.

use chat_wire::{ChatMessage, Source};

use crate::provider::ContextMessage;

/// Bytes per token assumed when sizing a message: low on purpose, so estimates run high (English
/// takes about four bytes a token, most other scripts two to three).
const BYTES_PER_TOKEN: usize = 3;
/// Tokens a chat template spends around each message (its role markers).
const TOKENS_PER_MESSAGE: usize = 4;

/// A conservative estimate of the tokens a message takes in a prompt, for any model: the
/// provider's tokenizer is not at hand (the embedded server counts exactly, and trims again).
pub fn estimated_tokens(text: &str) -> usize {
    text.len().div_ceil(BYTES_PER_TOKEN) + TOKENS_PER_MESSAGE
}

/// The model's context: the system prompt, then the session's recent messages up to and including
/// the one being answered (empty replies left out), the oldest dropped first until the estimate
/// fits `budget_tokens`. The system prompt and the question being answered are always kept, so
/// one oversized message costs its own answer at most, never the next question's.
pub fn build_context(
    system_prompt: &str,
    history: &[ChatMessage],
    answering: &str,
    budget_tokens: usize,
) -> Vec<ContextMessage> {
    let end = history.iter().position(|m| m.id == answering).map_or(history.len(), |i| i + 1);
    let candidates: Vec<&ChatMessage> = history[..end].iter().filter(|m| !m.msg.is_empty()).collect();
    let mut context = Vec::with_capacity(candidates.len() + 1);
    if !system_prompt.is_empty() {
        context.push(ContextMessage { role: "system".into(), content: system_prompt.into() });
    }
    let Some((question, earlier)) = candidates.split_last() else { return context };
    let mut spent = estimated_tokens(system_prompt) + estimated_tokens(&question.msg);
    let kept = earlier
        .iter()
        .rev()
        .take_while(|m| {
            spent += estimated_tokens(&m.msg);
            spent <= budget_tokens
        })
        .count();
    let turn = |m: &&ChatMessage| ContextMessage {
        role: match m.source {
            Source::User => "user".into(),
            Source::Assistant => "assistant".into(),
        },
        content: m.msg.clone(),
    };
    context.extend(earlier[earlier.len() - kept..].iter().map(turn));
    context.push(turn(question));
    context
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, source: Source, msg: &str) -> ChatMessage {
        ChatMessage { source, ..ChatMessage::question(id, msg, "") }
    }

    fn roles(context: &[ContextMessage]) -> Vec<(&str, &str)> {
        context.iter().map(|m| (m.role.as_str(), m.content.as_str())).collect()
    }

    #[test]
    fn context_ends_at_the_message_being_answered() {
        let history = vec![
            message("a", Source::User, "hi"),
            message("a.reply", Source::Assistant, "hello"),
            message("b", Source::User, "how are you?"),
            message("c", Source::User, "later"),
        ];
        let context = build_context("be nice", &history, "b", 10_000);
        assert_eq!(
            roles(&context),
            [("system", "be nice"), ("user", "hi"), ("assistant", "hello"), ("user", "how are you?")]
        );
    }

    #[test]
    fn the_oldest_messages_go_first_and_the_system_prompt_and_question_always_stay() {
        let huge = "x".repeat(8000);
        let history = vec![
            message("a", Source::User, &huge),
            message("a.reply", Source::Assistant, "too long"),
            message("b", Source::User, "short one"),
            message("b.reply", Source::Assistant, "short answer"),
            message("c", Source::User, "next?"),
        ];
        let context = build_context("be nice", &history, "c", 100);
        assert_eq!(
            roles(&context),
            [
                ("system", "be nice"),
                ("assistant", "too long"),
                ("user", "short one"),
                ("assistant", "short answer"),
                ("user", "next?")
            ]
        );
        // Nothing but the question fits: it is sent anyway, with the system prompt.
        let context = build_context("be nice", &history, "a", 10);
        assert_eq!(roles(&context), [("system", "be nice"), ("user", huge.as_str())]);
    }

    #[test]
    fn estimates_run_high() {
        // "hello world" is two tokens for GPT-4o and SmolLM2 alike.
        assert!(estimated_tokens("hello world") >= 2 + TOKENS_PER_MESSAGE);
        assert_eq!(estimated_tokens(""), TOKENS_PER_MESSAGE);
    }
}
