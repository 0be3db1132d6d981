//! A session's conversations: the list (most recently active first), creating, titling and
//! deleting one, and keeping them all alive as long as the session.
//!
//! Every session has `main`, its first conversation, which a client that knows nothing of
//! conversations uses without naming it; the others are created on request. The session's
//! "current" conversation, for such clients, is the most recently active one.

use chat_wire::{Conversation, ConversationId, ConversationList, SearchHit, SearchResults, TitleSource, Token};
use redis::AsyncCommands;

use super::lua::{CONFIGURE_CONVERSATION, CREATE_CONVERSATION, DELETE_CONVERSATION, SEARCH, TITLE_CONVERSATION};
use super::{keys, now_rfc3339, Refusal, SessionKeys, Step, Store, StoreError, Write};

/// What a conversation may carry of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// The model it is answered by.
    Model,
    /// The system prompt it is answered with.
    Instructions,
}

/// A conversation's meta hash as read: title, who wrote it, creation.
type Meta = (Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);
const META_FIELDS: [&str; 5] = ["title", "titled_by", "created", "model", "instructions"];

impl Store {
    /// The session's conversations, most recently active first; `None` for an unknown or expired
    /// session.
    pub async fn conversations(&self, token: &Token) -> Result<Option<ConversationList>, StoreError> {
        let keys = SessionKeys::new(token);
        let mut conn = self.connection().await?;
        let session_start: Option<String> = conn.hget(&keys.session, "session_start").await?;
        let Some(session_start) = session_start else { return Ok(None) };
        let listed: Vec<(String, f64)> = conn.zrevrange_withscores(&keys.convs, 0, -1).await?;
        let mut listed: Vec<(ConversationId, i64)> = listed
            .into_iter()
            .filter_map(|(id, score)| ConversationId::parse(&id).ok().map(|id| (id, score as i64)))
            .collect();
        if listed.is_empty() {
            // A session from before conversations, or one whose every conversation was deleted:
            // `main` stands, as it always does.
            listed.push((ConversationId::main(), rfc3339_millis(&session_start)));
        }
        let mut pipe = redis::pipe();
        for (id, _) in &listed {
            pipe.cmd("HMGET").arg(keys.conversation(id).meta).arg(&META_FIELDS[..]);
        }
        let metas: Vec<Meta> = pipe.query_async(&mut conn).await?;
        let conversations: Vec<Conversation> = listed
            .iter()
            .zip(metas)
            .map(|((id, activity), meta)| summary(id, *activity, meta, &session_start))
            .collect();
        let current = conversations[0].id.clone();
        Ok(Some(ConversationList { current, conversations }))
    }

    /// One conversation of the session, or `None` if the session or the conversation is gone.
    pub async fn conversation(&self, token: &Token, id: &ConversationId) -> Result<Option<Conversation>, StoreError> {
        let keys = SessionKeys::new(token);
        let mut conn = self.connection().await?;
        let (session_start, activity): (Option<String>, Option<f64>) = redis::pipe()
            .hget(&keys.session, "session_start")
            .zscore(&keys.convs, id.as_str())
            .query_async(&mut conn)
            .await?;
        let Some(session_start) = session_start else { return Ok(None) };
        let activity = match activity {
            Some(score) => score as i64,
            None if id.is_main() => rfc3339_millis(&session_start),
            None => return Ok(None),
        };
        let meta: Meta =
            redis::cmd("HMGET").arg(keys.conversation(id).meta).arg(&META_FIELDS[..]).query_async(&mut conn).await?;
        Ok(Some(summary(id, activity, meta, &session_start)))
    }

    /// The conversation a client that names none acts on: the most recently active.
    pub async fn current_conversation(&self, token: &Token) -> Result<ConversationId, StoreError> {
        let mut conn = self.connection().await?;
        let top: Vec<String> = conn.zrevrange(SessionKeys::new(token).convs, 0, 0).await?;
        Ok(top.first().and_then(|id| ConversationId::parse(id).ok()).unwrap_or_else(ConversationId::main))
    }

