//! IAM authentication for ElastiCache and MemoryDB: instead of a stored password, each connection
//! authenticates as an IAM-enabled user with a short-lived token, a SigV4-presigned request
//! (`{cache}/?Action=connect&User={user}`, valid 15 minutes) signed with the function's role.
//!
//! The redis client asks [`IamCredentials`] for credentials when it opens a connection (it gets a
//! token signed that moment) and keeps listening: every `refresh` a new token arrives and each
//! live connection re-sends `AUTH` with it, well inside the 12 hours after which the service
//! drops a connection that has not re-authenticated.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings};
use aws_sigv4::sign::v4;
use futures_util::Stream;
use redis::{BasicAuth, RedisResult, StreamingCredentialsProvider};
use tokio::sync::OnceCell;

/// How long a token is valid: the services accept at most 15 minutes.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// Which IAM-authenticated service, and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamAuth {
    /// `REDIS_IAM_USER`: the IAM-enabled Redis user id (default: the user of `REDIS_URL`).
    pub user: String,
    /// `REDIS_IAM_CACHE_NAME`: the replication group, serverless cache or MemoryDB cluster name.
    pub cache_name: String,
    /// `AWS_REGION`: the region the token is signed for.
    pub region: String,
    /// `REDIS_IAM_SERVICE`: `elasticache` or `memorydb` (default: from the endpoint's name).
    pub service: String,
    /// `REDIS_IAM_SERVERLESS`: an ElastiCache Serverless cache (default: from the endpoint's name).
    pub serverless: bool,
    /// `REDIS_IAM_REFRESH_SECONDS` (600): how often a new token is signed and live connections
    /// re-authenticate; below the token's 15 minutes so a new connection never gets a stale one.
    pub refresh: Duration,
}

/// `REDIS_IAM_*` as configured. What is not set is read from the Redis URL when the store
/// connects ([`IamSettings::for_url`]): on Lambda the URL comes from Secrets Manager, after the
/// environment is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamSettings {
    /// `REDIS_IAM_USER` (default: the URL's user).
    pub user: Option<String>,
    /// `REDIS_IAM_CACHE_NAME`.
    pub cache_name: String,
    /// `AWS_REGION`.
    pub region: String,
    /// `REDIS_IAM_SERVICE` (default: `memorydb` for a `*.memorydb.*` endpoint, else `elasticache`).
    pub service: Option<String>,
    /// `REDIS_IAM_SERVERLESS` (default: whether the endpoint is `*.serverless.*`).
    pub serverless: Option<bool>,
    /// `REDIS_IAM_REFRESH_SECONDS` (600).
    pub refresh: Duration,
}

impl IamSettings {
    /// The settings completed from the Redis URL the store connects to.
    pub fn for_url(&self, url: &str) -> Result<IamAuth, IamError> {
        let rest = url.split_once("://").map_or("", |(_, rest)| rest);
        let (url_user, host) = match rest.rsplit_once('@') {
            Some((user_info, host)) => (user_info.split(':').next().filter(|u| !u.is_empty()), host),
            None => (None, rest),
        };
        let user = self
            .user
            .clone()
            .or(url_user.map(str::to_string))
            .ok_or_else(|| IamError::Settings("REDIS_IAM_USER, or a user in the Redis URL, is required".into()))?;
        if !user.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(IamError::Settings(format!("the Redis IAM user {user:?} is not letters, digits, - and _")));
        }
        Ok(IamAuth {
            user,
            cache_name: self.cache_name.clone(),
            region: self.region.clone(),
            service: self
                .service
                .clone()
                .unwrap_or_else(|| if host.contains(".memorydb.") { "memorydb" } else { "elasticache" }.into()),
            serverless: self.serverless.unwrap_or(host.contains(".serverless.")),
            refresh: self.refresh,
        })
    }
}

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// The settings and the URL together do not say who to sign in as.
    #[error("Redis IAM authentication: {0}")]
    Settings(String),
    /// No AWS credentials were found (role, environment or profile).
    #[error("no AWS credentials for Redis IAM authentication: {0}")]
    Credentials(String),
    /// Signing failed.
    #[error("could not sign the Redis IAM token: {0}")]
    Signing(String),
}

