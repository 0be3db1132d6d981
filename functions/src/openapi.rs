//! The OpenAPI 3 document of the HTTP API, generated from the handlers' annotations, and a small
//! self-contained docs page rendered from it (no CDN: it works offline and under a strict CSP).

use std::fmt::Write;

use utoipa::openapi::path::Operation;
use utoipa::openapi::{OpenApi as Document, RefOr};
use utoipa::OpenApi;

use crate::http;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Chatbot HTTP API",
        description = "Sessions and history of the chatbot. Chatting itself happens over the \
                       WebSocket API described in PROTOCOL.md."
    ),
    paths(http::create_token, http::chat_history, http::health),
    components(schemas(
        chat_wire::ChatSession,
        chat_wire::ChatMessage,
        chat_wire::Source,
        chat_wire::ReplyStatus,
        chat_wire::ErrorBody,
        chat_wire::ErrorCode,
        chat_wire::Health,
        http::TokenForm
    ))
)]
struct ApiDoc;

/// The OpenAPI document served at `/openapi.json`.
pub fn document() -> Document {
    let mut doc = ApiDoc::openapi();
    // The seed product called its health check `/test`; keep the alias documented.
    if let Some(health) = doc.paths.paths.get("/health").cloned() {
        doc.paths.paths.insert("/test".into(), health);
    }
    doc
}

/// The `/docs` page: every operation with its parameters and responses, and the raw document.
pub fn docs_page() -> String {
    let doc = document();
    let mut page = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Chatbot API</title>\
         <style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}\
         code,pre{background:#f3f3f3;padding:.1rem .3rem;border-radius:4px}section{border:1px solid #ddd;\
         border-radius:8px;padding:0 1rem;margin:1rem 0}.m{font-weight:700;text-transform:uppercase}</style>\
         </head><body>",
    );
    let _ = write!(
        page,
        "<h1>{}</h1><p>{}</p><p>Machine-readable: <a href=\"openapi.json\">openapi.json</a>.</p>",
        escape(&doc.info.title),
        escape(doc.info.description.as_deref().unwrap_or_default())
    );
    for (path, item) in &doc.paths.paths {
        let operations: [(&str, &Option<Operation>); 2] = [("get", &item.get), ("post", &item.post)];
        for (method, operation) in operations {
            let Some(op) = operation else { continue };
            let _ = write!(
                page,
                "<section><h2><span class=\"m\">{method}</span> <code>{}</code></h2><p>{}</p>",
                escape(path),
                escape(op.description.as_deref().or(op.summary.as_deref()).unwrap_or_default())
            );
            if let Some(params) = &op.parameters {
                page.push_str("<h3>Parameters</h3><ul>");
                for p in params {
                    let _ = write!(
                        page,
                        "<li><code>{}</code>: {}</li>",
                        escape(&p.name),
                        escape(p.description.as_deref().unwrap_or_default())
                    );
                }
                page.push_str("</ul>");
            }
            if let Some(body) = &op.request_body {
                let _ = write!(page, "<h3>Body</h3><p>{}</p>", escape(body.description.as_deref().unwrap_or_default()));
            }
            page.push_str("<h3>Responses</h3><ul>");
            for (status, response) in &op.responses.responses {
                let description = match response {
                    RefOr::T(r) => r.description.clone(),
                    RefOr::Ref(r) => r.ref_location.clone(),
                };
                let _ = write!(page, "<li><code>{}</code> {}</li>", escape(status), escape(&description));
            }
            page.push_str("</ul></section>");
        }
    }
    page.push_str("</body></html>");
    page
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_the_seed_routes() {
        let json = serde_json::to_value(document()).unwrap();
        for path in ["/token", "/chat_history", "/health", "/test"] {
            assert!(json["paths"].get(path).is_some(), "{path} missing");
        }
        assert!(json["openapi"].as_str().unwrap().starts_with("3."));
        assert!(json["components"]["schemas"].get("ChatSession").is_some());
    }

    #[test]
    fn the_docs_page_shows_every_route() {
        let page = docs_page();
        assert!(page.contains("<code>/chat_history</code>"));
        assert!(page.contains("Missing, unknown or expired token"));
    }
}
