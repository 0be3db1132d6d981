//! The API Gateway Management API, against AWS or the local gateway alike: posting frames to
//! WebSocket connections (`POST /@connections/{id}`, the worker) and closing them
//! (`DELETE /@connections/{id}`, the message function, for a client over its frame limit).
//!
//! Each call is one SigV4-signed HTTPS request (`aws-sigv4`, the SDK's own signer) on a pooled
//! `reqwest` client. The worker makes one call per connection per delta, so the AWS SDK's client
//! is not used here: its request orchestration cost more CPU than the post itself (42 % of the
//! local stack's instructions under load, PERFORMANCE.md), and its crate a megabyte of every
//! Lambda binary.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use chat_wire::{ConnectionId, ServerFrame, Token};

use crate::{Config, Store};

/// What happened to a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The connection received the frame.
    Sent,
    /// The connection is gone (`410 GoneException`): forget it.
    Gone,
    /// The post failed for another reason (logged); the connection is kept.
    Failed,
}

/// The longest [`broadcast`] may take: the change it announces is stored, and a slow gateway must
/// not make an answer late (the tabs then learn of it at their next list load).
pub const BROADCAST_WITHIN: Duration = Duration::from_secs(2);

/// Posts `frame` to every connection of the session `token` (every open tab of the person),
/// forgetting those the gateway reports gone; a failure is logged and changes nothing else.
/// The functions announce a conversation's change this way, and the worker a title.
pub async fn broadcast(store: &Store, api: &ManagementApi, endpoint: &str, token: &Token, frame: &ServerFrame) {
    let connections = match store.session_connections(token).await {
        Ok(connections) => connections,
        Err(error) => return tracing::warn!(error = %error, "could not read where to announce a change"),
    };
    let bytes = serde_json::to_vec(frame).expect("frames always serialize");
    let posts = connections.iter().map(|id| {
        let bytes = &bytes;
        async move {
            if api.post(endpoint, id, bytes).await == Delivery::Gone {
                if let Err(error) = store.unbind_connection(id, Some(token)).await {
                    // The mapping expires with the session; until then posts to it answer Gone.
                    tracing::warn!(error = %error, "could not forget a gone connection");
                }
            }
        }
    });
    if tokio::time::timeout(BROADCAST_WITHIN, futures_util::future::join_all(posts)).await.is_err() {
        tracing::warn!("announcing a change took too long; left to the tabs' next load");
    }
}

/// Credentials are fetched again this long before they expire (a role's expire hourly).
const CREDENTIALS_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The service name API Gateway's Management API is signed for.
const SIGNING_SERVICE: &str = "execute-api";

/// The Management API client. Clones share one connection pool and one set of credentials.
#[derive(Clone)]
pub struct ManagementApi {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    region: String,
    credentials: CredentialSource,
    retries: u32,
    /// Fixed local credentials, for the local gateway: nothing secret is signed.
    local: bool,
}

enum CredentialSource {
    Fixed(Credentials),
    /// The standard AWS chain (Lambda's environment), remembered until shortly before expiry.
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    Chain {
        provider: SharedCredentialsProvider,
        current: Mutex<Option<Credentials>>,
    },
}

/// Why one call failed.
enum CallError {
    /// A status worth trying again (429 throttling, 5xx) or a broken connection.
    Transient(String),
    /// Anything else: trying again would fail the same way.
    Final(String),
}

impl ManagementApi {
    /// Credentials and region from the standard AWS chain (Lambda's environment).
    #[cfg(feature = "aws")]
    pub async fn from_env(config: &Config) -> Self {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let region = sdk.region().map(|r| r.to_string()).or_else(|| config.aws_region.clone()).unwrap_or_default();
        let credentials = match sdk.credentials_provider() {
            Some(provider) => CredentialSource::Chain { provider, current: Mutex::new(None) },
            // Every call then fails with a logged error, as the SDK's would.
            None => CredentialSource::Fixed(Credentials::new("", "", None, None, "none")),
        };
        Self::build(config, region, credentials, false)
    }

    /// For the local gateway, which checks no signature: fixed credentials, no AWS look-ups. The
    /// posts are signed all the same, so the local stack pays what a worker on AWS pays.
    pub fn local(config: &Config) -> Self {
        let credentials = CredentialSource::Fixed(Credentials::new("local", "local", None, None, "local-gateway"));
        Self::build(config, "us-east-1".into(), credentials, true)
    }

