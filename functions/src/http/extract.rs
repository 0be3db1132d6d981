//! What a route takes from its request, each refused with the one [`ApiError`] when it is not
//! what the API accepts: the session of `?token=`, a conversation of the path, the query's other
//! parameters, a JSON (or form) body, the name of `POST /token`, and the client's address as API
//! Gateway saw it.

use std::collections::HashMap;
use std::convert::Infallible;

use ::http::header;
use ::http::request::Parts;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use chat_wire::{ConversationId, Token};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The query's parameters, each with its first value.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn of(parts: &Parts) -> Params {
        let pairs: Vec<(String, String)> =
            parts.uri.query().and_then(|query| serde_urlencoded::from_str(query).ok()).unwrap_or_default();
        let mut params = HashMap::new();
        for (name, value) in pairs {
            params.entry(name).or_insert(value);
        }
        Params(params)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Params::of(parts))
    }
}

/// The session a request names (`?token=`), checked to have a token's shape; whether it lives is
/// the store's to say. A missing or malformed token is `session_expired`, as in the seed.
#[derive(Debug)]
pub struct Session(pub Token);

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let params = Params::of(parts);
        let token = params.get("token").ok_or(ApiError::SessionExpired)?;
        Token::parse(token).map(Session).map_err(|_| ApiError::SessionExpired)
    }
}

/// The conversation of `/conversations/{id}`; a malformed id names no conversation of the session.
#[derive(Debug)]
pub struct InPath(pub ConversationId);

impl<S: Send + Sync> FromRequestParts<S> for InPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) =
            Path::<String>::from_request_parts(parts, state).await.map_err(|_| ApiError::UnknownConversation)?;
        ConversationId::parse(&id).map(InPath).map_err(|_| ApiError::UnknownConversation)
    }
}

/// The client's address as API Gateway saw it (the TCP peer, not a header a client could forge).
#[derive(Debug)]
pub struct ClientAddress(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        use lambda_http::request::RequestContext;
        let address = match parts.extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.clone(),
            Some(RequestContext::ApiGatewayV1(context)) => context.identity.source_ip.clone(),
            _ => None,
        };
        Ok(ClientAddress(address.unwrap_or_else(|| "unknown".into())))
    }
}

/// A body read as JSON (or as a form, when it says so); an empty body is `None`. An unreadable
/// one is `invalid_parameter`, saying why.
#[derive(Debug)]
pub struct Body<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let form = is_form(request.headers());
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::InvalidParameter(format!("could not read the body: {e}")))?;
        if bytes.is_empty() {
            return Ok(Body(None));
        }
        let parsed = if form {
            serde_urlencoded::from_bytes(&bytes).map_err(|e| e.to_string())
        } else {
            serde_json::from_slice(&bytes).map_err(|e| e.to_string())
        };
        parsed
            .map(|value| Body(Some(value)))
            .map_err(|e| ApiError::InvalidParameter(format!("could not read the body: {e}")))
    }
}

fn is_form(headers: &::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// The `name` of `POST /token`, as `application/x-www-form-urlencoded`, `multipart/form-data` or
/// JSON, not yet checked (see `chat_wire::text::one_line`).
#[derive(Debug)]
pub struct NameForm(pub String);

impl<S: Send + Sync> FromRequest<S> for NameForm {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let content_type =
            request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        if content_type.starts_with("multipart/form-data") {
            let bytes = Bytes::from_request(request, state)
                .await
                .map_err(|e| ApiError::InvalidName(format!("could not read the form: {e}")))?;
            return multipart_name(&content_type, bytes).await.map(NameForm);
        }
        let form: Body<chat_wire::TokenForm> = Body::from_request(request, state)
            .await
            .map_err(|e| ApiError::InvalidName(e.to_string().replace("the body", "the name")))?;
        form.0
            .map(|f| NameForm(f.name))
            .ok_or_else(|| ApiError::InvalidName("the form field `name` is required".into()))
    }
}

async fn multipart_name(content_type: &str, body: Bytes) -> Result<String, ApiError> {
    let unreadable = |e: multer::Error| ApiError::InvalidName(format!("could not read the form: {e}"));
    let boundary = multer::parse_boundary(content_type).map_err(unreadable)?;
    let stream = futures_util::stream::once(async move { Ok::<_, Infallible>(body) });
    let limits = multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(64 * 1024));
    let mut form = multer::Multipart::with_constraints(stream, boundary, limits);
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        if field.name() == Some("name") {
            return field.text().await.map_err(unreadable);
        }
    }
    Err(ApiError::InvalidName("the form field `name` is required".into()))
}
