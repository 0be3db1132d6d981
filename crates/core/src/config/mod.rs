//! Every setting of the product, read from the environment in this one place.
//!
//! Each field names its variable and default; docs/configuration.md's table lists the same.
//! Functions, the worker and the local runner all call [`Config::from_env`] and never read the
//! environment themselves.

mod env;
mod limits;
mod model;
mod redis;
mod worker;

use std::collections::HashMap;
use std::time::Duration;

use secrecy::SecretString;

pub use env::{ConfigError, Vars};
pub use limits::{RateLimits, SearchLimits};
pub use model::{ModelConfig, ModelPrice};
pub use redis::{RedisUrl, ReplicaWait};
pub use worker::WorkerConfig;

use crate::store::iam::IamSettings;

/// All settings. Construct with [`Config::from_env`] (or [`Config::from_vars`] in tests). Its
/// `Debug` hides the Redis URL's password and the model's API key (their types do).
#[derive(Debug, Clone)]
pub struct Config {
    /// `APP_ENV`: `production` (default) or `development`. Development allows any CORS origin.
    pub development: bool,
    /// `REDIS_URL`: `redis://` or `rediss://` (TLS) URL, with user and password if needed.
    pub redis_url: RedisUrl,
    /// `REDIS_CA_CERT_FILE`: a PEM file of the certificate authority a `rediss://` server's
    /// certificate is checked against, for Redis behind a private CA (public CAs need nothing).
    pub redis_ca_cert_file: Option<String>,
    /// `REDIS_WAIT_REPLICAS` (0) and `REDIS_WAIT_TIMEOUT_MS` (500): how many replicas must have a
    /// question before its `ack`, and a reply before its request is acknowledged.
    pub redis_wait: ReplicaWait,
    /// `REDIS_IAM_AUTH` (false): authenticate to ElastiCache or MemoryDB with IAM tokens.
    pub redis_iam: Option<IamSettings>,
    /// `SESSION_TTL_SECONDS` (3600): idle lifetime of a session; each message extends it.
    pub session_ttl: Duration,
    /// `MAX_NAME_CHARS` (64): longest accepted display name.
    pub max_name_chars: usize,
    /// `MAX_MESSAGE_BYTES` (8192): longest accepted message content, in UTF-8 bytes.
    pub max_message_bytes: usize,
    /// `CONTEXT_MESSAGES` (10): how many recent messages the model sees.
    pub context_messages: usize,
    /// `MAX_HISTORY_MESSAGES` (1000): stored messages per conversation; the oldest are trimmed
    /// beyond it.
    pub max_history_messages: usize,
    /// `MAX_HISTORY_BYTES` (8388608): stored bytes (message JSON) per session, all its
    /// conversations together; beyond it, the oldest messages of the least recently active
    /// conversations are trimmed at the next question (0: no limit).
    pub max_history_bytes: usize,
    /// `MAX_CONVERSATION_BYTES` (2097152): stored bytes per conversation; its oldest messages are
    /// trimmed beyond it (0: no limit).
    pub max_conversation_bytes: usize,
    /// `HISTORY_PAGE_BYTES` (1048576): the most stored bytes one `GET /chat_history` returns (the
    /// newest messages that fit, and `has_more`), well inside Lambda's 6 MB response limit.
    pub history_page_bytes: usize,
    /// `MAX_CONNECTIONS_PER_SESSION` (10): WebSocket connections one session may hold at once;
    /// the handshake of one more is refused with 429 (0: no limit).
    pub max_connections_per_session: usize,
    /// `MAX_CONVERSATIONS_PER_SESSION` (200): conversations one session may hold; creating one
    /// more is refused with `too_many_conversations` until one is deleted.
    pub max_conversations_per_session: usize,
    /// `MAX_TITLE_CHARS` (80): longest conversation title (a rename past it is refused; the
    /// question's start and the model's title are cut to it).
    pub max_title_chars: usize,
    /// `MAX_VERSIONS_PER_MESSAGE` (10): versions one place of a conversation may have (edits of
    /// a question, regenerations of a reply); one more is refused with `too_many_versions`.
    pub max_versions: usize,
    /// `MAX_INSTRUCTIONS_CHARS` (4000): longest instructions a conversation may carry.
    pub max_instructions_chars: usize,
    /// How far one `GET /search` reads.
    pub search: SearchLimits,
    /// Per-session message and per-address session creation limits.
    pub rate_limits: RateLimits,
    /// `ALLOWED_ORIGINS`: comma-separated browser origins allowed by CORS (ignored in development).
    pub allowed_origins: Vec<String>,
    /// `REQUEST_STREAM` (`chat:requests`): the Redis stream the message function appends to.
    pub request_stream: String,
    /// `REQUEST_STREAM_MAXLEN` (100000): beyond this many entries, workers trim the stream of the
    /// entries they are done with (never one not yet read or still pending).
    pub request_stream_maxlen: usize,
    /// `WORKER_GROUP` (`workers`): the stream's consumer group.
    pub worker_group: String,
    /// `REPLY_LOCK_SECONDS` (300): how long a session counts as busy if its worker vanishes.
    pub reply_lock: Duration,
    /// `WS_MANAGEMENT_ENDPOINT`: API Gateway Management API endpoint; by default derived from each
    /// WebSocket event as `https://{domainName}/{stage}`.
    pub ws_management_endpoint: Option<String>,
    /// `AWS_REGION` (Lambda sets it): the region whose `execute-api` endpoints the worker posts to.
    pub aws_region: Option<String>,
    /// `MANAGEMENT_API_TIMEOUT_MS` (5000): the longest one Management API call may take.
    pub management_timeout: Duration,
    /// `MANAGEMENT_API_RETRIES` (2): how often a call the gateway throttled or failed (429, 5xx,
    /// a broken connection) is tried again, after 25 ms, then 50 ms, ...
    pub management_retries: u32,
    /// `WORKER_FUNCTION_NAME`: the worker Lambda the message function invokes; unset when a
    /// long-running worker daemon reads the stream instead.
    pub worker_function_name: Option<String>,
    /// Model provider settings.
    pub model: ModelConfig,
    /// Worker settings.
    pub worker: WorkerConfig,
    /// Secrets Manager ARNs of secrets that override settings (read by [`Config::load`]).
    pub secrets: SecretArns,
}