    fn build(config: &Config, region: String, credentials: CredentialSource, local: bool) -> Self {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(config.management_timeout)
            .connect_timeout(config.management_timeout)
            .tcp_nodelay(true)
            .build()
            .expect("the TLS back end is installed");
        ManagementApi {
            inner: Arc::new(Inner { http, region, credentials, retries: config.management_retries, local }),
        }
    }

    /// Whether posts may go to `endpoint`. With real credentials, only where
    /// [`Config::management_endpoint_allowed`] says (they sign every request); the local client
    /// signs with fixed dummy credentials, and posts to a gateway on this machine's loopback.
    pub fn accepts(&self, config: &Config, endpoint: &str) -> bool {
        config.management_endpoint_allowed(endpoint) || (self.inner.local && is_loopback_http(endpoint))
    }

    /// Closes one connection; the client sees its socket close, and `$disconnect` runs.
    pub async fn close(&self, endpoint: &str, connection_id: &ConnectionId) -> Delivery {
        self.call(http::Method::DELETE, endpoint, connection_id, &[], "closing a connection failed").await
    }

    /// Asks whether one connection is still open (`GET @connections/{id}`): [`Delivery::Gone`]
    /// for one whose `$disconnect` never came (API Gateway sends it best-effort).
    pub async fn describe(&self, endpoint: &str, connection_id: &ConnectionId) -> Delivery {
        self.call(http::Method::GET, endpoint, connection_id, &[], "describing a connection failed").await
    }

    /// Posts one frame to one connection.
    pub async fn post(&self, endpoint: &str, connection_id: &ConnectionId, frame: &[u8]) -> Delivery {
        self.call(http::Method::POST, endpoint, connection_id, frame, "post to connection failed").await
    }

    async fn call(
        &self,
        method: http::Method,
        endpoint: &str,
        connection_id: &ConnectionId,
        body: &[u8],
        failed: &'static str,
    ) -> Delivery {
        let url = connection_url(endpoint, connection_id);
        let mut attempt = 0;
        loop {
            let error = match self.attempt(&method, &url, body).await {
                Ok(reqwest::StatusCode::GONE) => return Delivery::Gone,
                Ok(status) if status.is_success() => return Delivery::Sent,
                Ok(status) if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() => {
                    CallError::Transient(status.to_string())
                }
                Ok(status) => CallError::Final(status.to_string()),
                Err(error) => error,
            };
            match error {
                CallError::Transient(_) if attempt < self.inner.retries => {
                    tokio::time::sleep(Duration::from_millis(25 << attempt.min(6))).await;
                    attempt += 1;
                }
                CallError::Transient(error) | CallError::Final(error) => {
                    tracing::warn!(connection_id = %connection_id, attempts = attempt + 1, error, "{failed}");
                    return Delivery::Failed;
                }
            }
        }
    }

    async fn attempt(&self, method: &http::Method, url: &str, body: &[u8]) -> Result<reqwest::StatusCode, CallError> {
        let credentials = self.credentials().await?;
        let request = signed_request(method, url, body, &credentials, &self.inner.region, SystemTime::now())
            .map_err(CallError::Final)?;
        let request = reqwest::Request::try_from(request).map_err(|e| CallError::Final(e.to_string()))?;
        match self.inner.http.execute(request).await {
            Ok(response) => Ok(response.status()),
            Err(error) => Err(CallError::Transient(error.to_string())),
        }
    }

    async fn credentials(&self) -> Result<Credentials, CallError> {
        let (provider, current) = match &self.inner.credentials {
            CredentialSource::Fixed(credentials) => return Ok(credentials.clone()),
            CredentialSource::Chain { provider, current } => (provider, current),
        };
        let valid_for =
            |c: &Credentials, margin: Duration| c.expiry().is_none_or(|expiry| expiry > SystemTime::now() + margin);
        let cached = current.lock().expect("credentials lock").clone();
        if let Some(credentials) = cached.as_ref().filter(|c| valid_for(c, CREDENTIALS_REFRESH_MARGIN)) {
            return Ok(credentials.clone());
        }
        match provider.provide_credentials().await {
            Ok(credentials) => {
                *current.lock().expect("credentials lock") = Some(credentials.clone());
                Ok(credentials)
            }
            // Refreshed early: until they expire, the credentials in hand still sign.
            Err(_) if cached.as_ref().is_some_and(|c| valid_for(c, Duration::ZERO)) => {
                Ok(cached.expect("checked just above"))
            }
            Err(error) => Err(CallError::Transient(error.to_string())),
        }
    }
}

