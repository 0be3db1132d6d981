//! The HTTP API as one axum [`Router`](axum::Router), handed to `lambda_http::run` by the `http`
//! binary (both HTTP Lambdas: the token function and the history function, each with its own
//! role and routes in `template.yaml`) and called by the local gateway with the same events.
//!
//! Layout, one way down (the router, the resources, what they take and answer):
//! * this module: the routes in one place ([`service`]), with CORS (tower-http), `nosniff` and
//!   `no-store`, and the request's path put as the API defines it first ([`api_path`]);
//! * [`session`]: `POST`/`DELETE /token`, `GET /chat_history`, `GET /chat_export`, `GET /health`;
//! * [`conversations`]: `/conversations`, `/conversations/{id}`, its versions, `/search`, `/models`;
//! * [`extract`]: the session of `?token=`, a conversation of the path, bodies, the name form.
//!
//! A route is one `routes!` line beside its handler's `#[utoipa::path]`: the OpenAPI document
//! (`crate::openapi`) is collected from them. A method a route does not serve is `405` with the
//! `Allow` header axum writes; every failure is an [`ApiError`](crate::ApiError) answering itself.

pub mod conversations;
pub mod extract;
pub mod session;

use std::convert::Infallible;
use std::sync::Arc;

use ::http::{header, HeaderValue, Method};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use tower::util::BoxCloneSyncService;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::openapi;
use crate::state::AppState;

/// The HTTP API as a service: what `lambda_http::run` and the local gateway call.
pub type HttpApi = BoxCloneSyncService<lambda_http::Request, Response, Infallible>;

/// The routes, before they are given their state, and the OpenAPI document they make.
fn routes() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(session::create_token, session::revoke_token))
        .routes(routes!(session::chat_history))
        .routes(routes!(session::chat_export))
        .routes(routes!(conversations::list, conversations::create))
        .routes(routes!(conversations::change, conversations::delete))
        .routes(routes!(conversations::switch_version))
        .routes(routes!(conversations::search))
        .routes(routes!(conversations::models))
        .routes(routes!(session::health))
        .split_for_parts()
}

/// The OpenAPI document of the routes, with the constraints the handlers enforce under `config`.
pub fn openapi_document(config: &chat_core::Config) -> utoipa::openapi::OpenApi {
    openapi::constrained(config, routes().1)
}

/// The routes with their state: the HTTP API before CORS and the response headers.
pub fn router(state: AppState) -> axum::Router {
    let (router, api) = routes();
    let document = openapi::constrained(&state.config, api);
    let page = Arc::new(openapi::docs_page(&document));
    let json = Arc::new(openapi::document_json(&document));
    // The seed product called its health check `/test`.
    let mut router = router.route("/test", get(session::health)).route(
        "/openapi.json",
        get(move || {
            let json = json.clone();
            async move { Json(json.as_ref().clone()) }
        }),
    );
    if state.config.development {
        router = router.route("/docs", get(move || async move { docs(&page) }));
    }
    router
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}

/// The HTTP API: the [`router`] behind CORS for `ALLOWED_ORIGINS`, with `nosniff` and
/// `no-store` on every answer, each request's path first put as the API defines it.
pub fn service(state: AppState) -> HttpApi {
    let cors = cors(&state.config);
    let router = router(state);
    let service = ServiceBuilder::new()
        .map_request(api_path)
        .map_response(allow_without_head)
        .layer(cors)
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .service(router);
    BoxCloneSyncService::new(service)
}

/// A 405's `Allow` as the API routes methods: API Gateway routes each method on its own, so
/// `HEAD`, which axum's `get` also answers, is no route of the API.
fn allow_without_head(mut response: Response) -> Response {
    let allow = response.headers().get(header::ALLOW).and_then(|value| value.to_str().ok());
    if let Some(allow) = allow.filter(|allow| allow.contains("HEAD")) {
        let methods: Vec<&str> = allow.split(',').map(str::trim).filter(|method| *method != "HEAD").collect();
        if let Ok(value) = HeaderValue::from_str(&methods.join(",")) {
            response.headers_mut().insert(header::ALLOW, value);
        }
    }
    response
}

