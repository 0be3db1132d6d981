//! Waiting for what another process or task is starting: a port, a health check.

use std::future::Future;
use std::time::{Duration, Instant};

/// Checks `ready` every `every` until it holds (true) or `within` has passed (false).
#[must_use = "a wait that timed out must fail the caller"]
pub async fn wait_until<F, Fut>(within: Duration, every: Duration, mut ready: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if ready().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits until something accepts connections on the loopback `port`; false if none did in time.
#[must_use = "a wait that timed out must fail the caller"]
pub async fn wait_for_port(port: u16, within: Duration) -> bool {
    wait_until(within, Duration::from_millis(50), || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
    })
    .await
}

/// Waits until `GET {base}/health` answers 200; false if it did not in time.
#[must_use = "a wait that timed out must fail the caller"]
pub async fn wait_healthy(http: &reqwest::Client, base: &str, within: Duration) -> bool {
    let url = format!("{base}/health");
    wait_until(within, Duration::from_millis(50), || async {
        http.get(&url).send().await.is_ok_and(|response| response.status() == 200)
    })
    .await
}