    /// Adds conversation `id` to the session, as its most recently active. Creating an id that
    /// exists answers it as it stands (a client's retry). Refused with
    /// [`Refusal::TooManyConversations`] at `MAX_CONVERSATIONS_PER_SESSION`.
    #[tracing::instrument(skip_all, fields(conversation = %id))]
    pub async fn create_conversation(
        &self,
        token: &Token,
        id: &ConversationId,
    ) -> Result<Step<Conversation>, StoreError> {
        let keys = SessionKeys::new(token);
        let mut conn = self.connection().await?;
        let mut call = CREATE_CONVERSATION.prepare_invoke();
        call.key(&keys.session)
            .key(&keys.convs)
            .key(keys.conversation(id).meta)
            .arg(id.as_str())
            .arg(now_millis())
            .arg(now_rfc3339())
            .arg(self.session_ttl.as_secs())
            .arg(self.max_conversations);
        let status: String = self.write_replicated(&mut conn, Write::Script(&call)).await?;
        match status.as_str() {
            "created" | "exists" => {}
            "full" => return Ok(Err(Refusal::TooManyConversations)),
            other => return Ok(Err(Refusal::from_status("create_conversation", other, 0)?)),
        }
        match self.conversation(token, id).await? {
            Some(conversation) => Ok(Ok(conversation)),
            // Deleted (or the session ended) the moment after.
            None => Ok(Err(Refusal::ConversationDeleted)),
        }
    }

    /// Titles a conversation: the person's title always, the model's only over the question's
    /// start. Answers the conversation as it now stands ([`Refusal::ConversationDeleted`] if it is
    /// gone).
    pub async fn title_conversation(
        &self,
        token: &Token,
        id: &ConversationId,
        title: &str,
        by: TitleSource,
    ) -> Result<Step<Conversation>, StoreError> {
        let keys = SessionKeys::new(token);
        let by = match by {
            TitleSource::Person => "person",
            TitleSource::Model => "model",
            other => return Err(StoreError::Corrupt(format!("a title cannot be set as {other:?}"))),
        };
        let mut conn = self.connection().await?;
        let mut call = TITLE_CONVERSATION.prepare_invoke();
        call.key(&keys.session)
            .key(&keys.convs)
            .key(keys.conversation(id).meta)
            .arg(id.as_str())
            .arg(title)
            .arg(by)
            .arg(now_millis())
            .arg(self.session_ttl.as_secs());
        let status: String = self.write_replicated(&mut conn, Write::Script(&call)).await?;
        match status.as_str() {
            "titled" | "kept" => {}
            other => return Ok(Err(Refusal::from_status("title_conversation", other, 0)?)),
        }
        Ok(self.conversation(token, id).await?.ok_or(Refusal::ConversationDeleted))
    }

    /// Sets a conversation's `model` or `instructions` (`""`: back to the deployment's).
    /// Answers the conversation as it now stands ([`Refusal::ConversationDeleted`] if it is gone).
    pub async fn configure_conversation(
        &self,
        token: &Token,
        id: &ConversationId,
        field: Setting,
        value: &str,
    ) -> Result<Step<Conversation>, StoreError> {
        let keys = SessionKeys::new(token);
        let mut conn = self.connection().await?;
        let mut call = CONFIGURE_CONVERSATION.prepare_invoke();
        call.key(&keys.session)
            .key(&keys.convs)
            .key(keys.conversation(id).meta)
            .arg(id.as_str())
            .arg(match field {
                Setting::Model => "model",
                Setting::Instructions => "instructions",
            })
            .arg(value)
            .arg(self.session_ttl.as_secs());
        let status: String = self.write_replicated(&mut conn, Write::Script(&call)).await?;
        if status != "set" {
            return Ok(Err(Refusal::from_status("configure_conversation", &status, 0)?));
        }
        Ok(self.conversation(token, id).await?.ok_or(Refusal::ConversationDeleted))
    }

    /// Deletes a conversation: it leaves the list, its messages and replies in progress go at
    /// once (a worker writing one stops at its next delta). Deleting `main` empties it.
    #[tracing::instrument(skip_all, fields(conversation = %id))]
    pub async fn delete_conversation(&self, token: &Token, id: &ConversationId) -> Result<Step<()>, StoreError> {
        let keys = SessionKeys::new(token);
        let conversation = keys.conversation(id);
        let mut call = DELETE_CONVERSATION.prepare_invoke();
        call.key(&keys.session).key(&keys.convs);
        for key in conversation.lasting() {
            call.key(key);
        }
        call.key(&conversation.lock).key(&conversation.stop).key(&conversation.queued);
        for log in self.reply_logs(token, id).await? {
            call.key(log);
        }
        call.arg(id.as_str());
        let mut conn = self.connection().await?;
        let status: String = self.write_replicated(&mut conn, Write::Script(&call)).await?;
        match status.as_str() {
            "deleted" => Ok(Ok(())),
            other => Ok(Err(Refusal::from_status("delete_conversation", other, 0)?)),
        }
    }

