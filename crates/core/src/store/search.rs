//! Search: where a text appears in a session's conversations, titles and messages alike.

use chat_wire::{ChatMessage, ConversationId, SearchHit, SearchResults, Token};

use super::{scripts, SessionKeys, Store, StoreError};

impl Store {
    /// Where `query` appears in the session's conversations (case-insensitive): titles, then
    /// the messages of each path shown (not the versions set aside), the most recently active
    /// conversations first, at most `MAX_SEARCH_RESULTS` hits. One script reads every
    /// conversation (one round trip, one slot); only messages whose text holds the query (or,
    /// for one with non-ASCII letters, its longest ASCII run) leave Redis. `None` for an unknown
    /// or expired session.
    pub async fn search(&self, token: &Token, query: &str) -> Result<Option<SearchResults>, StoreError> {
        let Some(list) = self.conversations(token).await? else { return Ok(None) };
        let keys = SessionKeys::new(token);
        let ids: Vec<ConversationId> =
            list.conversations.iter().filter_map(|c| ConversationId::parse(&c.id).ok()).collect();
        let conversations: Vec<_> = ids.iter().map(|id| keys.conversation(id)).collect();
        // Compared with the stored JSON, where quotes, backslashes and control characters are
        // escaped. Redis's Lua lowers ASCII letters only: a query with other letters is filtered
        // there by its longest ASCII run alone, with no budget, and matched here.
        let lowered = query.to_lowercase();
        let (filter, wanted) = if lowered.is_ascii() {
            // One more than shown, to say whether some were left out.
            (lowered, self.max_search_results + 1)
        } else {
            let runs = lowered.split(|c: char| !c.is_ascii());
            (runs.max_by_key(|run| run.len()).unwrap_or_default().to_string(), 0)
        };
        let escaped = serde_json::to_string(&filter).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let call =
            scripts::Search { conversations: &conversations, query: &escaped[1..escaped.len() - 1], budget: wanted };
        let mut conn = self.connection().await?;
        let found: Vec<(String, Vec<String>)> = call.invocation().invoke_async(&mut conn).await?;
        let needle = Lowered::new(query);
        let mut hits = Vec::new();
        for (id, (title, messages)) in ids.iter().zip(found) {
            if needle.find(&title).is_some() {
                hits.push(SearchHit {
                    conversation: id.to_string(),
                    title: title.clone(),
                    message_id: None,
                    snippet: title.clone(),
                });
            }
            let mut messages: Vec<ChatMessage> =
                messages.iter().filter_map(|json| serde_json::from_str(json).ok()).collect();
            messages.sort_by(|a, b| b.timestamp.cmp(&a.timestamp));
            for message in messages {
                let Some(at) = needle.find(&message.msg) else { continue };
                hits.push(SearchHit {
                    conversation: id.to_string(),
                    title: title.clone(),
                    message_id: Some(message.id),
                    snippet: snippet(&message.msg, at, needle.len()),
                });
            }
        }
        let truncated = hits.len() > self.max_search_results;
        hits.truncate(self.max_search_results);
        Ok(Some(SearchResults { query: query.to_string(), hits, truncated }))
    }
}

/// A searched text, compared a character at a time in lower case.
struct Lowered(Vec<char>);

impl Lowered {
    fn new(text: &str) -> Self {
        Lowered(text.chars().map(lower).collect())
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    /// The character index of the first place `text` holds this, if any.
    fn find(&self, text: &str) -> Option<usize> {
        let haystack: Vec<char> = text.chars().map(lower).collect();
        if self.0.is_empty() || haystack.len() < self.0.len() {
            return None;
        }
        haystack.windows(self.0.len()).position(|window| window == self.0.as_slice())
    }
}

fn lower(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

/// About 120 characters of `text` around the `len` characters at `at`, on one line.
fn snippet(text: &str, at: usize, len: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let start = at.saturating_sub(50);
    let end = (at + len + 70).min(chars.len());
    let inner: String = chars[start..end].iter().map(|&c| if c.is_whitespace() { ' ' } else { c }).collect();
    format!("{}{}{}", if start > 0 { "…" } else { "" }, inner.trim(), if end < chars.len() { "…" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_ignores_case_and_shows_the_text_around_a_hit() {
        let needle = Lowered::new("Ärger");
        assert_eq!(needle.find("Viel ärger heute"), Some(5));
        assert_eq!(needle.find("nothing"), None);
        let text = format!("{}needle{}", "a".repeat(100), "b".repeat(100));
        let shown = snippet(&text, 100, 6);
        assert!(shown.starts_with('…') && shown.ends_with('…') && shown.contains("needle"), "{shown}");
        assert_eq!(snippet("short\nneedle here", 6, 6), "short needle here");
    }
}
