//! The HTTP side: runtime configuration (`config.json` beside `index.html`), `POST /token`,
//! `GET /chat_history`, the conversation routes, and the session kept in localStorage.

use chat_wire::{
    ChatSession, Conversation, ConversationChanges, ConversationList, ErrorBody, ModelList, SearchResults, ShowVersion,
};
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// Where the servers are (`config.json`, the contract's type). Read at runtime so one build
/// serves any deployment.
pub use chat_wire::SiteConfig;

/// The session remembered across reloads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedSession {
    /// The bearer token.
    pub token: String,
    /// The person's name.
    pub name: String,
}

const SESSION_KEY: &str = "chat.session";

/// Why an HTTP call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// The server answered with an error body.
    Refused {
        /// HTTP status.
        status: u16,
        /// The body's detail and code.
        body: Option<ErrorBody>,
    },
    /// The server could not be reached.
    Network(String),
}

impl ApiError {
    /// A sentence for a toast.
    pub fn message(&self) -> String {
        match self {
            ApiError::Refused { body: Some(body), .. } => body.detail.clone(),
            ApiError::Refused { status, .. } => format!("The server answered {status}."),
            ApiError::Network(_) => "Cannot reach the server. Check your connection.".into(),
        }
    }
}

fn window() -> web_sys::Window {
    web_sys::window().expect("a browser window")
}

async fn fetch(request: web_sys::Request) -> Result<(u16, String), ApiError> {
    let response =
        JsFuture::from(window().fetch_with_request(&request)).await.map_err(|e| ApiError::Network(format!("{e:?}")))?;
    let response: web_sys::Response = response.unchecked_into();
    let text = JsFuture::from(response.text().map_err(|e| ApiError::Network(format!("{e:?}")))?)
        .await
        .map_err(|e| ApiError::Network(format!("{e:?}")))?;
    Ok((response.status(), text.as_string().unwrap_or_default()))
}

fn parse<T: for<'de> Deserialize<'de>>((status, body): (u16, String)) -> Result<T, ApiError> {
    if (200..300).contains(&status) {
        serde_json::from_str(&body).map_err(|e| ApiError::Network(e.to_string()))
    } else {
        Err(ApiError::Refused { status, body: serde_json::from_str(&body).ok() })
    }
}

/// Loads `config.json`, which says where this deployment's APIs are. Without a usable one the
/// page cannot work, and says so (guessing an address would only fail later, less clearly).
pub async fn load_config() -> Result<SiteConfig, String> {
    let missing = |why: String| {
        format!(
            "This site has no usable config.json ({why}), so it does not know where its chat service is. \
             Whoever deployed it: upload the web app with scripts/deploy-site.sh."
        )
    };
    let request = web_sys::Request::new_with_str("config.json").map_err(|e| missing(format!("{e:?}")))?;
    match fetch(request).await {
        Ok((200, body)) => serde_json::from_str(&body).map_err(|e| missing(format!("it is not valid: {e}"))),
        Ok((status, _)) => Err(missing(format!("HTTP {status}"))),
        Err(_) => Err(missing("it could not be fetched".into())),
    }
}

/// `POST /token` with the name as a form field.
pub async fn create_session(config: &SiteConfig, name: &str) -> Result<ChatSession, ApiError> {
    let form = web_sys::UrlSearchParams::new().map_err(|e| ApiError::Network(format!("{e:?}")))?;
    form.append("name", name);
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&form);
    let request = web_sys::Request::new_with_str_and_init(&format!("{}/token", config.api_url), &init)
        .map_err(|e| ApiError::Network(format!("{e:?}")))?;
    parse(fetch(request).await?)
}

