//! `bench-model`: the embedded model's speed measured three ways in one run, side by side: the
//! engine called directly, through its OpenAI-compatible server, and through the whole chat path
//! (WebSocket -> gateway -> Redis stream -> worker -> model server -> Management API -> WebSocket).
//! Run it with `scripts/bench-model.sh`; it prints a table and writes `target/bench-model.json`.
//!
//! Each path gets the same 100-token prompt, greedy decoding and the same `max_tokens`, so each
//! produces the same tokens and the figures compare like with like.
//!
//! Then titles: the first token of a reply asked while a title is being written (as background
//! work, which gives way) beside the same reply alone and beside a title asked as before (a
//! reply-sized request ahead in the queue); and the titles the model gives 20 varied first
//! questions, each with what the worker keeps.

use std::time::{Duration, Instant};

use chat_core::Config;
use chat_local::redis_server::RedisServer;
use chat_local::Options;
use chat_model::engine::{Engine, Event, Generation, Turn};
use chat_testkit::{api, TempDir, WsClient};
use futures_util::StreamExt;
use serde_json::json;

const REPEATS: usize = 3;
const MAX_TOKENS: u32 = 96;

#[derive(Debug, Clone, Copy, Default)]
struct Run {
    prompt_tokens: usize,
    completion_tokens: usize,
    first_token: Duration,
    total: Duration,
}

impl Run {
    fn prompt_rate(&self) -> f64 {
        self.prompt_tokens as f64 / self.first_token.as_secs_f64()
    }
    fn decode_rate(&self) -> f64 {
        (self.completion_tokens.saturating_sub(1)) as f64 / (self.total - self.first_token).as_secs_f64()
    }
}

fn median(mut runs: Vec<Run>, key: impl Fn(&Run) -> f64) -> f64 {
    let mut values: Vec<f64> = runs.drain(..).map(|r| key(&r)).collect();
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn prompt() -> String {
    // About 100 tokens with SmolLM2's tokenizer and chat template.
    "Here is a list of things to describe in detail: the sea, the mountains, the forests, the rivers, \
     the deserts, the cities, the villages, the farms, the roads, the bridges, the skies, the clouds, \
     the stars, the planets, the moons. Describe each of them in a few sentences, in order, without \
     skipping any, and be as vivid as you can. Then end with one short paragraph that sums it all up."
        .to_string()
}

async fn direct(engine: &Engine) -> Run {
    let started = Instant::now();
    let mut events = engine.generate(Generation {
        turns: vec![Turn { role: "user".into(), content: prompt() }],
        max_tokens: MAX_TOKENS,
        temperature: 0.0,
        top_p: 1.0,
        seed: 1,
        stop: Vec::new(),
        background: false,
    });
    let mut run = Run::default();
    while let Some(event) = events.recv().await {
        match event {
            Event::Text(_) if run.first_token.is_zero() => run.first_token = started.elapsed(),
            Event::Text(_) => {}
            Event::Finished { prompt_tokens, completion_tokens, .. } => {
                run.total = started.elapsed();
                run.prompt_tokens = prompt_tokens;
                run.completion_tokens = completion_tokens;
            }
            Event::Failed(error) => panic!("engine failed: {error}"),
        }
    }
    run
}

async fn through_server(http: &reqwest::Client, base: &str) -> Run {
    let started = Instant::now();
    let response = http
        .post(format!("{base}/chat/completions"))
        .json(&json!({
            "messages": [{"role": "user", "content": prompt()}],
            "max_tokens": MAX_TOKENS, "temperature": 0, "seed": 1, "stream": true,
            "stream_options": {"include_usage": true}
        }))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut run = Run::default();
    let mut buffer = String::new();
    while let Some(chunk) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let data = event.trim().trim_start_matches("data: ");
            if data == "[DONE]" {
                run.total = started.elapsed();
                continue;
            }
            let value: serde_json::Value = serde_json::from_str(data).unwrap();
            let has_text = value["choices"][0]["delta"]["content"].as_str().is_some_and(|t| !t.is_empty());
            if has_text && run.first_token.is_zero() {
                run.first_token = started.elapsed();
            }
            if let Some(usage) = value.get("usage") {
                run.prompt_tokens = usage["prompt_tokens"].as_u64().unwrap() as usize;
                run.completion_tokens = usage["completion_tokens"].as_u64().unwrap() as usize;
            }
        }
    }
    run
}

