//! Starting a real redis-server on a free port: for the local run and for tests.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A redis-server child process, killed when dropped.
pub struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
    append_only: bool,
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
}

impl RedisServer {
    /// Starts redis-server on a free loopback port with its files in `dir`; with `append_only`
    /// every acknowledged write survives a restart (as production Redis should be configured).
    pub async fn start(dir: &Path, append_only: bool) -> Result<Self, RedisServerError> {
        Self::start_on(free_port(), dir, append_only).await
    }

    /// Starts redis-server on `port`.
    pub async fn start_on(port: u16, dir: &Path, append_only: bool) -> Result<Self, RedisServerError> {
        std::fs::create_dir_all(dir).map_err(RedisServerError::Spawn)?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", if append_only { "yes" } else { "no" }])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(RedisServerError::Spawn)?;
        let server = RedisServer { child, port, dir: dir.to_path_buf(), append_only };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&self) -> Result<(), RedisServerError> {
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

    /// The URL to connect to.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
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
        let again = Self::start_on(self.port, &self.dir.clone(), self.append_only).await?;
        *self = again;
        Ok(())
    }
}

/// A port that was free a moment ago (bind to port 0, read it, release it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("bind a free port")
}
