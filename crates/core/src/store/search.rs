//! Search: where a text appears in a session's conversations, titles and messages alike.

use std::time::Instant;

use chat_wire::{ChatMessage, ConversationId, SearchHit, SearchResults, Token};

use super::{scripts, SessionKeys, Store, StoreError};

impl Store {
    /// Where `query` appears in the session's conversations (case-insensitive): titles, then
    /// the messages of each path shown (not the versions set aside), the most recently active
    /// conversations first and each one's newest messages first, at most `MAX_SEARCH_RESULTS`
    /// hits. Each Redis call reads one page of `SEARCH_PAGE_MESSAGES` messages, however much the
    /// session holds, so a search never holds Redis up for the others; the search ends with
    /// `truncated` when it found more than it shows or when `SEARCH_TIME_BUDGET_MS` ran out
    /// before it read everything. Only messages whose text may hold the query (for a query with
    /// non-ASCII letters: its longest ASCII run) leave Redis, and each is checked here against
    /// its decoded text. `None` for an unknown or expired session.
    pub async fn search(&self, token: &Token, query: &str) -> Result<Option<SearchResults>, StoreError> {
        let started = Instant::now();
        let Some(list) = self.conversations(token).await? else { return Ok(None) };
        let keys = SessionKeys::new(token);
        // Compared with the stored JSON, where quotes, backslashes and control characters are
        // escaped. Redis's Lua lowers ASCII letters only: a query with other letters is filtered
        // there by its longest ASCII run alone, and matched here.
        let lowered = query.to_lowercase();
        let filter = if lowered.is_ascii() {
            lowered
        } else {
            lowered.split(|c: char| !c.is_ascii()).max_by_key(|run| run.len()).unwrap_or_default().to_string()
        };
        let escaped = serde_json::to_string(&filter).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let filter = &escaped[1..escaped.len() - 1];
        let needle = Lowered::new(query);
        // One more than shown, to say whether some were left out.
        let wanted = self.search.max_results + 1;
        let mut hits = Vec::new();
        let mut out_of_time = false;
        let mut conn = self.connection().await?;
        'conversations: for conversation in &list.conversations {
            let Ok(id) = ConversationId::parse(&conversation.id) else { continue };
            if needle.find(&conversation.title).is_some() {
                hits.push(SearchHit {
                    conversation: id.to_string(),
                    title: conversation.title.clone(),
                    message_id: None,
                    snippet: conversation.title.clone(),
                });
                if hits.len() >= wanted {
                    break;
                }
            }
            let thread = keys.conversation(&id);
            let mut skipped = 0;
            loop {
                if started.elapsed() >= self.search.time_budget {
                    out_of_time = true;
                    break 'conversations;
                }
                let page =
                    scripts::SearchPage { thread: &thread, query: filter, skipped, page: self.search.page_messages };
                let (read, found): (usize, Vec<String>) = page.invocation().invoke_async(&mut conn).await?;
                skipped += read;
                // A page comes oldest first.
                let messages = found.iter().rev().filter_map(|json| serde_json::from_str::<ChatMessage>(json).ok());
                for message in messages {
                    let Some(at) = needle.find(&message.msg) else { continue };
                    hits.push(SearchHit {
                        conversation: id.to_string(),
                        title: conversation.title.clone(),
                        message_id: Some(message.id),
                        snippet: snippet(&message.msg, at, needle.len()),
                    });
                    if hits.len() >= wanted {
                        break 'conversations;
                    }
                }
                if read < self.search.page_messages {
                    break;
                }
            }
        }
        let truncated = out_of_time || hits.len() > self.search.max_results;
        hits.truncate(self.search.max_results);
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