async fn through_chat(http: &reqwest::Client, gateway: &str, tokens: (usize, usize), round: usize) -> Run {
    let session = api::create_session(http, &format!("http://{gateway}"), "bench").await.unwrap();
    let mut ws = WsClient::connect(&format!("ws://{gateway}/chat"), &session.token).await.unwrap();
    let reply = ws.timed_ask(&format!("b{round}"), &prompt(), Duration::from_secs(600)).await;
    let (Some(sent), Some(done)) = (reply.sent, reply.done) else {
        panic!("chat failed: {}", reply.error.as_deref().unwrap_or("no reply within 10 minutes"));
    };
    let first_token = reply.first_delta.map_or(Duration::ZERO, |first| first - sent);
    Run { prompt_tokens: tokens.0, completion_tokens: tokens.1, first_token, total: done - sent }
}

fn row(name: &str, runs: &[Run], reference: Option<&[Run]>) -> serde_json::Value {
    let prompt = median(runs.to_vec(), Run::prompt_rate);
    let decode = median(runs.to_vec(), Run::decode_rate);
    let first = median(runs.to_vec(), |r| r.first_token.as_secs_f64() * 1000.0);
    let ratio = reference.map(|reference| decode / median(reference.to_vec(), Run::decode_rate));
    println!(
        "{name:<28} {prompt:>10.1} {decode:>10.1} {first:>10.1} {:>14}",
        ratio.map_or("-".to_string(), |r| format!("{r:.3}"))
    );
    json!({"path": name, "prompt_tokens_per_s": prompt, "decode_tokens_per_s": decode,
           "first_token_ms": first, "decode_ratio_to_direct": ratio,
           "prompt_tokens": runs[0].prompt_tokens, "completion_tokens": runs[0].completion_tokens})
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut config = Config::from_env()?;
    let model = chat_model::ModelServerConfig::from_env()?;
    let engine = Engine::start(model.engine());
    engine.ready().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let model_base = format!("http://{}/v1", listener.local_addr()?);
    tokio::spawn(chat_model::server::serve(listener, engine.clone(), Default::default(), std::future::pending()));

    let dir = TempDir::new("bench-model");
    let redis = RedisServer::start(dir.path(), false).await?;
    config.redis_url = redis.url().into();
    config.model.base_url = model_base.clone();
    config.model.model = engine.name().to_string();
    config.model.system_prompt = String::new();
    config.model.max_reply_tokens = MAX_TOKENS;
    config.model.temperature = Some(0.0);
    config.model.seed = Some(1);
    let (gateway, _, _stop_gateway) = chat_testkit::app::serve(config.clone(), Options::default()).await;
    let gateway = gateway.to_string();

    let http = reqwest::Client::new();
    // Warm up every path once (page cache, connection pools, the worker's first read).
    let warm = direct(&engine).await;
    through_server(&http, &model_base).await;
    through_chat(&http, &gateway, (warm.prompt_tokens, warm.completion_tokens), 0).await;

    let (mut direct_runs, mut server_runs, mut chat_runs) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=REPEATS {
        direct_runs.push(direct(&engine).await);
        server_runs.push(through_server(&http, &model_base).await);
        let tokens = (server_runs[0].prompt_tokens, server_runs[0].completion_tokens);
        chat_runs.push(through_chat(&http, &gateway, tokens, round).await);
    }
    println!(
        "\n{} on {} threads, {}-token prompt, {} generated tokens, median of {REPEATS} interleaved runs\n",
        engine.name(),
        model.threads,
        direct_runs[0].prompt_tokens,
        direct_runs[0].completion_tokens
    );
    println!("{:<28} {:>10} {:>10} {:>10} {:>14}", "path", "prompt t/s", "decode t/s", "first ms", "decode/direct");
    let rows = vec![
        row("engine (direct)", &direct_runs, None),
        row("OpenAI-compatible server", &server_runs, Some(&direct_runs)),
        row("whole chat path (WebSocket)", &chat_runs, Some(&direct_runs)),
    ];
    let titles = titles(&engine, &model_base).await;
    let report = json!({"model": engine.name(), "threads": model.threads, "paths": rows, "titles": titles});
    std::fs::create_dir_all("target")?;
    std::fs::write("target/bench-model.json", serde_json::to_string_pretty(&report)?)?;
    println!("\nfigures written to target/bench-model.json");
    Ok(())
}

