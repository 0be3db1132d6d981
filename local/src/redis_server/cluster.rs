//! A Redis Cluster of six nodes on loopback (three primaries, three replicas), as AWS runs Redis:
//! forming it, reading its topology from `CLUSTER NODES`, moving a slot, killing and restarting
//! nodes.

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use super::{cli_args, free_port, redis_cli, RedisServer, RedisServerError, Tls};

/// A Redis Cluster on loopback, as AWS runs Redis: three primaries with one replica each, made
/// with `redis-cli --cluster create`. Its nodes are killed when it is dropped.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    tls: Option<Tls>,
}

impl RedisCluster {
    /// Six cluster nodes on free ports, their files under `dir`, joined into a cluster whose nodes
    /// count a peer as failed after `node_timeout` (short in tests: a failover takes about twice
    /// that). Returns once every node sees all slots served.
    pub async fn start(dir: &Path, node_timeout: Duration) -> Result<Self, RedisServerError> {
        Self::start_with(dir, node_timeout, None).await
    }

    /// Like [`RedisCluster::start`], every node speaking only TLS (to clients, to each other and
    /// to replicas), as ElastiCache Serverless does.
    pub async fn start_tls(dir: &Path, node_timeout: Duration, tls: Tls) -> Result<Self, RedisServerError> {
        Self::start_with(dir, node_timeout, Some(tls)).await
    }