/// The `AUTH` password for `auth` signed with `credentials` at `time`: a presigned URL without
/// its `http://` scheme, as the ElastiCache and MemoryDB guides build it.
pub fn auth_token(auth: &IamAuth, credentials: &Credentials, time: SystemTime) -> Result<String, IamError> {
    let mut url = format!("http://{}/?Action=connect&User={}", auth.cache_name, auth.user);
    if auth.serverless {
        url.push_str("&ResourceType=ServerlessCache");
    }
    let identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&auth.region)
        .name(&auth.service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| IamError::Signing(e.to_string()))?
        .into();
    // The empty body's hash, not UNSIGNED-PAYLOAD: what botocore's SigV4QueryAuth (the AWS
    // guides' reference) signs, so the service computes the same signature.
    let signable = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| IamError::Signing(e.to_string()))?;
    let (instructions, _signature) =
        sign(signable, &params).map_err(|e| IamError::Signing(e.to_string()))?.into_parts();
    let mut request = http::Request::get(&url).body(()).map_err(|e| IamError::Signing(e.to_string()))?;
    instructions.apply_to_request_http1x(&mut request);
    let signed = request.uri().to_string();
    Ok(signed.strip_prefix("http://").unwrap_or(&signed).to_string())
}

/// Fresh IAM tokens for the redis client, from the default AWS credentials chain (the
/// function's role on Lambda). Cheap to clone.
#[derive(Clone)]
pub struct IamCredentials {
    auth: IamAuth,
    credentials: Arc<OnceCell<SharedCredentialsProvider>>,
}

impl IamCredentials {
    /// Tokens for `auth`; the AWS credentials chain is loaded on first use.
    pub fn new(auth: IamAuth) -> Self {
        IamCredentials { auth, credentials: Arc::new(OnceCell::new()) }
    }

    async fn fresh(&self) -> Result<BasicAuth, IamError> {
        let provider = self.credentials.get_or_try_init(credentials_chain).await?;
        let credentials = provider.provide_credentials().await.map_err(|e| IamError::Credentials(e.to_string()))?;
        let token = auth_token(&self.auth, &credentials, SystemTime::now())?;
        Ok(BasicAuth::new(self.auth.user.clone(), token))
    }
}

/// The standard AWS credentials chain (Lambda's environment).
#[cfg(feature = "aws")]
async fn credentials_chain() -> Result<SharedCredentialsProvider, IamError> {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    config.credentials_provider().ok_or_else(|| IamError::Credentials("no credentials provider".into()))
}

/// A build without the AWS SDK (the local runner) has no credentials chain to sign with.
#[cfg(not(feature = "aws"))]
async fn credentials_chain() -> Result<SharedCredentialsProvider, IamError> {
    Err(IamError::Credentials("this build has no AWS SDK (chat-core's `aws` feature)".into()))
}