/// Where the production secrets live.
#[derive(Debug, Clone, Default)]
pub struct SecretArns {
    /// `REDIS_URL_SECRET_ARN`: a secret whose value is the Redis URL (it replaces `REDIS_URL`).
    pub redis_url: Option<String>,
    /// `OPENAI_API_KEY_SECRET_ARN`: a secret whose value is the OpenAI key.
    pub openai_api_key: Option<String>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads the given variables (the environment, or a test's own map).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let config = Self::read(&Vars::new(vars))?;
        config.check_lock_outlives_a_dead_worker()?;
        Ok(config)
    }

    /// Every variable the configuration reads, IAM's included (docs/configuration.md lists them).
    pub fn variables() -> Vec<String> {
        let iam_on = [
            ("REDIS_IAM_AUTH", "true"),
            ("REDIS_IAM_CACHE_NAME", "c"),
            ("AWS_REGION", "r"),
            ("REDIS_IAM_SERVERLESS", "true"),
        ];
        let values = iam_on.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let env = Vars::new(&values);
        Self::read(&env).expect("the defaults with IAM on are a valid configuration");
        env.read()
    }

    /// No second writer for a session, ever: a session stays locked while its reply is written,
    /// and a dead worker's reply is only taken over after `WORKER_CLAIM_IDLE_MS` and the next
    /// reclaim pass. If the lock expired first, a second question could be answered while the
    /// first is still pending, and the two replies would race.
    fn check_lock_outlives_a_dead_worker(&self) -> Result<(), ConfigError> {
        let takeover = self.worker.claim_idle + self.worker.reclaim_interval;
        if self.reply_lock < takeover {
            return Err(ConfigError {
                name: "REPLY_LOCK_SECONDS",
                value: self.reply_lock.as_secs().to_string(),
                reason: format!(
                    "it must be at least WORKER_CLAIM_IDLE_MS + RECLAIM_INTERVAL_SECONDS ({} s), or a \
                     session could take a second question before a dead worker's reply is taken over",
                    takeover.as_secs_f64().ceil()
                ),
            });
        }
        Ok(())
    }

