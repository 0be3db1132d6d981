//! Stack processes started as children: `local worker` beside the gateway, as on a second machine.

use std::path::Path;
use std::process::Stdio;

use tokio::process::{Child, Command};

use crate::env::Vars;

/// Starts `command` with only `env` in its environment and its output discarded; it is killed
/// when the [`Child`] is dropped.
pub fn spawn_quiet(command: &mut Command, env: &Vars) -> std::io::Result<Child> {
    command.env_clear().envs(env.iter()).stdout(Stdio::null()).kill_on_drop(true).spawn()
}

/// `local worker` (`local` is the `local` binary's path): one more worker process against the
/// same Redis, reading the stream as `consumer`.
pub fn spawn_worker(local: &Path, env: &Vars, consumer: &str) -> std::io::Result<Child> {
    spawn_quiet(Command::new(local).arg("worker"), &env.clone().set("WORKER_CONSUMER", consumer))
}
