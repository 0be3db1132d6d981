//! Logging, set up once per process.

use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber: JSON lines when `AWS_LAMBDA_LOG_FORMAT=JSON` (Lambda's
/// structured logging), human-readable text otherwise. The level follows the Lambda runtime's
/// precedence: `AWS_LAMBDA_LOG_LEVEL` (the function's logging configuration) over `RUST_LOG`, then
/// `info`. Calling it twice is harmless.
pub fn init_tracing() {
    let filter = EnvFilter::new(log_filter(&|name| std::env::var(name).ok()));
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

/// The log filter `var` (a variable's value by name) asks for: `AWS_LAMBDA_LOG_LEVEL`, else a valid
/// `RUST_LOG`, else `info`.
pub fn log_filter(var: &dyn Fn(&str) -> Option<String>) -> String {
    var("AWS_LAMBDA_LOG_LEVEL")
        .map(|level| level.to_lowercase())
        .or_else(|| var("RUST_LOG"))
        .filter(|filter| EnvFilter::try_new(filter).is_ok())
        .unwrap_or_else(|| "info".into())
}