/// `{endpoint}/@connections/{id}`, the id percent-encoded (API Gateway's ids may hold `=`, `+`, `/`).
fn connection_url(endpoint: &str, connection_id: &ConnectionId) -> String {
    let mut url = format!("{}/@connections/", endpoint.trim_end_matches('/'));
    for byte in connection_id.as_str().bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            url.push(byte as char);
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url
}

/// The request, signed with SigV4 for `execute-api` in `region` at `time` (public for the
/// bench, which times it).
pub fn signed_request(
    method: &http::Method,
    url: &str,
    body: &[u8],
    credentials: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<http::Request<Vec<u8>>, String> {
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable = SignableRequest::new(method.as_str(), url, std::iter::empty(), SignableBody::Bytes(body))
        .map_err(|e| e.to_string())?;
    let (instructions, _signature) = sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
    let mut request =
        http::Request::builder().method(method.clone()).uri(url).body(body.to_vec()).map_err(|e| e.to_string())?;
    instructions.apply_to_request_http1x(&mut request);
    Ok(request)
}

/// `http://127.0.0.1:…/…`, `http://localhost:…/…` or `http://[::1]:…/…`.
fn is_loopback_http(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else { return false };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return false; // user-info: the host is what follows it
    }
    let host = match authority.strip_prefix("[::1]") {
        Some(port) => return port.is_empty() || port.starts_with(':'),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host == "127.0.0.1" || host == "localhost"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_vars(&[("AWS_REGION".to_string(), "eu-west-1".to_string())].into()).unwrap()
    }

    #[test]
    fn the_local_client_posts_only_to_loopback_and_the_aws_one_only_where_config_allows() {
        let config = config();
        let local = ManagementApi::local(&config);
        assert!(local.accepts(&config, "http://127.0.0.1:3000/local"));
        assert!(local.accepts(&config, "http://[::1]:3000/local"));
        assert!(!local.accepts(&config, "http://127.0.0.1.evil.example/local"));
        assert!(!local.accepts(&config, "http://10.0.0.7:3000/local"));
        assert!(!local.accepts(&config, "http://127.0.0.1:80@evil.example/local"));
        assert!(!local.accepts(&config, "http://[::1]:@evil.example/local"));
        let aws = ManagementApi::build(
            &config,
            "eu-west-1".into(),
            CredentialSource::Fixed(Credentials::new("a", "b", None, None, "test")),
            false,
        );
        assert!(!aws.accepts(&config, "http://127.0.0.1:3000/local"));
        assert!(aws.accepts(&config, "https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod"));
    }

    #[test]
    fn a_connection_id_is_percent_encoded_in_the_path() {
        let id = ConnectionId::parse("L0SM9cOFvHcCIhw=").unwrap();
        assert_eq!(
            connection_url("https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod/", &id),
            "https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod/@connections/L0SM9cOFvHcCIhw%3D"
        );
    }

    /// The signature AWS's own SigV4 implementation (botocore, `SigV4Auth` for `execute-api`)
    /// computes for the same request, credentials and time; python3 -c with botocore printed it.
    #[test]
    fn a_post_is_signed_as_botocore_signs_it() {
        let credentials =
            Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None, None, "test");
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_115_200); // 2025-11-26T00:00:00Z
        let url = "https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod/@connections/L0SM9cOFvHcCIhw%3D";
        let request =
            signed_request(&http::Method::POST, url, br#"{"type":"delta"}"#, &credentials, "eu-west-1", time).unwrap();
        assert_eq!(request.headers()["x-amz-date"], "20251126T000000Z");
        let authorization = request.headers()["authorization"].to_str().unwrap();
        assert!(authorization.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251126/eu-west-1/execute-api/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature="
        ));
        assert_eq!(authorization.rsplit_once("Signature=").unwrap().1, BOTOCORE_SIGNATURE);
    }

    const BOTOCORE_SIGNATURE: &str = "53804c88cc09d8d630d55c2950a03ed2557f79054d0845336470aab0bb04aafb";
}