impl StreamingCredentialsProvider for IamCredentials {
    /// A token now, then a new one every `refresh`.
    fn subscribe(&self) -> Pin<Box<dyn Stream<Item = RedisResult<BasicAuth>> + Send + 'static>> {
        let source = self.clone();
        Box::pin(futures_util::stream::unfold(true, move |first| {
            let source = source.clone();
            async move {
                if !first {
                    tokio::time::sleep(source.auth.refresh).await;
                }
                let credentials = source.fresh().await.map_err(|e| {
                    tracing::error!(error = %e, "no Redis IAM token");
                    redis::RedisError::from((redis::ErrorKind::AuthenticationFailed, "no IAM token", e.to_string()))
                });
                Some((credentials, false))
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(serverless: bool) -> IamAuth {
        IamAuth {
            user: "chatbot".into(),
            cache_name: "chat-cache".into(),
            region: "eu-west-1".into(),
            service: "elasticache".into(),
            serverless,
            refresh: Duration::from_secs(600),
        }
    }

    #[test]
    fn what_is_not_set_is_read_from_the_url_the_store_connects_to() {
        let settings = IamSettings {
            user: None,
            cache_name: "chat".into(),
            region: "eu-west-1".into(),
            service: None,
            serverless: None,
            refresh: Duration::from_secs(600),
        };
        let memorydb =
            settings.for_url("rediss://chatbot@clustercfg.chat.abc123.memorydb.eu-west-1.amazonaws.com:6379").unwrap();
        assert_eq!(
            (memorydb.user.as_str(), memorydb.service.as_str(), memorydb.serverless),
            ("chatbot", "memorydb", false)
        );
        let serverless = settings.for_url("rediss://app@chat-x1y2z3.serverless.euw1.cache.amazonaws.com:6379").unwrap();
        assert_eq!(
            (serverless.user.as_str(), serverless.service.as_str(), serverless.serverless),
            ("app", "elasticache", true)
        );
        assert!(
            matches!(settings.for_url("rediss://cache.example:6379"), Err(IamError::Settings(_))),
            "no user anywhere"
        );
        let named = IamSettings { user: Some("ops".into()), serverless: Some(false), ..settings.clone() };
        let resolved = named.for_url("rediss://app@chat-x1y2z3.serverless.euw1.cache.amazonaws.com:6379").unwrap();
        assert_eq!((resolved.user.as_str(), resolved.serverless), ("ops", false), "set beats the URL");
        assert!(settings.for_url("rediss://a%20b@host:6379").is_err());
    }

    #[test]
    fn a_token_is_the_presigned_connect_request_without_its_scheme() {
        let credentials =
            Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None, None, "test");
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01T00:00:00Z
        let token = auth_token(&auth(false), &credentials, time).unwrap();
        let url = split_token(&token);
        assert_eq!(url.0, "chat-cache/");
        let query = url.1;
        assert_eq!(query["Action"], "connect");
        assert_eq!(query["User"], "chatbot");
        assert_eq!(query["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(query["X-Amz-Credential"], "AKIDEXAMPLE%2F20260101%2Feu-west-1%2Felasticache%2Faws4_request");
        assert_eq!(query["X-Amz-Date"], "20260101T000000Z");
        assert_eq!(query["X-Amz-Expires"], "900");
        assert_eq!(query["X-Amz-SignedHeaders"], "host");
        // What botocore's SigV4QueryAuth (the reference the AWS guides use) signs for the same
        // credentials, request and second.
        assert_eq!(query["X-Amz-Signature"], "d38e90d2fa300943ef53a10e9de8ecaecb80698b0ba3077dc85ea5b65bd560a5");
        assert!(!query.contains_key("ResourceType"));
        // The same inputs sign to the same token; another second to another one.
        assert_eq!(token, auth_token(&auth(false), &credentials, time).unwrap());
        assert_ne!(token, auth_token(&auth(false), &credentials, time + Duration::from_secs(1)).unwrap());
    }

    #[test]
    fn serverless_caches_and_session_credentials_add_their_parameters() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session/token+x".into()),
            None,
            "test",
        );
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let token = auth_token(&auth(true), &credentials, time).unwrap();
        let (_, query) = split_token(&token);
        assert_eq!(query["ResourceType"], "ServerlessCache");
        assert_eq!(query["X-Amz-Security-Token"], "session%2Ftoken%2Bx");
        // botocore's, as above.
        assert_eq!(query["X-Amz-Signature"], "34831f9dc9e813bd98f73214aa5933c66daeea5e2c1e8f79d9632d7ec0c6bbbd");
    }

    /// `host/path?query` split into its path and (still percent-encoded) parameters.
    fn split_token(token: &str) -> (String, std::collections::HashMap<String, String>) {
        let (path, query) = token.split_once('?').unwrap();
        let params = query
            .split('&')
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        (path.to_string(), params)
    }
}
