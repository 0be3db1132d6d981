//! How to reach the model and what it may be: the provider, its key (never printed), the models a
//! conversation may choose, their prices, the context window, the timeouts and retries.

use std::time::Duration;

use secrecy::SecretString;

use super::env::ConfigError;

/// How to reach the model (any OpenAI-compatible Chat Completions server).
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// `OPENAI_BASE_URL` (`https://api.openai.com/v1`).
    pub base_url: String,
    /// `OPENAI_API_KEY`: sent as a bearer token when set; never printed.
    pub api_key: Option<SecretString>,
    /// `ALLOWED_MODELS`: models a person may choose for a conversation besides `OPENAI_MODEL`,
    /// comma-separated ([`ModelConfig::allowed_models`] puts the default first).
    pub other_models: Vec<String>,
    /// `OPENAI_MODEL` (`gpt-4o-mini`).
    pub model: String,
    /// `SYSTEM_PROMPT`: the first message of every context.
    pub system_prompt: String,
    /// `MAX_REPLY_TOKENS` (1024): `max_tokens` of each request.
    pub max_reply_tokens: u32,
    /// `MODEL_CONTEXT_TOKENS` (128000, gpt-4o-mini's window; `local` sets the embedded model's):
    /// the model's context window. The context sent leaves `MAX_REPLY_TOKENS` of it to the reply.
    pub context_tokens: u32,
    /// `MODEL_TEMPERATURE`: sent when set.
    pub temperature: Option<f32>,
    /// `MODEL_SEED`: sent when set (same seed, same prompt, temperature 0: same reply).
    pub seed: Option<u64>,
    /// `MODEL_CONNECT_TIMEOUT_SECONDS` (10).
    pub connect_timeout: Duration,
    /// `MODEL_FIRST_TOKEN_TIMEOUT_SECONDS` (60): longest wait for the reply's first text, from
    /// the request.
    pub first_token_timeout: Duration,
    /// `MODEL_IDLE_TIMEOUT_SECONDS` (30): longest silence between two chunks of a stream, after
    /// its first text.
    pub idle_timeout: Duration,
    /// `MODEL_RETRIES` (2): retries of a 429/5xx/connection failure before the first token.
    pub retries: u32,
    /// `MODEL_RETRY_BASE_MS` (500): first backoff; doubles each retry (a `Retry-After` wins).
    pub retry_base: Duration,
    /// `MODEL_PRICES` (none): US dollars per million prompt and completion tokens, per model
    /// (`gpt-4o-mini=0.15/0.60,other=1/2`): each reply's usage then carries its cost.
    pub prices: Vec<(String, ModelPrice)>,
}

/// A model's price: US dollars per million prompt tokens and per million completion tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelPrice {
    /// Per million prompt tokens.
    pub prompt: f64,
    /// Per million completion tokens.
    pub completion: f64,
}

impl ModelPrice {
    /// What `usage` costs, in millionths of a dollar (rounded to the nearest).
    pub fn cost_micro_usd(self, prompt_tokens: u64, completion_tokens: u64) -> u64 {
        (prompt_tokens as f64 * self.prompt + completion_tokens as f64 * self.completion).round() as u64
    }
}

/// Reads `MODEL_PRICES`: `model=prompt/completion` pairs, comma-separated.
pub(super) fn parse_prices(value: Option<String>) -> Result<Vec<(String, ModelPrice)>, ConfigError> {
    let Some(value) = value else { return Ok(Vec::new()) };
    let invalid = |reason: &str| ConfigError {
        name: "MODEL_PRICES",
        value: value.clone(),
        reason: format!("{reason}; expected model=prompt/completion (dollars per million tokens), comma-separated"),
    };
    let prices: Vec<(String, ModelPrice)> = value
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (model, prices) = pair.rsplit_once('=').ok_or_else(|| invalid(&format!("{pair:?} has no '='")))?;
            if model.trim().is_empty() {
                return Err(invalid(&format!("{pair:?} names no model")));
            }
            let (prompt, completion) =
                prices.split_once('/').ok_or_else(|| invalid(&format!("{prices:?} has no '/'")))?;
            let price = |text: &str| {
                text.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|p| p.is_finite() && *p >= 0.0)
                    .ok_or_else(|| invalid(&format!("{text:?} is not a price")))
            };
            Ok((model.trim().to_string(), ModelPrice { prompt: price(prompt)?, completion: price(completion)? }))
        })
        .collect::<Result<_, _>>()?;
    if let Some((model, _)) = prices.iter().enumerate().find_map(|(i, (m, _))| prices[..i].iter().find(|(o, _)| o == m))
    {
        return Err(invalid(&format!("{model:?} is priced twice")));
    }
    Ok(prices)
}

impl ModelConfig {
    /// The models a conversation may choose: the default (`OPENAI_MODEL`, whatever set it last)
    /// first and always, then `ALLOWED_MODELS`'s others.
    pub fn allowed_models(&self) -> Vec<String> {
        let mut allowed = vec![self.model.clone()];
        for name in &self.other_models {
            if !allowed.contains(name) {
                allowed.push(name.clone());
            }
        }
        allowed
    }

    /// [`ModelConfig::allowed_models`] as far as the provider serves them (`served`: its
    /// `/models`, when known); the default always.
    pub fn offered_models(&self, served: Option<&[String]>) -> Vec<String> {
        let mut offered = self.allowed_models();
        offered.retain(|name| *name == self.model || served.is_none_or(|served| served.contains(name)));
        offered
    }
}

impl ModelConfig {
    /// The price of `model`, when `MODEL_PRICES` names it.
    pub fn price_of(&self, model: &str) -> Option<ModelPrice> {
        self.prices.iter().find(|(name, _)| name == model).map(|(_, price)| *price)
    }

    /// Tokens the context sent to the model may take: the window less the reply's share (at
    /// least a quarter of the window, whatever `MAX_REPLY_TOKENS` says).
    pub fn prompt_budget(&self) -> usize {
        let window = self.context_tokens as usize;
        window.saturating_sub(self.max_reply_tokens as usize).max(window / 4)
    }
}
