//! Redis over TLS (`rediss://`), as managed Redis services require: a real redis-server with TLS
//! on (a standalone server, and a cluster whose nodes speak only TLS, as ElastiCache Serverless),
//! a certificate from a private CA, and the store trusting that CA via `REDIS_CA_CERT_FILE`.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use chat_core::{Config, Store};
use chat_local::redis_server::{free_port, RedisCluster, Tls};
use chat_testkit::wait::wait_for_port;
use chat_testkit::TempDir;

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let status =
        Command::new("openssl").args(args).current_dir(dir).stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(status.is_ok_and(|s| s.success()), "openssl {args:?}");
}

/// A private CA and a certificate it signed for 127.0.0.1, in `dir`.
fn private_ca(dir: &std::path::Path) -> Tls {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );

    Tls { cert: dir.join("server.pem"), key: dir.join("server.key"), ca: dir.join("ca.pem") }
}

#[tokio::test]
async fn the_store_speaks_tls_to_redis() {
    let temp = TempDir::new("chat-tls");
    let dir = temp.path();
    private_ca(dir);

    let port = free_port();
    let _server = tokio::process::Command::new("redis-server")
        .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
        .args(["--tls-cert-file", "server.pem", "--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.pem"])
        .args(["--tls-auth-clients", "no", "--dir"])
        .arg(dir)
        .current_dir(dir)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server starts");
    assert!(wait_for_port(port, Duration::from_secs(30)).await, "redis-server with TLS did not start");

    let mut vars = HashMap::new();
    vars.insert("REDIS_URL".to_string(), format!("rediss://127.0.0.1:{port}"));
    vars.insert("REDIS_CA_CERT_FILE".to_string(), dir.join("ca.pem").display().to_string());
    let store = Store::connect(&Config::from_vars(&vars).unwrap()).unwrap();
    store.ping().await.expect("a TLS round trip");
    let session = store.create_session("Over TLS").await.unwrap();
    let token = chat_wire::Token::parse(&session.token).unwrap();
    assert_eq!(store.history(&token, &chat_wire::ConversationId::main()).await.unwrap().unwrap().name, "Over TLS");

    // Without the CA the certificate is refused: TLS is really verified.
    vars.remove("REDIS_CA_CERT_FILE");
    let untrusting = Store::connect(&Config::from_vars(&vars).unwrap()).unwrap();
    assert!(untrusting.ping().await.is_err());
}

#[tokio::test]
async fn the_store_speaks_tls_to_a_cluster_found_through_one_node() {
    let temp = TempDir::new("chat-tls-cluster");
    let tls = private_ca(temp.path());
    let ca = tls.ca.display().to_string();
    let cluster = RedisCluster::start_tls(&temp.path().join("nodes"), Duration::from_millis(1000), tls)
        .await
        .expect("a TLS cluster");
    let mut vars = HashMap::new();
    vars.insert("REDIS_URL".to_string(), cluster.url());
    vars.insert("REDIS_CA_CERT_FILE".to_string(), ca);
    assert!(cluster.url().starts_with("rediss://"));
    let store = Store::connect(&Config::from_vars(&vars).unwrap()).unwrap();
    assert!(store.connection().await.expect("a TLS round trip").is_cluster(), "cluster mode detected over TLS");
    // Sessions on every shard: each is written and read back through the cluster's TLS links.
    let mut primaries = std::collections::HashSet::new();
    for i in 0..12 {
        let session = store.create_session(&format!("TLS {i}")).await.unwrap();
        let token = chat_wire::Token::parse(&session.token).unwrap();
        assert_eq!(
            store.history(&token, &chat_wire::ConversationId::main()).await.unwrap().unwrap().name,
            format!("TLS {i}")
        );
        primaries.insert(cluster.primary_of(&chat_testkit::session_keys(&session.token).session).await.unwrap());
    }
    assert!(primaries.len() >= 2, "sessions on more than one shard: {primaries:?}");

    vars.remove("REDIS_CA_CERT_FILE");
    let untrusting = Store::connect(&Config::from_vars(&vars).unwrap()).unwrap();
    assert!(untrusting.ping().await.is_err(), "without the CA, the nodes' certificate is refused");
}
