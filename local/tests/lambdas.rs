//! The real Lambda binaries, served by `cargo lambda watch` (the Lambda runtime API emulator) and
//! invoked with real API Gateway event payloads (`functions/tests/fixtures/`), against a real
//! redis-server: each function's response and its effects in Redis, and the message function
//! waking the worker function through the Lambda Invoke API (`WORKER_FUNCTION_NAME`).
//!
//! The functions read their Redis URL and model key the production way, from Secrets Manager,
//! here LocalStack's (`AWS_ENDPOINT_URL`); the environment holds only the secrets' ARNs.
//!
//! Needs `cargo lambda` on PATH and LocalStack at 127.0.0.1:4566; scripts/test.sh provides both
//! (`scripts/install-aws-tools.sh`, `localstack/start.sh`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use chat_local::redis_server::{free_port, RedisServer};
use chat_local::Options;
use chat_stub_model::{Pacing, StubModel};
use chat_testkit::wait::wait_for_port;
use chat_testkit::{TempDir, Vars};
use redis::AsyncCommands;
use serde_json::Value;
use tokio::process::{Child, Command};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str, token: &str) -> Value {
    let path = workspace().join("functions/tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text.replace("TOKEN", token)).unwrap()
}

fn lambda_logs() -> Stdio {
    if std::env::var_os("LAMBDA_LOGS").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

/// `cargo lambda watch`, killed (with the functions it runs) when the test ends.
struct Watch(Child);

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            // The process group: cargo lambda and the function processes it started.
            let _ = std::process::Command::new("kill").arg("--").arg(format!("-{pid}")).status();
        }
    }
}

async fn invoke(http: &reqwest::Client, port: u16, function: &str, event: &Value) -> Value {
    let url = format!("http://127.0.0.1:{port}/2015-03-31/functions/{function}/invocations");
    let response = http.post(url).json(event).timeout(Duration::from_secs(300)).send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{function}: {status} {body}");
    body
}

