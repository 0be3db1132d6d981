//! Logging, set up once per process.

use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber: JSON lines when `AWS_LAMBDA_LOG_FORMAT=JSON` (Lambda's
/// structured logging), human-readable text otherwise. The level follows the Lambda runtime's
/// precedence: `AWS_LAMBDA_LOG_LEVEL` (the function's logging configuration) over `RUST_LOG`, then
/// `info`. Calling it twice is harmless.
pub fn init_tracing() {
    let filter = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .map(|l| l.to_lowercase())
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    // An error only means a subscriber is installed already (a second call in one process).
    let _ = if json {
        builder.json().without_time().try_init()
    } else if std::env::var("AWS_LAMBDA_RUNTIME_API").is_ok() {
        // CloudWatch stamps every line itself and shows no colours.
        builder.with_ansi(false).without_time().try_init()
    } else {
        builder.try_init()
    };
}
