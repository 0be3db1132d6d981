//! The model's context for a reply.

use chat_wire::{ChatMessage, Source};

use crate::provider::ContextMessage;

/// The model's context: the system prompt, then the session's recent messages up to and including
/// the one being answered (empty replies left out).
pub fn build_context(system_prompt: &str, history: &[ChatMessage], answering: &str) -> Vec<ContextMessage> {
    let end = history.iter().position(|m| m.id == answering).map_or(history.len(), |i| i + 1);
    let mut context = Vec::with_capacity(end + 1);
    if !system_prompt.is_empty() {
        context.push(ContextMessage { role: "system".into(), content: system_prompt.into() });
    }
    context.extend(history[..end].iter().filter(|m| !m.msg.is_empty()).map(|m| ContextMessage {
        role: match m.source {
            Source::User => "user".into(),
            Source::Assistant => "assistant".into(),
        },
        content: m.msg.clone(),
    }));
    context
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_wire::ReplyStatus;

    fn message(id: &str, source: Source, msg: &str) -> ChatMessage {
        ChatMessage {
            id: id.into(),
            msg: msg.into(),
            timestamp: String::new(),
            source,
            status: ReplyStatus::Done,
            reply_to: None,
            model: None,
            next_seq: None,
        }
    }

    #[test]
    fn context_ends_at_the_message_being_answered() {
        let history = vec![
            message("a", Source::User, "hi"),
            message("a.reply", Source::Assistant, "hello"),
            message("b", Source::User, "how are you?"),
            message("c", Source::User, "later"),
        ];
        let context = build_context("be nice", &history, "b");
        let roles: Vec<_> = context.iter().map(|m| (m.role.as_str(), m.content.as_str())).collect();
        assert_eq!(roles, [("system", "be nice"), ("user", "hi"), ("assistant", "hello"), ("user", "how are you?")]);
    }
}