#[tokio::test]
async fn the_lambda_binaries_answer_real_api_gateway_events() {
    let work = TempDir::new("chat-lambdas");
    let redis = RedisServer::start(&work.path().join("redis"), false).await.unwrap();
    let stub = StubModel::start(Pacing::default()).await;

    // The Management API the worker posts to: the local gateway's (it knows no connection of
    // these fixtures, so it answers 410 Gone, as API Gateway does for a closed connection).
    let gateway_config = Vars::default().set("REDIS_URL", redis.url()).config().unwrap();
    let (_, management_endpoint, _gateway) =
        chat_testkit::app::serve(gateway_config, Options { in_process_worker: false, ..Default::default() }).await;

    // The secrets, as localstack/setup.sh creates them for a deployment.
    let setup = std::process::Command::new(workspace().join("localstack/setup.sh"))
        .env("REDIS_URL", redis.url())
        .env("OPENAI_API_KEY", "sk-from-secrets-manager")
        .output()
        .expect("localstack/setup.sh runs");
    assert!(setup.status.success(), "{}", String::from_utf8_lossy(&setup.stderr));
    let arns: std::collections::HashMap<String, String> = String::from_utf8(setup.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();

    let port = free_port();
    let mut command = Command::new("cargo");
    command
        .args(["lambda", "watch", "--invoke-port", &port.to_string(), "--ignore-changes"])
        .current_dir(workspace())
        .env_remove("REDIS_URL")
        .env_remove("OPENAI_API_KEY")
        .env("REDIS_URL_SECRET_ARN", &arns["REDIS_URL_SECRET_ARN"])
        .env("OPENAI_API_KEY_SECRET_ARN", &arns["OPENAI_API_KEY_SECRET_ARN"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
        // The message function wakes the worker as on AWS: an asynchronous Invoke of the worker
        // function, here on cargo lambda's own Invoke API.
        .env("WORKER_FUNCTION_NAME", "worker")
        .env("AWS_ENDPOINT_URL_LAMBDA", format!("http://127.0.0.1:{port}"))
        .env("APP_ENV", "production")
        .env("ALLOWED_ORIGINS", "https://d111111abcdef8.cloudfront.net")
        .env("OPENAI_BASE_URL", stub.base_url())
        .env("OPENAI_MODEL", "stub")
        .env("WS_MANAGEMENT_ENDPOINT", &management_endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        // LAMBDA_LOGS=1 shows cargo lambda's build and the functions' logs.
        .stdout(lambda_logs())
        .stderr(lambda_logs())
        .process_group(0)
        .kill_on_drop(true);
    let mut watch = Watch(command.spawn().expect("cargo lambda is installed (pip install cargo-lambda)"));
    // cargo lambda compiles the functions on its first start; one that cannot run ends at once.
    let started = tokio::time::Instant::now();
    while !wait_for_port(port, Duration::from_secs(1)).await {
        if let Ok(Some(status)) = watch.0.try_wait() {
            panic!("cargo lambda watch ended ({status}): is cargo-lambda on PATH (scripts/install-aws-tools.sh)?");
        }
        assert!(started.elapsed() < Duration::from_secs(300), "cargo lambda watch did not start within 5 minutes");
    }
    let http = reqwest::Client::new();
    let mut conn = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();

    // POST /token (HTTP API payload 2.0): a session, with CORS for the allowed origin.
    let response = invoke(&http, port, "http", &fixture("http-token.json", "")).await;
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(response["headers"]["access-control-allow-origin"], "https://d111111abcdef8.cloudfront.net");
    let session: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    let token = session["token"].as_str().unwrap().to_string();
    assert_eq!(session["name"], "Ada");
    let stored_name: Option<String> = conn.hget(chat_testkit::session_keys(&token).session, "name").await.unwrap();
    assert_eq!(stored_name.as_deref(), Some("Ada"));

    // GET /chat_history.
    let response = invoke(&http, port, "http", &fixture("http-history.json", &token)).await;
    assert_eq!(response["statusCode"], 200, "{response}");
    let history: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(history["messages"], serde_json::json!([]));
    let response = invoke(&http, port, "http", &fixture("http-history.json", "unknown")).await;
    assert_eq!(response["statusCode"], 400);

    // $connect maps the connection to the session.
    let response = invoke(&http, port, "ws-connect", &fixture("ws-connect.json", &token)).await;
    assert_eq!(response["statusCode"], 200, "{response}");
    let mapped: Option<String> = conn.get("chat:conn:{Bx1cYeErvHcCFkA=}").await.unwrap();
    assert_eq!(mapped.as_deref(), Some(token.as_str()));
    let refused = invoke(&http, port, "ws-connect", &fixture("ws-connect.json", &"A".repeat(43))).await;
    assert_eq!(refused["statusCode"], 403);

    // $default stores the question, queues it and answers with an ack frame.
    let response = invoke(&http, port, "ws-message", &fixture("ws-message.json", &token)).await;
    assert_eq!(response["statusCode"], 200, "{response}");
    let frame: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(frame, serde_json::json!({"type": "ack", "id": "m1", "reply_id": "m1.reply", "conversation": "main"}));
    let queued: usize = conn.xlen("chat:requests").await.unwrap();
    assert_eq!(queued, 1);

    // The message function invoked the worker (WORKER_FUNCTION_NAME), which drained the stream:
    // the reply is stored, and the connection the Management API calls gone is forgotten.
    let order_key = chat_testkit::main_keys(&token).order;
    let answered = chat_testkit::wait::wait_until(Duration::from_secs(60), Duration::from_millis(100), || {
        let (mut conn, key) = (conn.clone(), order_key.clone());
        async move { conn.lrange::<_, Vec<String>>(key, 0, -1).await.unwrap().len() == 2 }
    })
    .await;
    assert!(answered, "the worker the message function invoked answered the question");
    let order: Vec<String> = conn.lrange(&order_key, 0, -1).await.unwrap();
    assert_eq!(order, ["m1", "m1.reply"]);
    // The schedule's invocation (the minute's reclaim) finds nothing left.
    let response = invoke(&http, port, "worker", &fixture("worker-schedule.json", "")).await;
    assert_eq!(response, serde_json::json!({"processed": 0}));
    let reply: String = conn.hget(chat_testkit::main_keys(&token).messages, "m1.reply").await.unwrap();
    assert!(reply.contains("You said: What is Rust?"), "{reply}");
    let conns: Vec<String> = conn.smembers(chat_testkit::session_keys(&token).conns).await.unwrap();
    assert!(conns.is_empty(), "gone connection dropped: {conns:?}");
    // The worker called the model (the reply, and the conversation's title after it) with the key
    // it read from Secrets Manager.
    let authorizations = stub.authorizations();
    let from_secrets = Some("Bearer sk-from-secrets-manager");
    assert!(!authorizations.is_empty(), "the model was called");
    assert!(authorizations.iter().all(|sent| sent.as_deref() == from_secrets), "{authorizations:?}");

    // $disconnect forgets the mapping.
    let _: () = conn.set("chat:conn:{Bx1cYeErvHcCFkA=}", &token).await.unwrap();
    let response = invoke(&http, port, "ws-disconnect", &fixture("ws-disconnect.json", &token)).await;
    assert_eq!(response["statusCode"], 200, "{response}");
    let mapped: Option<String> = conn.get("chat:conn:{Bx1cYeErvHcCFkA=}").await.unwrap();
    assert!(mapped.is_none());
}

#[tokio::test]
async fn the_site_deploy_step_uploads_the_app_and_its_config() {
    // LocalStack's S3 plays the site bucket (in AWS the stack creates it).
    let dist = workspace().join("frontend/dist");
    assert!(dist.join("index.html").is_file(), "build the web app first: scripts/build-frontend.sh");
    let config = r#"{"apiUrl":"https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com","wsUrl":"wss://w1x2y3z4v5.execute-api.eu-west-1.amazonaws.com/prod","maxMessageBytes":8192}"#;
    let localstack_bin = PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/chatbot/localstack-venv/bin");
    let path = format!("{}:{}", localstack_bin.display(), std::env::var("PATH").unwrap_or_default());
    let bucket = format!("chatbot-site-{}", std::process::id());
    let aws = |command: &mut std::process::Command| {
        command
            .env("PATH", &path)
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .output()
            .expect("the command runs")
    };
    let created = aws(std::process::Command::new("aws").args(["s3", "mb", &format!("s3://{bucket}")]));
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    // What an earlier deploy left: an asset the new index.html no longer names.
    let stale = std::env::temp_dir().join(format!("stale-{}.js", std::process::id()));
    std::fs::write(&stale, "// an older build").unwrap();
    let seeded = aws(std::process::Command::new("aws").args([
        "s3",
        "cp",
        stale.to_str().unwrap(),
        &format!("s3://{bucket}/chat-frontend-0000000000000000.js"),
    ]));
    assert!(seeded.status.success(), "{}", String::from_utf8_lossy(&seeded.stderr));
    let deployed = aws(std::process::Command::new(workspace().join("scripts/deploy-site.sh"))
        .env("SITE_BUCKET", &bucket)
        .env("SITE_CONFIG_JSON", config));
    assert!(deployed.status.success(), "{}", String::from_utf8_lossy(&deployed.stderr));

    // Each object's metadata, as S3 keeps it.
    let head = |key: &str| {
        let out =
            aws(std::process::Command::new("aws").args(["s3api", "head-object", "--bucket", &bucket, "--key", key]));
        assert!(out.status.success(), "{key}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let modified = |meta: &Value| {
        let text = meta["LastModified"].as_str().unwrap();
        chrono::DateTime::parse_from_rfc2822(text).or_else(|_| chrono::DateTime::parse_from_rfc3339(text)).unwrap()
    };
    let index = head("index.html");
    assert_eq!(index["CacheControl"], "no-cache");
    assert_eq!(head("config.json")["CacheControl"], "no-cache");
    let http = reqwest::Client::new();
    let fetch = |name: &str| {
        let http = http.clone();
        let url = format!("http://127.0.0.1:4566/{bucket}/{name}");
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    assert_eq!(fetch("index.html").await, std::fs::read_to_string(dist.join("index.html")).unwrap());
    assert_eq!(fetch("config.json").await.trim(), config);
    // Files whose names do not change with their content are revalidated on every load, and
    // carry the type a browser needs (the manifest's is not a common one).
    let manifest = head("manifest.webmanifest");
    assert_eq!(
        (manifest["CacheControl"].as_str(), manifest["ContentType"].as_str()),
        (Some("no-cache"), Some("application/manifest+json"))
    );
    assert_eq!(head("favicon.ico")["CacheControl"], "no-cache");
    assert_eq!(head("icons/icon-512.png")["ContentType"], "image/png");
    let (mut assets, mut compressed) = (0, 0);
    for entry in std::fs::read_dir(&dist).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if ["index.html", "config.json", "manifest.webmanifest", "favicon.ico"].contains(&name.as_str())
            || entry.file_type().unwrap().is_dir()
        {
            continue;
        }
        // The compressed copies are the local site's: CloudFront compresses on its own.
        if name.ends_with(".gz") || name.ends_with(".br") {
            compressed += 1;
            continue;
        }
        let meta = head(&name);
        assert_eq!(meta["CacheControl"], "public, max-age=31536000, immutable", "{name}");
        // Uploaded before the index.html that names it (S3 keeps whole seconds).
        assert!(modified(&meta) <= modified(&index), "{name} was uploaded after index.html");
        assets += 1;
    }
    assert!(assets >= 3, "the wasm, its JS and the stylesheet");
    // The old build's asset is gone, but only after the new index.html was in place.
    let listed = aws(std::process::Command::new("aws").args(["s3", "ls", &format!("s3://{bucket}/")]));
    let listing = String::from_utf8_lossy(&listed.stdout);
    assert!(!listing.contains("chat-frontend-0000000000000000.js"), "stale asset kept:\n{listing}");
    assert!(compressed >= 3, "the build writes compressed copies of the wasm, its JS and the stylesheet");
    assert!(!listing.contains(".gz") && !listing.contains(".br"), "compressed copies uploaded:\n{listing}");
    let stdout = String::from_utf8_lossy(&deployed.stdout);
    let step = |text: &str| stdout.find(text).unwrap_or_else(|| panic!("no step {text:?} in:\n{stdout}"));
    assert!(step("1/3") < step("2/3") && step("2/3") < step("3/3"), "{stdout}");
}
