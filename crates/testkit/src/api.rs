//! The HTTP API as a client calls it: a session through `POST /token`, a history through
//! `GET /chat_history`.

use chat_wire::ChatSession;

use crate::Error;

/// `POST {base}/token` with a name, as the web app's welcome form sends it.
pub async fn create_session(http: &reqwest::Client, base: &str, name: &str) -> Result<ChatSession, Error> {
    let response = http.post(format!("{base}/token")).form(&[("name", name)]).send().await?;
    if response.status() != 200 {
        return Err(format!("POST /token answered {}", response.status()).into());
    }
    Ok(response.json().await?)
}

/// `GET {base}/chat_history?token=...`, to send.
pub fn history_request(http: &reqwest::Client, base: &str, token: &str) -> reqwest::RequestBuilder {
    http.get(format!("{base}/chat_history")).query(&[("token", token)])
}

/// A session's history.
pub async fn history(http: &reqwest::Client, base: &str, token: &str) -> Result<ChatSession, Error> {
    Ok(history_request(http, base, token).send().await?.json().await?)
}