/// Twenty first questions of the kinds people ask.
const QUESTIONS: [&str; 20] = [
    "Hello! Who are you?",
    "How do I reverse a string in Rust?",
    "What is the capital of Australia?",
    "Can you help me write a cover letter for a nursing job?",
    "Explain quantum entanglement like I'm five.",
    "What should I cook tonight with chicken, rice and spinach?",
    "Translate 'good morning' into Japanese.",
    "Why is the sky blue?",
    "Write a haiku about autumn rain.",
    "What are the symptoms of vitamin D deficiency?",
    "How do I center a div in CSS?",
    "Plan a three-day trip to Lisbon for me.",
    "What's the difference between TCP and UDP?",
    "Summarize the plot of Hamlet.",
    "How much water should I drink per day?",
    "Give me five names for a bakery.",
    "My sourdough starter smells like acetone, is it dead?",
    "How do I set up a Python virtual environment?",
    "What happened in the French Revolution?",
    "Is it better to rent or buy a house?",
];

/// The first token of a reply asked after `before` started and wrote its first piece (or with
/// nothing before it), on the engine directly.
async fn reply_behind(engine: &Engine, before: Option<Generation>) -> Duration {
    let mut ahead = before.map(|generation| engine.generate(generation));
    if let Some(ahead) = ahead.as_mut() {
        while let Some(event) = ahead.recv().await {
            if matches!(event, Event::Text(_) | Event::Failed(_) | Event::Finished { .. }) {
                break;
            }
        }
    }
    let started = Instant::now();
    let mut reply = engine.generate(Generation {
        turns: vec![Turn { role: "user".into(), content: "Tell me about the sea.".into() }],
        max_tokens: 8,
        temperature: 0.0,
        top_p: 1.0,
        seed: 1,
        stop: Vec::new(),
        background: false,
    });
    let mut first = Duration::ZERO;
    while let Some(event) = reply.recv().await {
        if matches!(event, Event::Text(_)) && first.is_zero() {
            first = started.elapsed();
        }
    }
    drop(ahead);
    first
}

/// A title request as the worker sends it now (background, a few tokens, one line), or as it
/// was sent before (a reply-sized request in the queue like any other).
fn title_request(question: &str, background: bool) -> Generation {
    let turns = chat_worker::title::title_prompt(question)
        .into_iter()
        .map(|m| Turn { role: m.role, content: m.content })
        .collect();
    Generation {
        turns,
        max_tokens: if background { 24 } else { 1024 },
        temperature: 0.0,
        top_p: 1.0,
        seed: 1,
        stop: if background { vec!["\n".into()] } else { Vec::new() },
        background,
    }
}

async fn titles(engine: &Engine, model_base: &str) -> serde_json::Value {
    const ROUNDS: usize = 5;
    let (mut alone, mut behind_title, mut behind_old_title) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        alone.push(reply_behind(engine, None).await.as_secs_f64() * 1000.0);
        behind_title.push(reply_behind(engine, Some(title_request(QUESTIONS[1], true))).await.as_secs_f64() * 1000.0);
        behind_old_title
            .push(reply_behind(engine, Some(title_request(QUESTIONS[1], false))).await.as_secs_f64() * 1000.0);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (alone, behind_title, behind_old_title) = (median(alone), median(behind_title), median(behind_old_title));
    println!("\nA reply's first token (median of {ROUNDS}), asked while its conversation's title is being written:");
    println!("{:<52} {:>10.1} ms", "alone", alone);
    println!(
        "{:<52} {:>10.1} ms  ({:.2}x; target <= 1.2x)",
        "behind a title as now (background, gives way)",
        behind_title,
        behind_title / alone
    );
    println!(
        "{:<52} {:>10.1} ms  ({:.2}x)",
        "behind a title as before (queued like a reply)",
        behind_old_title,
        behind_old_title / alone
    );

    let mut config =
        chat_core::Config::from_vars(&[("OPENAI_BASE_URL".to_string(), model_base.to_string())].into_iter().collect())
            .expect("a config");
    config.model.model = engine.name().to_string();
    let client = chat_worker::ModelClient::new(config.model.clone());
    println!(
        "\nTitles for 20 first questions (kept: what the conversation shows; dropped: the question's start stays):"
    );
    let mut rows = Vec::new();
    let mut kept = 0;
    for question in QUESTIONS {
        let answer =
            client.title(&chat_worker::title::title_prompt(question)).await.unwrap_or_else(|e| format!("(error: {e})"));
        let title = chat_worker::title::model_title(&answer, config.max_title_chars);
        kept += usize::from(title.is_some());
        println!(
            "{question:<60} -> {:<40} {}",
            format!("{answer:?}"),
            if title.is_some() { "kept" } else { "dropped" }
        );
        rows.push(json!({"question": question, "model": answer, "kept": title}));
    }
    println!("kept {kept} of {}", QUESTIONS.len());
    json!({
        "first_token_ms": {"alone": alone, "behind_title": behind_title, "behind_title_as_before": behind_old_title},
        "titles": rows,
        "kept": kept,
    })
}
