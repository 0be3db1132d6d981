//! Measuring: percentiles and rounding, the stub model's own timings (the reference the pipeline
//! is compared with), and each process's CPU and memory during a measurement ([`Watch`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_stub_model::StubModel;
use chat_testkit::Error;
use futures_util::StreamExt;
use serde_json::{json, Value};

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// p-th percentile (0..=100) of samples in milliseconds.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// CPU time (user + system) and resident memory of a process, from /proc.
#[derive(Debug, Clone, Copy, Default)]
struct ProcStat {
    cpu_seconds: f64,
    rss_bytes: u64,
}

fn proc_stat(pid: u32) -> ProcStat {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name: utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    // CLK_TCK is 100 on Linux.
    ProcStat { cpu_seconds: (ticks(11) + ticks(12)) / 100.0, rss_bytes: rss_kb * 1024 }
}

/// Watches processes during a measurement: CPU used between start and stop, peak resident memory.
pub struct Watch {
    pids: Vec<(&'static str, u32)>,
    start: Vec<ProcStat>,
    peak: Arc<Mutex<Vec<u64>>>,
    sampler: tokio::task::JoinHandle<()>,
    started: Instant,
}

impl Watch {
    pub fn start(pids: Vec<(&'static str, u32)>) -> Watch {
        let start: Vec<ProcStat> = pids.iter().map(|(_, pid)| proc_stat(*pid)).collect();
        let peak = Arc::new(Mutex::new(start.iter().map(|s| s.rss_bytes).collect::<Vec<_>>()));
        let sampled = peak.clone();
        let watched: Vec<u32> = pids.iter().map(|(_, pid)| *pid).collect();
        let sampler = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let mut peak = sampled.lock().unwrap();
                for (i, pid) in watched.iter().enumerate() {
                    peak[i] = peak[i].max(proc_stat(*pid).rss_bytes);
                }
            }
        });
        Watch { pids, start, peak, sampler, started: Instant::now() }
    }

    /// Each process's figures: CPU seconds, CPU percent of one core, peak resident memory.
    pub fn stop(self) -> Vec<Value> {
        self.sampler.abort();
        let wall = self.started.elapsed().as_secs_f64();
        let peak = self.peak.lock().unwrap().clone();
        self.pids
            .iter()
            .zip(self.start.iter())
            .zip(peak)
            .map(|(((name, pid), start), peak)| {
                let end = proc_stat(*pid);
                json!({
                    "process": name,
                    "cpu_seconds": round3(end.cpu_seconds - start.cpu_seconds),
                    "cpu_percent_of_one_core": round1(100.0 * (end.cpu_seconds - start.cpu_seconds) / wall),
                    "peak_rss_mib": round1(peak as f64 / 1048576.0),
                })
            })
            .collect()
    }
}

/// A streamed chat completion from the stub, straight from an HTTP client.
async fn stub_stream(http: &reqwest::Client, stub: &StubModel) -> Result<reqwest::Response, Error> {
    let body = json!({"model": "stub", "stream": true, "messages": [{"role": "user", "content": "hello"}]});
    Ok(http.post(format!("{}/chat/completions", stub.base_url())).json(&body).send().await?)
}

/// The stub's own time to its first content chunk, from a direct HTTP client: the reference the
/// pipeline's first-token time is compared with.
pub async fn stub_first_token(http: &reqwest::Client, stub: &StubModel) -> Result<Duration, Error> {
    let started = Instant::now();
    let mut stream = stub_stream(http, stub).await?.bytes_stream();
    let mut seen = Vec::new();
    while let Some(chunk) = stream.next().await {
        seen.extend_from_slice(&chunk?);
        if has_content(&seen) {
            let first = started.elapsed();
            while stream.next().await.is_some() {}
            return Ok(first);
        }
    }
    Err("the stub sent no content".into())
}

/// The median of `n` [`stub_first_token`]s, in milliseconds.
pub async fn stub_first_token_p50(http: &reqwest::Client, stub: &StubModel, n: usize) -> Result<f64, Error> {
    let mut reference = Vec::with_capacity(n);
    for _ in 0..n {
        reference.push(ms(stub_first_token(http, stub).await?));
    }
    Ok(percentile(&reference, 50.0))
}

/// Whether an SSE body holds a non-empty `content` delta yet.
fn has_content(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    text.match_indices("\"content\":\"").any(|(i, m)| text[i + m.len()..].chars().next().is_some_and(|c| c != '"'))
}

/// The stub's own emission rate for a reply, from a direct HTTP client: tokens per second between
/// its first and last content chunks.
pub async fn stub_rate(http: &reqwest::Client, stub: &StubModel) -> Result<(f64, usize), Error> {
    let mut stream = stub_stream(http, stub).await?.bytes_stream();
    let (mut first, mut last, mut chunks) = (None, None, 0usize);
    let mut buffer = String::new();
    while let Some(chunk) = stream.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if has_content(event.as_bytes()) {
                let now = Instant::now();
                first.get_or_insert(now);
                last = Some(now);
                chunks += 1;
            }
        }
    }
    let span = last.zip(first).map(|(l, f)| (l - f).as_secs_f64()).unwrap_or(0.0);
    Ok(((chunks.saturating_sub(1)) as f64 / span, chunks))
}