/// `DELETE /token?token=...`: ends the session on the server ("New chat").
pub async fn revoke(config: &SiteConfig, token: &str) -> Result<(), ApiError> {
    let url = format!("{}/token?token={}", config.api_url, js_sys::encode_uri_component(token));
    let init = web_sys::RequestInit::new();
    init.set_method("DELETE");
    let request =
        web_sys::Request::new_with_str_and_init(&url, &init).map_err(|e| ApiError::Network(format!("{e:?}")))?;
    match fetch(request).await? {
        (204, _) => Ok(()),
        (status, body) => Err(ApiError::Refused { status, body: serde_json::from_str(&body).ok() }),
    }
}

/// `GET /chat_export?token=...&conversation=...&format=...` (`markdown` or `json`): the conversation as a file's
/// name (the server's `Content-Disposition`) and text.
pub async fn export(
    config: &SiteConfig,
    token: &str,
    conversation: &str,
    format: &str,
) -> Result<(Option<String>, String), ApiError> {
    let url = format!(
        "{}/chat_export?token={}&conversation={}&format={format}",
        config.api_url,
        js_sys::encode_uri_component(token),
        js_sys::encode_uri_component(conversation)
    );
    let request = web_sys::Request::new_with_str(&url).map_err(|e| ApiError::Network(format!("{e:?}")))?;
    let network = |e: wasm_bindgen::JsValue| ApiError::Network(format!("{e:?}"));
    let response: web_sys::Response =
        JsFuture::from(window().fetch_with_request(&request)).await.map_err(network)?.unchecked_into();
    let name = response.headers().get("content-disposition").ok().flatten().and_then(|value| {
        value.split_once("filename=\"").and_then(|(_, rest)| rest.split_once('"')).map(|(name, _)| name.to_string())
    });
    let text =
        JsFuture::from(response.text().map_err(network)?).await.map_err(network)?.as_string().unwrap_or_default();
    match response.status() {
        200 => Ok((name, text)),
        status => Err(ApiError::Refused { status, body: serde_json::from_str(&text).ok() }),
    }
}

/// Offers `text` to the person as a file named `name` (the browser's download), from memory: the
/// token never appears in an address the browser keeps.
pub fn download(name: &str, text: &str, mime: &str) -> Result<(), String> {
    let failed = |e: wasm_bindgen::JsValue| format!("{e:?}");
    let parts = js_sys::Array::of1(&wasm_bindgen::JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options).map_err(failed)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(failed)?;
    let document = window().document().ok_or("no document")?;
    let link: web_sys::HtmlAnchorElement = document.create_element("a").map_err(failed)?.unchecked_into();
    link.set_href(&url);
    link.set_download(name);
    // In the page while it is clicked (some browsers ignore a detached link); the file's memory is
    // freed once the download surely started (revoking at once fails it in Safari).
    let body = document.body().ok_or("no body")?;
    body.append_child(&link).map_err(failed)?;
    link.click();
    link.remove();
    leptos::prelude::set_timeout(
        move || {
            let _ = web_sys::Url::revoke_object_url(&url);
        },
        std::time::Duration::from_secs(60),
    );
    Ok(())
}

/// `GET /chat_history?token=...&conversation=...`.
pub async fn history(config: &SiteConfig, token: &str, conversation: &str) -> Result<ChatSession, ApiError> {
    let url = format!(
        "{}/chat_history?token={}&conversation={}",
        config.api_url,
        js_sys::encode_uri_component(token),
        js_sys::encode_uri_component(conversation)
    );
    let request = web_sys::Request::new_with_str(&url).map_err(|e| ApiError::Network(format!("{e:?}")))?;
    parse(fetch(request).await?)
}

/// `{api}{path}?token=...` with `method` and an optional JSON body.
fn session_request(
    config: &SiteConfig,
    method: &str,
    path: &str,
    token: &str,
    json: Option<String>,
) -> Result<web_sys::Request, ApiError> {
    let url = format!("{}{path}?token={}", config.api_url, js_sys::encode_uri_component(token));
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    if let Some(json) = json {
        let headers = web_sys::Headers::new().map_err(|e| ApiError::Network(format!("{e:?}")))?;
        let _ = headers.set("Content-Type", "application/json");
        init.set_headers(&headers);
        init.set_body(&wasm_bindgen::JsValue::from_str(&json));
    }
    web_sys::Request::new_with_str_and_init(&url, &init).map_err(|e| ApiError::Network(format!("{e:?}")))
}

