//! The OpenAPI 3 document of the HTTP API: its paths are collected from the routes
//! (`crate::http`, `utoipa-axum`), its schemas and text are here, and so are the constraints the
//! handlers enforce under a configuration; and a small self-contained docs page rendered from it
//! (no CDN: it works offline and under a strict CSP).

use std::fmt::Write;

use chat_core::Config;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::{OpenApi as Document, RefOr};
use utoipa::OpenApi;

use crate::http::conversations;

/// The document's title, text and schemas; the routes add their paths.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Chatbot HTTP API",
        description = "Sessions and history of the chatbot. Chatting itself happens over the \
                       WebSocket API described in PROTOCOL.md."
    ),
    components(schemas(
        chat_wire::ChatSession,
        chat_wire::ChatMessage,
        chat_wire::Usage,
        crate::export::ExportedConversation,
        chat_wire::Source,
        chat_wire::ReplyStatus,
        chat_wire::ErrorBody,
        chat_wire::ErrorCode,
        chat_wire::Health,
        chat_wire::Conversation,
        chat_wire::ConversationList,
        chat_wire::TitleSource,
        chat_wire::SearchResults,
        chat_wire::SearchHit,
        chat_wire::NewConversation,
        chat_wire::ConversationChanges,
        chat_wire::ModelList,
        chat_wire::ShowVersion,
        chat_wire::TokenForm
    ))
)]
pub struct ApiDoc;

/// The document served at `/openapi.json` (with the links between operations).
pub fn document_json(doc: &Document) -> serde_json::Value {
    let mut doc = serde_json::to_value(doc).expect("the document serializes");
    // A new session's token opens its history: clients (and schemathesis's stateful phase) learn
    // to chain the two calls. Written as JSON: utoipa 5 serializes a link's `operationId` as
    // `operation_id`, which no OpenAPI tool reads.
    doc["paths"]["/token"]["post"]["responses"]["200"]["links"] = serde_json::json!({
        "ChatHistory": {
            "operationId": "chat_history",
            "parameters": {"token": "$response.body#/token"},
            "description": "The history of the session just created"
        },
        "ChatExport": {
            "operationId": "chat_export",
            "parameters": {"token": "$response.body#/token"},
            "description": "The conversation of the session just created, as a file"
        },
        "Conversations": {
            "operationId": "list",
            "parameters": {"token": "$response.body#/token"},
            "description": "The conversations of the session just created"
        }
    });
    doc
}

/// The routes' document with the constraints the handlers enforce under this configuration (a
/// generated client knows them without calling). Each constrained schema must be there: a renamed
/// one fails loudly rather than dropping its constraint.
pub fn constrained(config: &Config, mut doc: Document) -> Document {
    constrain(property(&mut doc, "TokenForm", "name"), &name_pattern(config.max_name_chars), None);
    // A title follows the rules of a name, with its own limit.
    constrain(property(&mut doc, "ConversationChanges", "title"), &name_pattern(config.max_title_chars), None);
    let conversation_id = |schema: &mut Object| {
        constrain(schema, "^[A-Za-z0-9_-]{1,32}$", None);
        schema.max_length = Some(32);
    };
    conversation_id(property(&mut doc, "NewConversation", "id"));
    // Every route of a session takes the same token (and a conversation id of one shape); but
    // `DELETE /token` answers any token alike, as revoking twice is no error.
    let items = doc.paths.paths.iter_mut().filter(|(path, _)| *path != "/token").map(|(_, item)| item);
    let operations = items.flat_map(|item| [&mut item.get, &mut item.post, &mut item.patch, &mut item.delete]);
    for parameter in operations.flatten().flat_map(|op| op.parameters.iter_mut().flatten()) {
        if parameter.name == "conversation" || parameter.name == "id" {
            let mut schema = ObjectBuilder::new().schema_type(Type::String).build();
            conversation_id(&mut schema);
            parameter.schema = Some(RefOr::T(Schema::Object(schema)));
        }
        if parameter.name == "token" {
            let mut schema = ObjectBuilder::new().schema_type(Type::String).build();
            constrain(
                &mut schema,
                &format!("^[A-Za-z0-9_-]{{{}}}$", chat_wire::Token::LEN),
                Some(chat_wire::Token::LEN),
            );
            parameter.schema = Some(RefOr::T(Schema::Object(schema)));
        }
        if parameter.name == "limit" {
            let schema = ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(config.max_history_messages as f64))
                .build();
            parameter.schema = Some(RefOr::T(Schema::Object(schema)));
        }
        if parameter.name == "format" {
            let schema = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["markdown", "json"])).build();
            parameter.schema = Some(RefOr::T(Schema::Object(schema)));
        }
        if parameter.name == "q" {
            // What `search` accepts: after trimming, 1 to 200 characters, no control character.
            let mut schema = ObjectBuilder::new().schema_type(Type::String).build();
            constrain(&mut schema, &name_pattern(conversations::MAX_QUERY_CHARS), None);
            parameter.schema = Some(RefOr::T(Schema::Object(schema)));
        }
        if parameter.name == "before" {
            // A question's id, its reply's (`<id>.reply`), or an older version's (`<id>.reply~N`).
            let mut schema = ObjectBuilder::new().schema_type(Type::String).build();
            constrain(&mut schema, r"^[A-Za-z0-9._-]{1,64}(\.reply(~[0-9]{1,4})?)?$", None);
            parameter.schema = Some(RefOr::T(Schema::Object(schema)));
        }
    }
    // The seed product called its health check `/test`; keep the alias documented.
    if let Some(health) = doc.paths.paths.get("/health").cloned() {
        doc.paths.paths.insert("/test".into(), health);
    }
    doc
}