    async fn start_with(dir: &Path, node_timeout: Duration, tls: Option<Tls>) -> Result<Self, RedisServerError> {
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let port = free_cluster_port();
            let args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                &node_timeout.as_millis().to_string(),
                // Other shards keep serving while one fails over, as on ElastiCache.
                "--cluster-require-full-coverage",
                "no",
                // A replica that (re)joins syncs at once rather than after 5 s.
                "--repl-diskless-sync-delay",
                "0",
            ];
            let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            if tls.is_some() {
                args.extend(["--tls-cluster", "yes"].map(String::from));
            }
            nodes.push(RedisServer::start_with(port, &dir.join(port.to_string()), true, args, tls.clone()).await?);
        }
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let created = Command::new("redis-cli")
            .args(cli_args(tls.as_ref()))
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .await
            .map_err(RedisServerError::Spawn)?;
        if !created.status.success() {
            return Err(RedisServerError::Cluster(String::from_utf8_lossy(&created.stdout).into_owned()));
        }
        let cluster = RedisCluster { nodes, tls };
        cluster.wait_settled(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    /// Waits until every running node reports `cluster_state:ok` and three primaries, each
    /// streaming its writes to a replica, serve all 16,384 slots.
    pub async fn wait_settled(&self, within: Duration) -> Result<(), RedisServerError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut settled = true;
            for node in self.nodes.iter().filter(|n| n.pid().is_some()) {
                let info = redis_cli(self.tls.as_ref(), node.port, &["cluster", "info"]).await.unwrap_or_default();
                settled &= info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384");
            }
            if settled {
                let topology = self.topology().await?;
                settled = topology.len() == 3 && topology.iter().all(|shard| shard.replica.is_some());
                // Joined is not yet replicating: each primary must stream to its replica.
                for shard in &topology {
                    let replication =
                        redis_cli(self.tls.as_ref(), shard.primary, &["info", "replication"]).await.unwrap_or_default();
                    settled &= replication.contains("state=online");
                }
            }
            if settled {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(RedisServerError::Cluster(format!("not settled within {within:?}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The URL of one node: all the product needs to find the others.
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// The process id of the node on `port`, while it runs.
    pub fn pid(&self, port: u16) -> Option<u32> {
        self.nodes.iter().find(|n| n.port == port)?.pid()
    }

    /// Each running node's port.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The shards as the first answering node sees them: each primary's port, slot ranges and
    /// connected replica.
    pub async fn topology(&self) -> Result<Vec<Shard>, RedisServerError> {
        for node in self.nodes.iter().filter(|n| n.pid().is_some()) {
            if let Ok(nodes) = redis_cli(self.tls.as_ref(), node.port, &["cluster", "nodes"]).await {
                return Ok(Shard::parse_all(&nodes));
            }
        }
        Err(RedisServerError::Cluster("no node answers".into()))
    }

    /// The port of the primary that serves `key` now.
    pub async fn primary_of(&self, key: &str) -> Result<u16, RedisServerError> {
        let port = self.nodes.iter().find(|n| n.pid().is_some()).map_or(0, |n| n.port);
        let slot: u16 = redis_cli(self.tls.as_ref(), port, &["cluster", "keyslot", key])
            .await?
            .trim()
            .parse()
            .map_err(|_| RedisServerError::Cluster("CLUSTER KEYSLOT answered no number".into()))?;
        self.topology()
            .await?
            .into_iter()
            .find(|shard| shard.slots.iter().any(|(start, end)| (*start..=*end).contains(&slot)))
            .map(|shard| shard.primary)
            .ok_or_else(|| RedisServerError::Cluster(format!("no primary serves slot {slot}")))
    }

    /// Moves the hash slot that holds `key`, with its keys, from its primary to another one, as a
    /// resharding does (`CLUSTER SETSLOT ... IMPORTING/MIGRATING`, `MIGRATE`, `SETSLOT ... NODE`).
    /// Returns the ports of the old and the new primary.
    pub async fn move_slot_of(&self, key: &str) -> Result<(u16, u16), RedisServerError> {
        let tls = self.tls.as_ref();
        let from = self.primary_of(key).await?;
        let to = self
            .topology()
            .await?
            .into_iter()
            .map(|s| s.primary)
            .find(|&p| p != from)
            .ok_or_else(|| RedisServerError::Cluster("no other primary to move a slot to".into()))?;
        let any = self.nodes[0].port;
        let slot = redis_cli(tls, any, &["cluster", "keyslot", key]).await?.trim().to_string();
        let id = |port| async move { redis_cli(tls, port, &["cluster", "myid"]).await.map(|id| id.trim().to_string()) };
        let (from_id, to_id) = (id(from).await?, id(to).await?);
        redis_cli(tls, to, &["cluster", "setslot", &slot, "importing", &from_id]).await?;
        redis_cli(tls, from, &["cluster", "setslot", &slot, "migrating", &to_id]).await?;
        loop {
            let keys = redis_cli(tls, from, &["cluster", "getkeysinslot", &slot, "100"]).await?;
            let keys: Vec<&str> = keys.lines().map(str::trim).filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let to_port = to.to_string();
            let mut args = vec!["migrate", "127.0.0.1", &to_port, "", "0", "5000", "keys"];
            args.extend(keys);
            redis_cli(tls, from, &args).await?;
        }
        for shard in self.topology().await? {
            redis_cli(tls, shard.primary, &["cluster", "setslot", &slot, "node", &to_id]).await?;
        }
        Ok((from, to))
    }

    /// Kills the node on `port` (SIGKILL).
    pub async fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port == port) {
            node.stop().await;
        }
    }

    /// Starts the node on `port` again with its files; it rejoins (as a replica, if it was failed
    /// over).
    pub async fn restart(&mut self, port: u16) -> Result<(), RedisServerError> {
        match self.nodes.iter_mut().find(|n| n.port == port) {
            Some(node) => node.restart().await,
            None => Err(RedisServerError::Cluster(format!("no node on port {port}"))),
        }
    }
}

/// One shard of a cluster, from `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// The primary's port.
    pub primary: u16,
    /// The slot ranges it serves.
    pub slots: Vec<(u16, u16)>,
    /// A connected replica's port.
    pub replica: Option<u16>,
}

impl Shard {
    /// Shards of live primaries that serve slots, from `CLUSTER NODES` text.
    fn parse_all(nodes: &str) -> Vec<Shard> {
        struct Node<'a> {
            id: &'a str,
            port: u16,
            primary: bool,
            alive: bool,
            primary_id: &'a str,
            slots: Vec<(u16, u16)>,
        }
        let parsed: Vec<Node> = nodes
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.len() < 8 {
                    return None;
                }
                let port = fields[1].split('@').next()?.rsplit(':').next()?.parse().ok()?;
                let flags = fields[2];
                let slots = fields[8..]
                    .iter()
                    .filter(|range| !range.starts_with('['))
                    .filter_map(|range| match range.split_once('-') {
                        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                        None => range.parse().ok().map(|s| (s, s)),
                    })
                    .collect();
                Some(Node {
                    id: fields[0],
                    port,
                    primary: flags.contains("master"),
                    alive: !flags.contains("fail") && fields[7] == "connected",
                    primary_id: fields[3],
                    slots,
                })
            })
            .collect();
        parsed
            .iter()
            .filter(|n| n.primary && n.alive && !n.slots.is_empty())
            .map(|p| Shard {
                primary: p.port,
                slots: p.slots.clone(),
                replica: parsed.iter().find(|r| !r.primary && r.alive && r.primary_id == p.id).map(|r| r.port),
            })
            .collect()
    }
}

/// A free port for a cluster node: at most 55535, since a node's cluster bus listens 10,000
/// above it (redis-server exits otherwise), and with that bus port free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port <= 55535 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}
