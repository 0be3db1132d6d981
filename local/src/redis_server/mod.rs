//! Starting a real redis-server on a free port, or a real Redis Cluster of six: for the local run
//! and for tests.
//!
//! Layout:
//! * this module: one [`RedisServer`] (with TLS, an `appendfsync` policy, kill and restart), the
//!   `redis-cli` and free-port helpers;
//! * `cluster`: a six-node [`RedisCluster`], its topology ([`Shard`]), slot moves and kills.

mod cluster;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

pub use cluster::{RedisCluster, Shard};

/// A redis-server child process, killed when dropped.
pub struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
    append_only: bool,
    extra_args: Vec<String>,
    tls: Option<Tls>,
}

/// TLS for a server: its certificate and key, and the CA that signed them (which clients trust).
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl Tls {
    /// redis-server's arguments: TLS only (no plain port), between cluster nodes and replicas too.
    fn server_args(&self, port: u16) -> Vec<String> {
        let mut args: Vec<String> = ["--port", "0", "--tls-port", &port.to_string()].map(String::from).to_vec();
        for (flag, path) in
            [("--tls-cert-file", &self.cert), ("--tls-key-file", &self.key), ("--tls-ca-cert-file", &self.ca)]
        {
            args.push(flag.into());
            args.push(path.display().to_string());
        }
        args.extend(["--tls-auth-clients", "no", "--tls-replication", "yes"].map(String::from));
        args
    }
}

/// redis-cli's arguments to reach a server with `tls`.
fn cli_args(tls: Option<&Tls>) -> Vec<String> {
    tls.map(|tls| vec!["--tls".into(), "--cacert".into(), tls.ca.display().to_string()]).unwrap_or_default()
}

/// Why redis-server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RedisServerError {
    /// The binary is missing or could not run.
    #[error("could not start redis-server ({0}); install it with `apt-get install redis-server` or set REDIS_URL")]
    Spawn(std::io::Error),
    /// It started but never answered.
    #[error("redis-server on port {0} did not answer within 10 s")]
    NotReady(u16),
    /// `redis-cli --cluster create` failed, or the cluster did not settle.
    #[error("the redis cluster could not be formed: {0}")]
    Cluster(String),
}

/// When the local redis-server flushes its append-only file (`appendfsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendFsync {
    /// Once a second (Redis's default): a machine crash can lose the last second. While the disk
    /// is slow to sync, Redis may hold its writes to the file back (up to two seconds) while it
    /// answers, so a process crash then can lose them too.
    EverySec,
    /// Before every acknowledgement: nothing acknowledged is lost, at a write's disk latency.
    Always,
    /// Left to the operating system: every write reaches the file (the page cache) before it is
    /// answered, so a crash of the process loses nothing; a crash of the machine can lose what
    /// the system had not yet written. The tests' stores, which kill the process, not the machine.
    No,
}

impl AppendFsync {
    /// The `appendfsync` value.
    pub fn as_str(self) -> &'static str {
        match self {
            AppendFsync::EverySec => "everysec",
            AppendFsync::Always => "always",
            AppendFsync::No => "no",
        }
    }
}

impl RedisServer {
    /// Starts redis-server on a free loopback port with its files in `dir`; with `append_only`
    /// every acknowledged write survives a restart (as production Redis should be configured).
    pub async fn start(dir: &Path, append_only: bool) -> Result<Self, RedisServerError> {
        Self::start_on(free_port(), dir, append_only).await
    }

    /// Starts redis-server with append-only persistence whose file is flushed to disk as `fsync`
    /// says: `everysec` (a machine crash can lose the last second of writes) or `always` (each
    /// write is on disk before it is acknowledged).
    pub async fn start_persistent(dir: &Path, fsync: AppendFsync) -> Result<Self, RedisServerError> {
        let args = vec!["--appendfsync".to_string(), fsync.as_str().to_string()];
        Self::start_with(free_port(), dir, true, args, None).await
    }

    /// Starts redis-server on `port`.
    pub async fn start_on(port: u16, dir: &Path, append_only: bool) -> Result<Self, RedisServerError> {
        Self::start_with(port, dir, append_only, Vec::new(), None).await
    }

    async fn start_with(
        port: u16,
        dir: &Path,
        append_only: bool,
        extra_args: Vec<String>,
        tls: Option<Tls>,
    ) -> Result<Self, RedisServerError> {
        std::fs::create_dir_all(dir).map_err(RedisServerError::Spawn)?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", if append_only { "yes" } else { "no" }])
            .arg("--dir")
            .arg(dir)
            .args(&extra_args)
            .args(tls.as_ref().map(|tls| tls.server_args(port)).unwrap_or_default())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(RedisServerError::Spawn)?;
        let server = RedisServer { child, port, dir: dir.to_path_buf(), append_only, extra_args, tls };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&self) -> Result<(), RedisServerError> {
        if self.tls.is_some() {
            for _ in 0..200 {
                if redis_cli(self.tls.as_ref(), self.port, &["ping"]).await.is_ok_and(|reply| reply.starts_with("PONG"))
                {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            return Err(RedisServerError::NotReady(self.port));
        }
        for _ in 0..200 {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut reply = [0u8; 16];
                if stream.write_all(b"PING\r\n").await.is_ok()
                    && matches!(stream.read(&mut reply).await, Ok(n) if reply[..n].starts_with(b"+PONG"))
                {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(RedisServerError::NotReady(self.port))
    }

    /// The URL to connect to (`rediss://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Its process id (benchmarks read its CPU time and memory), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL): an outage.
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Starts the server again on the same port and files.
    pub async fn restart(&mut self) -> Result<(), RedisServerError> {
        self.stop().await;
        let again =
            Self::start_with(self.port, &self.dir.clone(), self.append_only, self.extra_args.clone(), self.tls.clone())
                .await?;
        *self = again;
        Ok(())
    }
}

/// `redis-cli -p PORT ARGS...`'s output (over TLS with `tls`).
async fn redis_cli(tls: Option<&Tls>, port: u16, args: &[&str]) -> Result<String, RedisServerError> {
    let output = Command::new("redis-cli")
        .args(cli_args(tls))
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(RedisServerError::Spawn)?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() || text.starts_with("Could not connect") || text.starts_with("ERR") {
        return Err(RedisServerError::Cluster(format!("redis-cli -p {port} {}: {text}", args.join(" "))));
    }
    Ok(text)
}

/// A port that was free a moment ago (bind to port 0, read it, release it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("bind a free port")
}
