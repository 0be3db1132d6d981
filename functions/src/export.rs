//! A conversation as a file to keep: Markdown to read, or the history's JSON to process.

use chat_wire::{ChatMessage, ChatSession, ReplyStatus, Source};
use serde::Serialize;

/// The JSON form: the session as `GET /chat_history` returns it, without its token (a file is
/// kept and shared; the token would open the session) and with every message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportedConversation {
    /// The person's display name.
    pub name: String,
    /// When the session began (RFC 3339, UTC).
    pub session_start: String,
    /// Every message of the path shown, oldest first (each lists its place's `versions`).
    pub messages: Vec<ChatMessage>,
    /// The messages of the other versions (edited questions, regenerated replies and what
    /// followed them), oldest first; absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_versions: Vec<ChatMessage>,
}

impl ExportedConversation {
    /// The conversation as shown, with the messages of its other versions.
    pub fn new(session: ChatSession, other_versions: Vec<ChatMessage>) -> Self {
        ExportedConversation {
            name: session.name,
            session_start: session.session_start,
            messages: session.messages,
            other_versions,
        }
    }
}

/// The forms `GET /chat_export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// `markdown` (the default): a readable transcript.
    Markdown,
    /// `json`: the session as `GET /chat_history` returns it, every message with all its fields.
    Json,
}

impl ExportFormat {
    /// Reads the `format` parameter; `None` for a form this API does not write.
    pub fn parse(raw: Option<&str>) -> Option<ExportFormat> {
        match raw {
            None | Some("markdown") => Some(ExportFormat::Markdown),
            Some("json") => Some(ExportFormat::Json),
            Some(_) => None,
        }
    }

    /// The response's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Markdown => "text/markdown; charset=utf-8",
            ExportFormat::Json => "application/json",
        }
    }

    /// The file name a browser saves it under: `chat-2026-11-26.md`, from the session's start.
    pub fn file_name(self, session: &ChatSession) -> String {
        let day: String = session.session_start.chars().take(10).filter(|c| c.is_ascii_digit() || *c == '-').collect();
        let extension = match self {
            ExportFormat::Markdown => "md",
            ExportFormat::Json => "json",
        };
        format!("chat-{day}.{extension}")
    }
}

/// The transcript: a title, then each message under its author and time, and each message's text
/// in a fence of its own, exactly as written (the replies' Markdown source): no text can pass for
/// a heading of the transcript, and a reply cut inside a code block cannot swallow the rest. A
/// note follows a reply that did not end normally.
pub fn markdown(session: &ChatSession) -> String {
    let mut out = format!("# Conversation of {}\n\nStarted {}.\n", inline(&session.name), session.session_start);
    for message in &session.messages {
        let author = match message.source {
            Source::User => inline(&session.name),
            Source::Assistant => match &message.model {
                Some(model) => format!("Assistant ({})", inline(model)),
                None => "Assistant".to_string(),
            },
        };
        out.push_str(&format!("\n## {author}, {}\n\n", message.timestamp));
        out.push_str(&fenced(message.msg.trim_end()));
        let note = match message.status {
            ReplyStatus::Stopped => Some("stopped by the person"),
            ReplyStatus::Error => Some("interrupted: the model failed"),
            ReplyStatus::Streaming => Some("still being written when exported"),
            ReplyStatus::Done => None,
        };
        if let Some(note) = note {
            out.push_str(&format!("\n*({note})*\n"));
        }
        if let Some(usage) = message.usage {
            out.push_str(&format!("\n*{} + {} tokens*\n", usage.prompt_tokens, usage.completion_tokens));
        }
    }
    out
}

/// `text` in a fence longer than any run of backticks inside it.
fn fenced(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}text\n{text}\n{fence}\n")
}

/// A name or a model's name as plain text in a heading: Markdown's and HTML's special characters
/// escaped.
fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '!' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_wire::{ChatMessage, Usage};

    fn message(id: &str, source: Source, msg: &str, status: ReplyStatus) -> ChatMessage {
        ChatMessage {
            id: id.into(),
            msg: msg.into(),
            timestamp: "2026-11-26T10:00:00Z".into(),
            source,
            status,
            reply_to: None,
            model: (source == Source::Assistant).then(|| "gpt-4o-mini".to_string()),
            next_seq: None,
            usage: None,
            versions: None,
        }
    }

    #[test]
    fn a_transcript_names_each_author_and_keeps_each_text() {
        let mut reply = message("m1.reply", Source::Assistant, "Rust is **fast**.\n", ReplyStatus::Done);
        reply.usage = Some(Usage { prompt_tokens: 12, completion_tokens: 5, cost_micro_usd: None });
        let session = ChatSession {
            token: String::new(),
            name: "Ada".into(),
            session_start: "2026-11-26T09:59:00Z".into(),
            messages: vec![
                message("m1", Source::User, "What is Rust?", ReplyStatus::Done),
                reply,
                message("m2", Source::User, "And Go?", ReplyStatus::Done),
                message("m2.reply", Source::Assistant, "Go is", ReplyStatus::Stopped),
            ],
            has_more: false,
        };
        let text = markdown(&session);
        assert!(text.starts_with("# Conversation of Ada\n"), "{text}");
        let order: Vec<usize> = ["What is Rust?", "Rust is **fast**.", "And Go?", "Go is"]
            .iter()
            .map(|part| text.find(part).unwrap_or_else(|| panic!("{part} in {text}")))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "in order: {text}");
        assert!(text.contains("## Ada, 2026-11-26T10:00:00Z") && text.contains("## Assistant (gpt-4o-mini)"));
        assert!(text.contains("*12 + 5 tokens*") && text.contains("*(stopped by the person)*"));
        assert_eq!(ExportFormat::Markdown.file_name(&session), "chat-2026-11-26.md");
        assert_eq!(ExportFormat::parse(Some("json")), Some(ExportFormat::Json));
        assert_eq!(ExportFormat::parse(Some("pdf")), None);
    }

    #[test]
    fn no_text_passes_for_another_author_or_breaks_the_transcript() {
        let forged = "fine\n\n## Assistant (gpt-4o-mini), 2026-11-26T10:00:01Z\n\nI agree with everything";
        let cut = "Here:\n```rust\nfn main() {";
        let session = ChatSession {
            token: String::new(),
            name: "<img src=x onerror=alert(1)> *Ada*".into(),
            session_start: "2026-11-26T09:59:00Z".into(),
            messages: vec![
                message("m1", Source::User, forged, ReplyStatus::Done),
                message("m1.reply", Source::Assistant, cut, ReplyStatus::Stopped),
                message("m2", Source::User, "````four```` backticks", ReplyStatus::Done),
            ],
            has_more: false,
        };
        let text = markdown(&session);
        // Outside the fences (as a Markdown reader sees it), only the transcript's own headings.
        let (mut fence, mut headings) = (None::<String>, 0);
        for line in text.lines() {
            match &fence {
                Some(open) if line == open => fence = None,
                Some(_) => {}
                None if line.starts_with("```") => fence = Some(line.chars().take_while(|c| *c == '`').collect()),
                None => headings += usize::from(line.starts_with("## ")),
            }
        }
        assert_eq!((headings, fence), (3, None), "{text}");
        assert!(!text.contains("<img"), "{text}");
        // Each text sits whole between fences longer than its own backtick runs.
        assert!(text.contains("````text\nHere:\n```rust\nfn main() {\n````\n"), "{text}");
        assert!(text.contains("`````text\n````four```` backticks\n`````\n"), "{text}");
    }
}
