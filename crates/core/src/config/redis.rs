//! Where Redis is and how it is reached: its URL (whose password never prints), a private CA,
//! `WAIT` for replicas, IAM authentication.

use std::time::Duration;

use super::env::{ConfigError, Vars};
use crate::store::iam::IamSettings;

/// `REDIS_URL` (or its secret's value): `redis://` or `rediss://`, with user and password if
/// needed. Its `Debug` shows the URL with the password replaced; it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The URL, to connect with.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for RedisUrl {
    fn from(url: String) -> Self {
        RedisUrl(url)
    }
}

impl From<&str> for RedisUrl {
    fn from(url: &str) -> Self {
        RedisUrl(url.to_string())
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url_password(&self.0))
    }
}

/// A URL with the password of its user-info part replaced: `redis://user:<redacted>@host:6379`.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "<unparsed url>".into() };
    match rest.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split_once(':').map_or(user_info, |(user, _)| user);
            format!("{scheme}://{user}:<redacted>@{host}")
        }
        None => url.to_string(),
    }
}

/// Redis's `WAIT` after the writes nothing may lose: with `replicas` 0 (the default) nothing waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaWait {
    /// `REDIS_WAIT_REPLICAS` (0): replicas that must confirm a write.
    pub replicas: u32,
    /// `REDIS_WAIT_TIMEOUT_MS` (500): how long to wait for them before answering `unavailable`.
    pub timeout: Duration,
}

/// `REDIS_IAM_*`: IAM authentication when `REDIS_IAM_AUTH` is true. The user, the service and
/// whether the cache is serverless may be left to the Redis URL, which is only known once the
/// secrets are read ([`IamSettings::for_url`], when the store connects).
pub(super) fn iam_settings(env: &Vars) -> Result<Option<IamSettings>, ConfigError> {
    if !env.flag("REDIS_IAM_AUTH", false)? {
        return Ok(None);
    }
    let required = |name: &'static str| {
        env.string(name).ok_or_else(|| ConfigError {
            name,
            value: String::new(),
            reason: "required when REDIS_IAM_AUTH=true".into(),
        })
    };
    let refresh = env.seconds("REDIS_IAM_REFRESH_SECONDS", 600)?;
    if refresh.is_zero() || refresh >= crate::store::iam::TOKEN_LIFETIME {
        return Err(ConfigError {
            name: "REDIS_IAM_REFRESH_SECONDS",
            value: refresh.as_secs().to_string(),
            reason: "must be between 1 and 899: a token is valid for 900 s".into(),
        });
    }
    Ok(Some(IamSettings {
        user: env.string("REDIS_IAM_USER"),
        cache_name: required("REDIS_IAM_CACHE_NAME")?,
        region: required("AWS_REGION")?,
        service: env.string("REDIS_IAM_SERVICE"),
        serverless: env.string("REDIS_IAM_SERVERLESS").map(|_| env.flag("REDIS_IAM_SERVERLESS", false)).transpose()?,
        refresh,
    }))
}

/// `REDIS_WAIT_*`. A wait must end inside a store command's 5 s response timeout, or every
/// question would time out instead of hearing from its replicas.
pub(super) fn replica_wait(env: &Vars) -> Result<ReplicaWait, ConfigError> {
    let timeout_ms: u64 = env.number("REDIS_WAIT_TIMEOUT_MS", 500)?;
    if !(1..5_000).contains(&timeout_ms) {
        return Err(ConfigError {
            name: "REDIS_WAIT_TIMEOUT_MS",
            value: timeout_ms.to_string(),
            reason: "must be between 1 and 4999 (a store command times out after 5 s)".into(),
        });
    }
    Ok(ReplicaWait { replicas: env.number("REDIS_WAIT_REPLICAS", 0)?, timeout: Duration::from_millis(timeout_ms) })
}
