//! The static site: the built frontend (`frontend/dist`), its runtime `config.json` pointing at
//! this gateway, and the security headers a static host (CloudFront) would add.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use sha2::{Digest, Sha256};
use tower_http::services::ServeDir;

/// Where the page's servers are, as `config.json` tells the frontend (the contract's type).
pub use chat_wire::SiteConfig;

struct SiteState {
    config: SiteConfig,
    csp: HeaderValue,
}

/// The Content-Security-Policy of the page: its own files, its API and WebSocket origins, and
/// the inline loader script trunk writes into `index.html` (allowed by hash, nothing else inline).
pub fn content_security_policy(index_html: &str, api_url: &str, ws_url: &str) -> String {
    let mut hashes = String::new();
    let mut rest = index_html;
    while let Some(start) = rest.find("<script") {
        let after_tag = &rest[start..];
        let Some(open_end) = after_tag.find('>') else { break };
        let body_start = &after_tag[open_end + 1..];
        let Some(close) = body_start.find("</script>") else { break };
        let body = &body_start[..close];
        if !after_tag[..open_end].contains(" src=") && !body.trim().is_empty() {
            let digest = Sha256::digest(body.as_bytes());
            hashes.push_str(&format!(" 'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest)));
        }
        rest = &body_start[close..];
    }
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{hashes}; style-src 'self' 'unsafe-inline'; \
         connect-src 'self' {} {}; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        origin(api_url),
        origin(ws_url)
    )
}

fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    url[after_scheme..].find('/').map_or(url, |i| &url[..after_scheme + i])
}

/// The site's routes: `config.json`, then the files of `dir`, every response with a CSP.
pub fn router(dir: &Path, config: SiteConfig) -> std::io::Result<Router> {
    let index = std::fs::read_to_string(dir.join("index.html"))?;
    let csp = content_security_policy(&index, &config.api_url, &config.ws_url);
    let state = Arc::new(SiteState { config, csp: HeaderValue::from_str(&csp).expect("a valid header") });
    Ok(Router::new()
        .route("/config.json", get(config_json))
        // The build writes a brotli and a gzip copy beside the wasm, JS and CSS
        // (`scripts/build-frontend.sh`): a phone on a slow network downloads a third of the bytes,
        // as CloudFront serves them.
        .fallback_service(
            ServeDir::new(PathBuf::from(dir))
                .append_index_html_on_directories(true)
                .precompressed_br()
                .precompressed_gzip(),
        )
        .layer(middleware::from_fn_with_state(state.clone(), security_headers))
        .with_state(state))
}

async fn config_json(State(state): State<Arc<SiteState>>) -> Json<SiteConfig> {
    Json(state.config.clone())
}

async fn security_headers(
    State(state): State<Arc<SiteState>>,
    request: Request<axum::body::Body>,
    next: Next,
) -> Response {
    let mut response = next.run(request).await.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, state.csp.clone());
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_the_loader_by_hash_and_the_api_origins_only() {
        let html = "<html><script type=\"module\">import init from '/app.js';init();</script><script src=\"/x.js\"></script></html>";
        let csp = content_security_policy(html, "https://api.example.com/prod", "wss://ws.example.com/prod");
        assert!(csp.contains("connect-src 'self' https://api.example.com wss://ws.example.com;"), "{csp}");
        assert_eq!(csp.matches("'sha256-").count(), 1, "{csp}");
        assert!(!csp.contains("unsafe-inline' 'wasm") && !csp.contains("script-src 'self' 'unsafe-inline'"));
    }
}

#[cfg(test)]
mod compression {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[tokio::test]
    async fn the_wasm_goes_out_compressed_to_a_browser_that_accepts_it() {
        let dir = std::env::temp_dir().join(format!("chat-site-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), "<html></html>").unwrap();
        std::fs::write(dir.join("app.wasm"), b"wasm, as built").unwrap();
        std::fs::write(dir.join("app.wasm.br"), b"brotli").unwrap();
        std::fs::write(dir.join("app.wasm.gz"), b"gzip").unwrap();
        let config = SiteConfig {
            api_url: "http://127.0.0.1:3500".into(),
            ws_url: "ws://127.0.0.1:3500/chat".into(),
            max_message_bytes: 8192,
            max_name_chars: 64,
        };
        let site = router(&dir, config).unwrap();
        for (accepts, encoding, body) in [
            (Some("gzip, deflate, br"), Some("br"), "brotli"),
            (Some("gzip"), Some("gzip"), "gzip"),
            (None, None, "wasm, as built"),
        ] {
            let mut request = Request::get("/app.wasm");
            if let Some(accepts) = accepts {
                request = request.header(header::ACCEPT_ENCODING, accepts);
            }
            let response = site.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
            assert_eq!(response.status(), 200);
            let sent = response.headers().get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap().to_string());
            assert_eq!(sent.as_deref(), encoding, "Accept-Encoding: {accepts:?}");
            let bytes = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
            assert_eq!(bytes, body.as_bytes());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