/// `GET /conversations`: the session's conversations, most recently active first.
pub async fn conversations(config: &SiteConfig, token: &str) -> Result<ConversationList, ApiError> {
    parse(fetch(session_request(config, "GET", "/conversations", token, None)?).await?)
}

/// `POST /conversations`: a new conversation, now the session's current one.
pub async fn create_conversation(config: &SiteConfig, token: &str) -> Result<Conversation, ApiError> {
    parse(fetch(session_request(config, "POST", "/conversations", token, None)?).await?)
}

/// `PATCH /conversations/{id}`: changes a conversation's `title`, `model` or `instructions`.
pub async fn change_conversation(
    config: &SiteConfig,
    token: &str,
    id: &str,
    changes: &ConversationChanges,
) -> Result<Conversation, ApiError> {
    let path = format!("/conversations/{}", js_sys::encode_uri_component(id));
    let body = serde_json::to_string(changes).expect("a body always serializes");
    parse(fetch(session_request(config, "PATCH", &path, token, Some(body))?).await?)
}

/// `GET /models`: the models a conversation may be answered by.
pub async fn models(config: &SiteConfig) -> Result<ModelList, ApiError> {
    let request = web_sys::Request::new_with_str(&format!("{}/models", config.api_url))
        .map_err(|e| ApiError::Network(format!("{e:?}")))?;
    parse(fetch(request).await?)
}

/// `GET /search?q=...`: where a text appears in the session's conversations.
pub async fn search(config: &SiteConfig, token: &str, query: &str) -> Result<SearchResults, ApiError> {
    let url = format!(
        "{}/search?token={}&q={}",
        config.api_url,
        js_sys::encode_uri_component(token),
        js_sys::encode_uri_component(query)
    );
    let request = web_sys::Request::new_with_str(&url).map_err(|e| ApiError::Network(format!("{e:?}")))?;
    parse(fetch(request).await?)
}

/// `POST /conversations/{id}/versions`: shows the version starting at `message_id`; answers
/// the conversation's history.
pub async fn show_version(
    config: &SiteConfig,
    token: &str,
    id: &str,
    message_id: &str,
) -> Result<ChatSession, ApiError> {
    let path = format!("/conversations/{}/versions", js_sys::encode_uri_component(id));
    let body = serde_json::to_string(&ShowVersion { message_id: message_id.to_string() }).expect("serializes");
    parse(fetch(session_request(config, "POST", &path, token, Some(body))?).await?)
}

/// `DELETE /conversations/{id}`.
pub async fn delete_conversation(config: &SiteConfig, token: &str, id: &str) -> Result<(), ApiError> {
    let path = format!("/conversations/{}", js_sys::encode_uri_component(id));
    match fetch(session_request(config, "DELETE", &path, token, None)?).await? {
        (204, _) => Ok(()),
        (status, body) => Err(ApiError::Refused { status, body: serde_json::from_str(&body).ok() }),
    }
}

fn storage() -> Option<web_sys::Storage> {
    window().local_storage().ok().flatten()
}

/// The remembered session, if any.
pub fn saved_session() -> Option<SavedSession> {
    storage()?.get_item(SESSION_KEY).ok().flatten().and_then(|json| serde_json::from_str(&json).ok())
}

/// Remembers the session (the token stays in this browser only).
pub fn save_session(session: &SavedSession) {
    if let Some(storage) = storage() {
        let _ = storage.set_item(SESSION_KEY, &serde_json::to_string(session).unwrap_or_default());
    }
}

/// Forgets the session.
pub fn forget_session() {
    if let Some(storage) = storage() {
        let _ = storage.remove_item(SESSION_KEY);
    }
}