/// The schema of `field` of the component `schema`, which must be there.
fn property<'d>(doc: &'d mut Document, schema: &str, field: &str) -> &'d mut Object {
    let component = doc.components.as_mut().and_then(|c| c.schemas.get_mut(schema));
    let Some(RefOr::T(Schema::Object(component))) = component else {
        panic!("the OpenAPI document has no object schema {schema}")
    };
    match component.properties.get_mut(field) {
        Some(RefOr::T(Schema::Object(property))) => property,
        _ => panic!("the schema {schema} has no plain property {field}"),
    }
}

fn constrain(schema: &mut Object, pattern: &str, exact_length: Option<usize>) {
    schema.pattern = Some(pattern.to_string());
    schema.min_length = exact_length.or(Some(1));
    schema.max_length = exact_length;
}

/// What `validate_name` accepts, as a regular expression: after trimming white space (Unicode
/// White_Space, as `str::trim`), 1 to `max_chars` characters, none of them a control character
/// (Unicode Cc: U+0000-U+001F, U+007F-U+009F). The classes are spelled out rather than `\s`,
/// whose meaning differs between regex engines.
pub fn name_pattern(max_chars: usize) -> String {
    const SPACE: &str = r"[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
    const SHOWN: &str = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
    const ANY: &str = r"[^\x00-\x1f\x7f-\x9f]";
    let name = match max_chars {
        0 | 1 => SHOWN.to_string(),
        _ => format!("(?:{SHOWN}|{SHOWN}{ANY}{{0,{}}}{SHOWN})", max_chars - 2),
    };
    format!(r"^{SPACE}*{name}{SPACE}*$")
}

/// The `/docs` page: every operation with its parameters and responses, and the raw document.
pub fn docs_page(doc: &Document) -> String {
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

    fn config() -> Config {
        Config::from_vars(&Default::default()).unwrap()
    }

    fn document() -> serde_json::Value {
        document_json(&crate::http::openapi_document(&config()))
    }

    #[test]
    fn the_document_lists_the_seed_routes() {
        let json = document();
        for path in ["/token", "/chat_history", "/health", "/test"] {
            assert!(json["paths"].get(path).is_some(), "{path} missing");
        }
        assert!(json["openapi"].as_str().unwrap().starts_with("3."));
        assert!(json["components"]["schemas"].get("ChatSession").is_some());
        let link = &json["paths"]["/token"]["post"]["responses"]["200"]["links"]["ChatHistory"];
        assert_eq!(link["operationId"], json["paths"]["/chat_history"]["get"]["operationId"]);
    }

    #[test]
    fn the_name_pattern_accepts_exactly_what_the_handler_accepts() {
        let pattern = regex::Regex::new(&name_pattern(64)).unwrap();
        let samples = [
            "Ada".to_string(),
            "  Ada Lovelace \t\n".to_string(),
            "\u{3000}名前\u{a0}".to_string(),
            "é".repeat(64),
            format!(" {} ", "é".repeat(64)),
            "é".repeat(65),
            String::new(),
            " \t ".to_string(),
            "a\u{7}b".to_string(),
            "a\u{85}".to_string(),
            "\u{1c}Ada".to_string(),
            "x".to_string(),
        ];
        for sample in samples {
            let accepted = crate::http::session::validate_name(&sample, 64).is_ok();
            assert_eq!(pattern.is_match(&sample), accepted, "{sample:?}");
        }
        let one = regex::Regex::new(&name_pattern(1)).unwrap();
        assert!(one.is_match(" a ") && !one.is_match("ab"));
    }

    #[test]
    fn the_docs_page_shows_every_route() {
        let page = docs_page(&crate::http::openapi_document(&config()));
        assert!(page.contains("<code>/chat_history</code>"));
        assert!(page.contains("Missing, unknown or expired token"));
    }
}
