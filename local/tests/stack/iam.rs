//! IAM authentication as ElastiCache and MemoryDB run it, against a real redis-server: the
//! product signs its `AUTH` password with the AWS credentials it finds, a user whose passwords are
//! exactly those tokens lets it in, a token for another cache does not, and a connection kept past
//! `REDIS_IAM_REFRESH_SECONDS` authenticates again without being closed.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use chat_core::store::iam::{auth_token, IamAuth};
use chat_local::redis_server::{free_port, RedisServer};
use chat_stub_model::{Pacing, StubModel};
use chat_testkit::{process, wait, TempDir, Vars};
use tokio::process::Child;

const ACCESS_KEY: &str = "AKIDCHATBOTTEST";
const SECRET_KEY: &str = "chatbot/test/secret";

fn auth(cache_name: &str) -> IamAuth {
    IamAuth {
        user: "chatbot".into(),
        cache_name: cache_name.into(),
        region: "eu-west-1".into(),
        service: "elasticache".into(),
        serverless: false,
        refresh: Duration::from_secs(2),
    }
}

/// `local` on `redis_url` with IAM authentication for `cache_name`, serving HTTP on `port`.
fn spawn_local(redis_url: &str, stub: &StubModel, cache_name: &str, port: u16) -> Child {
    let env = Vars::stack(redis_url, stub, "test-key")
        .set("REDIS_IAM_AUTH", "true")
        .set("REDIS_IAM_CACHE_NAME", cache_name)
        .set("REDIS_IAM_REFRESH_SECONDS", "2")
        .set("AWS_REGION", "eu-west-1")
        .set("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .set("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .set("AWS_EC2_METADATA_DISABLED", "true")
        .set("LOCAL_HTTP_PORT", port.to_string())
        .set("LOCAL_SITE_DIR", "/nonexistent")
        .set("RUST_LOG", "warn")
        .inherit("PATH")
        .inherit("HOME");
    process::spawn_quiet(&mut tokio::process::Command::new(env!("CARGO_BIN_EXE_local")), &env).expect("local starts")
}

async fn auth_calls(admin: &mut redis::aio::MultiplexedConnection) -> u64 {
    let stats: String = redis::cmd("INFO").arg("commandstats").query_async(admin).await.unwrap();
    stats
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_auth:calls="))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// The ages in seconds of the connections authenticated as `chatbot`.
async fn chatbot_connection_ages(admin: &mut redis::aio::MultiplexedConnection) -> Vec<u64> {
    let clients: String = redis::cmd("CLIENT").arg("LIST").query_async(admin).await.unwrap();
    clients
        .lines()
        .filter(|line| line.split(' ').any(|field| field == "user=chatbot"))
        .filter_map(|line| line.split(' ').find_map(|field| field.strip_prefix("age="))?.parse().ok())
        .collect()
}

#[tokio::test]
async fn the_product_signs_in_with_iam_tokens_and_re_authenticates_long_lived_connections() {
    let dir = TempDir::new("chat-iam");
    let redis = RedisServer::start(dir.path(), false).await.unwrap();
    let mut admin = redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    // The IAM-enabled user, whose passwords are the tokens the product will sign for cache
    // `chat-cache`: one per second over the next three minutes (a token names its second).
    let credentials = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test");
    let start = SystemTime::now() - Duration::from_secs(1);
    let mut user = redis::cmd("ACL");
    user.arg("SETUSER").arg("chatbot").arg("on").arg("~*").arg("&*").arg("+@all");
    for second in 0..180 {
        let token = auth_token(&auth("chat-cache"), &credentials, start + Duration::from_secs(second)).unwrap();
        user.arg(format!(">{token}"));
    }
    let () = user.query_async(&mut admin).await.unwrap();
    let stub = StubModel::start(Pacing::default()).await;
    let http = reqwest::Client::new();
    let url = format!("redis://chatbot@127.0.0.1:{}", redis.port());

    // Signed for another cache, the token is refused: the password is checked.
    let port = free_port();
    let _wrong = spawn_local(&url, &stub, "another-cache", port);
    assert!(wait::wait_for_port(port, Duration::from_secs(60)).await);
    let refused = http.post(format!("http://127.0.0.1:{port}/token")).form(&[("name", "Ada")]).send().await.unwrap();
    assert_eq!(refused.status(), 503, "{}", refused.text().await.unwrap());

    let port = free_port();
    let _local = spawn_local(&url, &stub, "chat-cache", port);
    let base = format!("http://127.0.0.1:{port}");
    assert!(wait::wait_healthy(&http, &base, Duration::from_secs(60)).await, "the stack signs in and is healthy");
    let created = http.post(format!("{base}/token")).form(&[("name", "Ada")]).send().await.unwrap();
    assert_eq!(created.status(), 200);
    assert!(!chatbot_connection_ages(&mut admin).await.is_empty(), "connected as the IAM user");

    // Past the refresh interval, the same connections authenticate again and stay usable.
    let before = auth_calls(&mut admin).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = auth_calls(&mut admin).await;
    assert!(after > before, "AUTH was sent again ({before} -> {after})");
    let ages = chatbot_connection_ages(&mut admin).await;
    assert!(ages.iter().any(|&age| age >= 4), "a connection older than the interval is still open: {ages:?}");
    let again = http.post(format!("{base}/token")).form(&[("name", "Bob")]).send().await.unwrap();
    assert_eq!(again.status(), 200);
}