    fn read(env: &Vars) -> Result<Self, ConfigError> {
        let model = env.string("OPENAI_MODEL").unwrap_or_else(|| "gpt-4o-mini".into());
        Ok(Config {
            development: match env.string("APP_ENV").as_deref() {
                None | Some("production") => false,
                Some("development") => true,
                Some(other) => {
                    return Err(ConfigError {
                        name: "APP_ENV",
                        value: other.into(),
                        reason: "expected production or development".into(),
                    })
                }
            },
            redis_url: env.string("REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".into()).into(),
            redis_ca_cert_file: env.string("REDIS_CA_CERT_FILE"),
            redis_wait: redis::replica_wait(env)?,
            redis_iam: redis::iam_settings(env)?,
            session_ttl: env.seconds("SESSION_TTL_SECONDS", 3600)?,
            max_name_chars: env.number("MAX_NAME_CHARS", 64)?,
            max_message_bytes: env.number("MAX_MESSAGE_BYTES", 8192)?,
            context_messages: env.number("CONTEXT_MESSAGES", 10)?,
            max_history_messages: env.number("MAX_HISTORY_MESSAGES", 1000)?,
            max_history_bytes: env.number("MAX_HISTORY_BYTES", 8 * 1024 * 1024)?,
            max_conversation_bytes: env.number("MAX_CONVERSATION_BYTES", 2 * 1024 * 1024)?,
            history_page_bytes: env.number("HISTORY_PAGE_BYTES", 1024 * 1024)?.max(1),
            max_connections_per_session: env.number("MAX_CONNECTIONS_PER_SESSION", 10)?,
            max_conversations_per_session: env.number("MAX_CONVERSATIONS_PER_SESSION", 200)?.max(1),
            max_title_chars: env.number("MAX_TITLE_CHARS", 80)?.max(1),
            search: SearchLimits {
                max_results: env.number("MAX_SEARCH_RESULTS", 50)?.max(1),
                page_messages: env.number("SEARCH_PAGE_MESSAGES", 32)?.max(1),
                time_budget: Duration::from_millis(env.number("SEARCH_TIME_BUDGET_MS", 2000)?),
            },
            max_instructions_chars: env.number("MAX_INSTRUCTIONS_CHARS", 4000)?.max(1),
            max_versions: env.number("MAX_VERSIONS_PER_MESSAGE", 10)?.max(2),
            rate_limits: RateLimits {
                window: env.seconds("RATE_LIMIT_WINDOW_SECONDS", 60)?.max(Duration::from_secs(1)),
                messages_per_session: env.number("MESSAGES_PER_SESSION_PER_WINDOW", 20)?,
                sessions_per_ip: env.number("SESSIONS_PER_IP_PER_WINDOW", 20)?,
                frames_per_connection: env.number("FRAMES_PER_CONNECTION_PER_WINDOW", 60)?,
                history_reads_per_session: env.number("HISTORY_READS_PER_SESSION_PER_WINDOW", 60)?,
                searches_per_session: env.number("SEARCHES_PER_SESSION_PER_WINDOW", 30)?,
                changes_per_session: env.number("CHANGES_PER_SESSION_PER_WINDOW", 30)?,
            },
            allowed_origins: env
                .string("ALLOWED_ORIGINS")
                .map(|s| {
                    s.split(',').map(|o| o.trim().trim_end_matches('/').to_string()).filter(|o| !o.is_empty()).collect()
                })
                .unwrap_or_default(),
            request_stream: env.string("REQUEST_STREAM").unwrap_or_else(|| "chat:requests".into()),
            request_stream_maxlen: env.number("REQUEST_STREAM_MAXLEN", 100_000)?,
            worker_group: env.string("WORKER_GROUP").unwrap_or_else(|| "workers".into()),
            reply_lock: env.seconds("REPLY_LOCK_SECONDS", 300)?,
            ws_management_endpoint: env.string("WS_MANAGEMENT_ENDPOINT"),
            aws_region: env.string("AWS_REGION"),
            management_timeout: Duration::from_millis(env.number("MANAGEMENT_API_TIMEOUT_MS", 5_000)?.max(1)),
            management_retries: env.number("MANAGEMENT_API_RETRIES", 2)?,
            worker_function_name: env.string("WORKER_FUNCTION_NAME"),
            model: ModelConfig {
                base_url: env
                    .string("OPENAI_BASE_URL")
                    .unwrap_or_else(|| "https://api.openai.com/v1".into())
                    .trim_end_matches('/')
                    .to_string(),
                api_key: env.string("OPENAI_API_KEY").map(SecretString::from),
                other_models: env
                    .string("ALLOWED_MODELS")
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|name| !name.is_empty())
                    .map(str::to_string)
                    .collect(),
                model,
                system_prompt: env
                    .string("SYSTEM_PROMPT")
                    .unwrap_or_else(|| "You are a helpful, concise assistant. Answer in markdown.".into()),
                max_reply_tokens: env.number("MAX_REPLY_TOKENS", 1024)?,
                context_tokens: env.number("MODEL_CONTEXT_TOKENS", 128_000)?,
                temperature: env.optional_number("MODEL_TEMPERATURE")?,
                seed: env.optional_number("MODEL_SEED")?,
                connect_timeout: env.seconds("MODEL_CONNECT_TIMEOUT_SECONDS", 10)?,
                first_token_timeout: env.seconds("MODEL_FIRST_TOKEN_TIMEOUT_SECONDS", 60)?,
                idle_timeout: env.seconds("MODEL_IDLE_TIMEOUT_SECONDS", 30)?,
                retries: env.number("MODEL_RETRIES", 2)?,
                retry_base: Duration::from_millis(env.number("MODEL_RETRY_BASE_MS", 500)?),
                prices: model::parse_prices(env.string("MODEL_PRICES"))?,
            },
            worker: WorkerConfig {
                concurrency: env.number("WORKER_CONCURRENCY", 1024)?.max(1),
                consumer: env.string("WORKER_CONSUMER").unwrap_or_else(worker::default_consumer_name),
                claim_idle: Duration::from_millis(env.number("WORKER_CLAIM_IDLE_MS", 60_000)?),
                block: Duration::from_millis(env.number("WORKER_BLOCK_MS", 5_000)?),
                delta_interval: Duration::from_millis(env.number("DELTA_INTERVAL_MS", 100)?),
                posts_per_second: env.number("WORKER_POSTS_PER_SECOND", 2000)?.max(1),
                delta_interval_max: Duration::from_millis(env.number("DELTA_INTERVAL_MAX_MS", 1000)?),
                max_reply: env.seconds("MAX_REPLY_SECONDS", 120)?.max(Duration::from_secs(1)),
                max_deliveries: env.number("WORKER_MAX_DELIVERIES", 5)?.max(1),
                reclaim_interval: env.seconds("RECLAIM_INTERVAL_SECONDS", 60)?,
                lease: env.seconds("WORKER_LEASE_SECONDS", 10)?.max(Duration::from_secs(1)),
                linger: Duration::from_millis(env.number("WORKER_LINGER_MS", 1_000)?),
                titles: env.optional_flag("CONVERSATION_TITLES")?,
            },
            secrets: SecretArns {
                redis_url: env.string("REDIS_URL_SECRET_ARN"),
                openai_api_key: env.string("OPENAI_API_KEY_SECRET_ARN"),
            },
        })
    }

    /// Whether the worker may post a reply request's frames to `endpoint`: the configured
    /// `WS_MANAGEMENT_ENDPOINT`, or an API Gateway stage of this region
    /// (`https://{api id}.execute-api.{AWS_REGION}.amazonaws.com/{stage}`). The worker signs its
    /// posts with its own credentials, so it never sends them wherever a stream entry says.
    pub fn management_endpoint_allowed(&self, endpoint: &str) -> bool {
        if self.ws_management_endpoint.as_deref() == Some(endpoint) {
            return true;
        }
        let Some(region) = &self.aws_region else { return false };
        let Some((host, stage)) = endpoint.strip_prefix("https://").and_then(|rest| rest.split_once('/')) else {
            return false;
        };
        let Some((api_id, domain)) = host.split_once(".execute-api.") else { return false };
        let in_region = domain
            .strip_prefix(region.as_str())
            .is_some_and(|suffix| suffix == ".amazonaws.com" || suffix == ".amazonaws.com.cn");
        let word =
            |s: &str, extra: &[u8]| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b));
        in_region && word(api_id, &[]) && api_id.len() <= 32 && word(stage, b"-_") && stage.len() <= 128
    }

    /// Whether a browser origin may call the API (CORS).
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.development || self.allowed_origins.iter().any(|o| o == "*" || o == origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_reply_posts_ten_times_a_second_until_the_worker_is_busy_then_less_often() {
        let worker = Config::from_vars(&vars(&[])).unwrap().worker;
        let ms = |replies| worker.delta_interval(replies).as_millis();
        assert_eq!((ms(0), ms(1), ms(200)), (100, 100, 100), "2,000 posts/s cover 200 replies at 10/s");
        assert_eq!(ms(400), 200, "twice as many replies, half as many posts each");
        assert_eq!(ms(1_000), 500);
        assert_eq!(ms(100_000), 1000, "never wider than DELTA_INTERVAL_MAX_MS");
        let custom = Config::from_vars(&vars(&[
            ("DELTA_INTERVAL_MS", "30"),
            ("WORKER_POSTS_PER_SECOND", "100"),
            ("DELTA_INTERVAL_MAX_MS", "20"),
        ]))
        .unwrap()
        .worker;
        assert_eq!(custom.delta_interval(1_000).as_millis(), 30, "a maximum below the base leaves the base");
    }

    #[test]
    fn the_worker_posts_only_to_this_regions_api_gateway_or_the_configured_endpoint() {
        let aws = Config::from_vars(&vars(&[("AWS_REGION", "eu-west-1")])).unwrap();
        assert!(aws.management_endpoint_allowed("https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod"));
        for forged in [
            "https://abc123defg.execute-api.us-east-1.amazonaws.com/prod",
            "https://evil.example.com/prod",
            "https://abc123defg.execute-api.eu-west-1.amazonaws.com.evil.example/prod",
            "http://abc123defg.execute-api.eu-west-1.amazonaws.com/prod",
            "https://a.b.execute-api.eu-west-1.amazonaws.com/prod",
            "https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod/../x",
            "https://abc123defg.execute-api.eu-west-1.amazonaws.com/",
            "http://127.0.0.1:3000/local",
        ] {
            assert!(!aws.management_endpoint_allowed(forged), "{forged}");
        }
        let local = Config::from_vars(&vars(&[("WS_MANAGEMENT_ENDPOINT", "http://127.0.0.1:3000/local")])).unwrap();
        assert!(local.management_endpoint_allowed("http://127.0.0.1:3000/local"));
        assert!(!local.management_endpoint_allowed("http://127.0.0.1:3001/local"));
        assert!(!local.management_endpoint_allowed("https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod"));
    }

    #[test]
    fn iam_settings_and_replica_waits_are_read_and_checked() {
        let off = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!((off.redis_iam, off.redis_wait.replicas), (None, 0));
        let c = Config::from_vars(&vars(&[
            ("REDIS_IAM_AUTH", "true"),
            ("REDIS_IAM_CACHE_NAME", "chat"),
            ("AWS_REGION", "eu-west-1"),
            ("REDIS_WAIT_REPLICAS", "1"),
        ]))
        .unwrap();
        let iam = c.redis_iam.unwrap();
        assert_eq!((iam.user, iam.service, iam.serverless), (None, None, None), "left to the URL");
        assert_eq!(iam.refresh, Duration::from_secs(600));
        assert_eq!(c.redis_wait, ReplicaWait { replicas: 1, timeout: Duration::from_millis(500) });
        for (name, bad) in [
            ("REDIS_IAM_CACHE_NAME", vec![("REDIS_IAM_AUTH", "true"), ("AWS_REGION", "eu-west-1")]),
            (
                "REDIS_IAM_REFRESH_SECONDS",
                vec![("REDIS_IAM_AUTH", "true"), ("REDIS_IAM_CACHE_NAME", "c"), ("REDIS_IAM_REFRESH_SECONDS", "900")],
            ),
            ("REDIS_WAIT_TIMEOUT_MS", vec![("REDIS_WAIT_TIMEOUT_MS", "5000")]),
        ] {
            let error = Config::from_vars(&vars(&bad)).unwrap_err();
            assert_eq!(error.name, name, "{error}");
        }
    }

    #[test]
    fn the_iam_user_may_come_from_the_url_a_secret_holds() {
        // On Lambda REDIS_URL is unset: the URL, with the IAM user, is a secret read after this.
        let mut config = Config::from_vars(&vars(&[
            ("REDIS_IAM_AUTH", "true"),
            ("REDIS_IAM_CACHE_NAME", "chat"),
            ("AWS_REGION", "eu-west-1"),
        ]))
        .unwrap();
        let no_user = crate::Store::connect(&config);
        assert!(matches!(no_user, Err(crate::StoreError::Iam(_))), "no user anywhere yet");
        config.redis_url = "rediss://chatbot@clustercfg.chat.abc123.memorydb.eu-west-1.amazonaws.com:6379".into();
        assert!(crate::Store::connect(&config).is_ok());
    }

    #[test]
    fn defaults_match_docs_configuration_md() {
        let c = Config::from_vars(&HashMap::new()).unwrap();
        assert!(!c.development);
        assert_eq!(c.session_ttl, Duration::from_secs(3600));
        assert_eq!(c.context_messages, 10);
        assert_eq!(c.max_message_bytes, 8192);
        assert_eq!(c.max_name_chars, 64);
        assert_eq!(c.model.base_url, "https://api.openai.com/v1");
        assert!(c.allowed_origins.is_empty());
        assert_eq!(c.worker.titles, None, "titles: on with a provider, the embedded runner decides");
        assert!(c.worker.titles_from_model());
    }

    #[test]
    fn a_reply_lock_shorter_than_a_takeover_is_refused() {
        let err =
            Config::from_vars(&vars(&[("REPLY_LOCK_SECONDS", "100"), ("WORKER_CLAIM_IDLE_MS", "60000")])).unwrap_err();
        assert_eq!(err.name, "REPLY_LOCK_SECONDS");
        let ok = Config::from_vars(&vars(&[("REPLY_LOCK_SECONDS", "120"), ("WORKER_CLAIM_IDLE_MS", "60000")]));
        assert!(ok.is_ok());
    }

    #[test]
    fn model_prices_are_read_per_model_and_price_a_reply() {
        let c = Config::from_vars(&vars(&[("MODEL_PRICES", "gpt-4o-mini=0.15/0.60, local=0/0")])).unwrap();
        let price = c.model.price_of("gpt-4o-mini").unwrap();
        // 1,000 prompt tokens at $0.15/M and 500 completion tokens at $0.60/M: $0.00045.
        assert_eq!(price.cost_micro_usd(1000, 500), 450);
        assert_eq!(c.model.price_of("local").unwrap().cost_micro_usd(1000, 500), 0);
        assert!(c.model.price_of("gpt-4o").is_none());
        for bad in ["gpt-4o-mini", "m=1", "m=x/1", "m=1/-2", "m=1/NaN", "=1/2", "m=1/2,m=3/4"] {
            let error = Config::from_vars(&vars(&[("MODEL_PRICES", bad)])).unwrap_err();
            assert_eq!(error.name, "MODEL_PRICES", "{bad}");
        }
    }

    #[test]
    fn a_bad_number_names_its_variable() {
        let err = Config::from_vars(&vars(&[("SESSION_TTL_SECONDS", "an hour")])).unwrap_err();
        assert_eq!(err.name, "SESSION_TTL_SECONDS");
        assert!(err.to_string().contains("an hour"));
    }

    #[test]
    fn cors_is_an_allow_list_unless_development() {
        let prod = Config::from_vars(&vars(&[("ALLOWED_ORIGINS", "https://a.example, https://b.example/")])).unwrap();
        assert!(prod.origin_allowed("https://b.example"));
        assert!(!prod.origin_allowed("https://evil.example"));
        let dev = Config::from_vars(&vars(&[("APP_ENV", "development")])).unwrap();
        assert!(dev.origin_allowed("https://anything.example"));
        assert!(Config::from_vars(&vars(&[("APP_ENV", "staging")])).is_err());
    }

    #[test]
    fn secrets_never_print() {
        let c = Config::from_vars(&vars(&[
            ("OPENAI_API_KEY", "sk-secret-value"),
            ("REDIS_URL", "rediss://default:p%40ss-word@cache.example:6379/0"),
        ]))
        .unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("sk-secret-value"), "{printed}");
        assert!(!printed.contains("p%40ss-word"), "{printed}");
        assert!(printed.contains("rediss://default:<redacted>@cache.example:6379/0"), "{printed}");
        assert_eq!(format!("{:?}", RedisUrl::from("redis://127.0.0.1:6379")), "redis://127.0.0.1:6379");
    }
}
