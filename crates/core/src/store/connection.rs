//! The connection to Redis: a standalone server (with or without replicas behind one endpoint) or
//! a Redis Cluster (ElastiCache Serverless, sharded ElastiCache, MemoryDB), told apart when the
//! store first connects by asking the server (`INFO cluster`). `REDIS_URL` names the server, or
//! any node or the configuration endpoint of a cluster; nothing else says which it is.
//!
//! Both kinds follow what happens to the server without a restart of ours: the standalone
//! connection reconnects, the cluster connection follows `MOVED`, `ASK` and failovers.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, TlsCertificates, Value};

use super::iam::{IamAuth, IamCredentials};
use super::StoreError;

/// What is needed to connect, read once from the configuration.
#[derive(Clone)]
pub(super) struct RedisSettings {
    pub url: crate::config::RedisUrl,
    /// The private CA's PEM, for `rediss://` behind one.
    pub root_cert: Option<Vec<u8>>,
    pub iam: Option<IamAuth>,
    /// How long a command may take before it counts as failed (longer for blocking reads).
    pub response_timeout: Option<Duration>,
}

/// A connection to a standalone server or to a cluster. Cheap to clone: clones share one
/// multiplexed connection (per node, in a cluster).
#[derive(Clone)]
pub enum RedisConnection {
    /// One server: a multiplexed connection that reconnects by itself.
    Standalone(ConnectionManager),
    /// A cluster: one multiplexed connection per node, routed by each command's key.
    Cluster(ClusterConnection),
}

impl RedisConnection {
    /// Connects to `REDIS_URL`, in cluster mode if the server says it runs as part of a cluster.
    pub(super) async fn open(settings: &RedisSettings) -> Result<Self, StoreError> {
        crate::install_crypto_provider();
        let certificates = || TlsCertificates { client_tls: None, root_cert: settings.root_cert.clone() };
        let client = match settings.root_cert {
            Some(_) => redis::Client::build_with_tls(settings.url.as_str(), certificates())?,
            None => redis::Client::open(settings.url.as_str())?,
        };
        let credentials = settings.iam.clone().map(IamCredentials::new);
        if is_cluster(&client, credentials.clone()).await? {
            tracing::info!("redis runs in cluster mode");
            let mut builder = ClusterClientBuilder::new([settings.url.as_str()])
                .connection_timeout(Duration::from_secs(2))
                .retries(6)
                .min_retry_wait(50)
                .max_retry_wait(1_000);
            if let Some(timeout) = settings.response_timeout {
                builder = builder.response_timeout(timeout);
            }
            if settings.root_cert.is_some() {
                builder = builder.certs(certificates());
            }
            if let Some(credentials) = credentials {
                builder = builder.set_credentials_provider(credentials);
            }
            return Ok(RedisConnection::Cluster(builder.build()?.get_async_connection().await?));
        }
        let mut manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(settings.response_timeout)
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        if let Some(credentials) = credentials {
            manager_config = manager_config.set_credentials_provider(credentials);
        }
        Ok(RedisConnection::Standalone(ConnectionManager::new_with_config(client, manager_config).await?))
    }

    /// Whether this is a cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConnection::Cluster(_))
    }
}

/// Asks the server named by the URL whether it is a cluster node.
async fn is_cluster(client: &redis::Client, credentials: Option<IamCredentials>) -> Result<bool, StoreError> {
    let mut probe_config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    if let Some(credentials) = credentials {
        probe_config = probe_config.set_credentials_provider(credentials);
    }
    let mut probe = client.get_multiplexed_async_connection_with_config(&probe_config).await?;
    let info: String = redis::cmd("INFO").arg("cluster").query_async(&mut probe).await?;
    Ok(info.lines().any(|line| line.trim() == "cluster_enabled:1"))
}

/// Refuses a script call whose keys lie in more than one hash slot, on a standalone server too, so
/// that a key added to a script on one side of a slot boundary fails every test, not production.
fn ensure_one_slot(cmd: &Cmd) -> redis::RedisResult<()> {
    let mut args = cmd.args_iter().map(|arg| match arg {
        redis::Arg::Simple(bytes) => bytes,
        _ => &[],
    });
    let Some(name) = args.next() else { return Ok(()) };
    if !(name.eq_ignore_ascii_case(b"EVALSHA") || name.eq_ignore_ascii_case(b"EVAL")) {
        return Ok(());
    }
    let _script = args.next();
    let count = args.next().and_then(|n| std::str::from_utf8(n).ok()?.parse::<usize>().ok()).unwrap_or(0);
    let mut slots = args.take(count).map(Slot::for_key);
    let Some(first) = slots.next() else { return Ok(()) };
    if slots.all(|slot| slot == first) {
        Ok(())
    } else {
        Err(redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::CrossSlot),
            "a script's keys are in more than one hash slot",
        )))
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        if let Err(error) = ensure_one_slot(cmd) {
            return Box::pin(async move { Err(error) });
        }
        match self {
            RedisConnection::Standalone(conn) => conn.req_packed_command(cmd),
            RedisConnection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Standalone(conn) => conn.req_packed_commands(pipeline, offset, count),
            RedisConnection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Standalone(conn) => conn.get_db(),
            RedisConnection::Cluster(conn) => conn.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script_call(keys: &[&str]) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg("0123456789abcdef0123456789abcdef01234567").arg(keys.len()).arg(keys).arg("an argument");
        cmd
    }

    #[test]
    fn a_script_call_with_keys_of_two_slots_is_refused_before_it_is_sent() {
        assert!(ensure_one_slot(&script_call(&["chat:{a}:session", "chat:{a}:conns", "chat:{a}:log:m1.reply"])).is_ok());
        let refused = ensure_one_slot(&script_call(&["chat:{a}:session", "chat:conn:c1"])).unwrap_err();
        assert_eq!(refused.kind(), redis::ErrorKind::Server(redis::ServerErrorKind::CrossSlot));
        // Commands other than scripts are the server's business.
        let mut mget = redis::cmd("MGET");
        mget.arg("a").arg("b");
        assert!(ensure_one_slot(&mget).is_ok());
    }
}
