//! Stopping long-running processes cleanly.

/// Resolves on Ctrl-C or SIGTERM (what `docker stop`, systemd and process managers send).
pub async fn shutdown_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("install a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