    /// Extends the list and every conversation of the session to the session's lifetime: a
    /// question, a regeneration or a reply in one keeps the others alive. One round trip for the
    /// list, one pipeline for the expiries.
    pub async fn extend_conversations(&self, token: &Token) -> Result<(), StoreError> {
        let keys = SessionKeys::new(token);
        let mut conn = self.connection().await?;
        let ids: Vec<String> = conn.zrange(&keys.convs, 0, -1).await?;
        let ttl = self.session_ttl.as_secs() as i64;
        let mut pipe = redis::pipe();
        pipe.expire(&keys.convs, ttl).ignore();
        for id in ids.iter().filter_map(|id| ConversationId::parse(id).ok()) {
            for key in keys.conversation(&id).lasting() {
                pipe.expire(key, ttl).ignore();
            }
        }
        let () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

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
        let mut call = SEARCH.prepare_invoke();
        for id in &ids {
            let conversation = keys.conversation(id);
            call.key(conversation.meta).key(conversation.order).key(conversation.messages);
        }
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
        call.arg(&escaped[1..escaped.len() - 1]).arg(wanted);
        let mut conn = self.connection().await?;
        let found: Vec<(String, Vec<String>)> = call.invoke_async(&mut conn).await?;
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
            let mut messages: Vec<chat_wire::ChatMessage> =
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

    /// Records the models the provider serves, for an hour (workers list them as they start).
    pub async fn record_provider_models(&self, models: &[String]) -> Result<(), StoreError> {
        let json = serde_json::to_string(models).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut conn = self.connection().await?;
        let () = conn.set_ex(keys::PROVIDER_MODELS, json, 3600).await?;
        Ok(())
    }

    /// The models the provider serves, as a worker last listed them; `None` when none has lately.
    pub async fn provider_models(&self) -> Result<Option<Vec<String>>, StoreError> {
        let mut conn = self.connection().await?;
        let json: Option<String> = conn.get(keys::PROVIDER_MODELS).await?;
        Ok(json.and_then(|json| serde_json::from_str(&json).ok()))
    }

    /// The session's conversation ids, `main` included even when unlisted.
    pub(super) async fn conversation_ids(&self, token: &Token) -> Result<Vec<ConversationId>, StoreError> {
        let mut conn = self.connection().await?;
        let listed: Vec<String> = conn.zrange(SessionKeys::new(token).convs, 0, -1).await?;
        let mut ids: Vec<ConversationId> = listed.iter().filter_map(|id| ConversationId::parse(id).ok()).collect();
        if !ids.iter().any(ConversationId::is_main) {
            ids.push(ConversationId::main());
        }
        Ok(ids)
    }
}

/// A conversation's summary from its listing and meta hash.
fn summary(id: &ConversationId, activity_ms: i64, meta: Meta, session_start: &str) -> Conversation {
    let (title, titled_by, created, model, instructions) = meta;
    let titled_by = match titled_by.as_deref() {
        Some("question") => TitleSource::Question,
        Some("model") => TitleSource::Model,
        Some("person") => TitleSource::Person,
        _ => TitleSource::None,
    };
    Conversation {
        id: id.to_string(),
        title: title.unwrap_or_default(),
        titled_by,
        created: created.unwrap_or_else(|| session_start.to_string()),
        last_activity: millis_rfc3339(activity_ms),
        model: model.filter(|m| !m.is_empty()),
        instructions: instructions.filter(|i| !i.is_empty()),
    }
}

/// A title from a text: its words on one line, cut to `max_chars` characters at a word's end
/// where one is near (with `…` when cut).
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

/// Now, in milliseconds since the epoch (a conversation's activity score).
pub(super) fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn millis_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn rfc3339_millis(time: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(time).map(|t| t.timestamp_millis()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_one_line_cut_at_a_word() {
        assert_eq!(title_from("  What is\n Rust?  ", 80), "What is Rust?");
        assert_eq!(title_from("How do lifetimes work in async Rust code", 20), "How do lifetimes…");
        assert_eq!(title_from("Plan a trip to Oslo in winter", 20), "Plan a trip to Oslo…");
        assert_eq!(title_from("Supercalifragilisticexpialidocious", 10), "Supercali…");
        assert!(title_from(&"é".repeat(100), 80).chars().count() <= 80);
        assert_eq!(title_from("", 80), "");
    }

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

    #[test]
    fn times_round_trip_through_milliseconds() {
        assert_eq!(millis_rfc3339(rfc3339_millis("2026-11-24T20:15:03.123Z")), "2026-11-24T20:15:03.123Z");
    }
}