fn docs(page: &str) -> Response {
    let csp = HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'");
    ([(header::CONTENT_SECURITY_POLICY, csp)], Html(page.to_string())).into_response()
}

/// CORS for the allow-list in `ALLOWED_ORIGINS` (any origin in development).
fn cors(config: &chat_core::Config) -> CorsLayer {
    let config = config.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origin.to_str().is_ok_and(|origin| config.origin_allowed(origin))
        }))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([header::CONTENT_TYPE])
        // The web app saves an export under the name the server gives it.
        .expose_headers([header::CONTENT_DISPOSITION])
        .max_age(std::time::Duration::from_secs(600))
}

/// The request with its URI's path as the API defines it ([`route_path`]), its query kept.
pub fn api_path(mut request: lambda_http::Request) -> lambda_http::Request {
    let path = route_path(&request);
    let path_and_query = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    if let Ok(uri) = ::http::Uri::builder().path_and_query(path_and_query).build() {
        *request.uri_mut() = uri;
    }
    request
}

/// The request's path as the API defines it. On AWS, the route API Gateway matched (`routeKey`,
/// e.g. `PATCH /conversations/{id}`, its parameters filled in) says it, whatever a custom
/// domain's API mapping or a named stage put in front of the raw path; for a `$default` route
/// (the local gateway), the raw path without a named stage's prefix (`/prod/token` -> `/token`).
/// No trailing slash either way.
fn route_path(request: &lambda_http::Request) -> String {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    let (route_key, stage) = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => (context.route_key.clone(), context.stage.clone()),
        Some(RequestContext::ApiGatewayV1(context)) => (None, context.stage.clone()),
        _ => (None, None),
    };
    let parameters = request.path_parameters();
    let matched = route_key.as_deref().and_then(|key| key.split_once(' ')).map(|(_, template)| {
        template
            .split('/')
            .map(|segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => parameters.first(name).unwrap_or_default().to_string(),
                None => segment.to_string(),
            })
            .collect::<Vec<_>>()
            .join("/")
    });
    let raw = request.raw_http_path();
    let raw = if raw.is_empty() { request.uri().path() } else { raw };
    let path = match (&matched, stage.filter(|s| s != "$default")) {
        (Some(path), _) => path.as_str(),
        (None, Some(stage)) => raw.strip_prefix(&format!("/{stage}")).filter(|p| p.starts_with('/')).unwrap_or(raw),
        (None, None) => raw,
    };
    match path.trim_end_matches('/') {
        "" => "/".to_string(),
        trimmed => trimmed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, raw_path: &str, stage: &str) -> lambda_http::Request {
        routed(method, raw_path, stage, "$default", &[])
    }

    fn routed(
        method: Method,
        raw_path: &str,
        stage: &str,
        route_key: &str,
        parameters: &[(&str, &str)],
    ) -> lambda_http::Request {
        let mut event = aws_lambda_events::apigw::ApiGatewayV2httpRequest::default();
        event.raw_path = Some(raw_path.into());
        event.request_context.stage = Some(stage.into());
        event.request_context.route_key = Some(route_key.into());
        event.request_context.http.method = method;
        event.path_parameters = parameters.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        lambda_http::request::LambdaRequest::ApiGatewayV2(event).into()
    }

    #[test]
    fn routes_match_whole_paths() {
        assert_eq!(route_path(&request(Method::POST, "/token", "$default")), "/token");
        assert_eq!(route_path(&request(Method::POST, "/prod/token/", "prod")), "/token");
        assert_eq!(route_path(&request(Method::POST, "/x/y/token", "$default")), "/x/y/token");
        assert_eq!(route_path(&request(Method::GET, "/", "$default")), "/");
        // Behind a custom domain's API mapping, API Gateway's matched route says what was asked.
        assert_eq!(route_path(&routed(Method::POST, "/v1/token", "prod", "POST /token", &[])), "/token");
        let renamed =
            routed(Method::PATCH, "/v1/conversations/c1", "prod", "PATCH /conversations/{id}", &[("id", "c1")]);
        assert_eq!(route_path(&renamed), "/conversations/c1");
    }
}
