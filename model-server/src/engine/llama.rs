//! The engine thread: loads the model, then takes jobs in order (replies before background work)
//! and generates each, streaming its pieces back.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use tokio::sync::watch;

use super::{EngineError, EngineSettings, EngineState, Event, FinishReason, Job, TextAssembler, Turn};

pub(super) fn engine_thread(
    settings: EngineSettings,
    queue: std::sync::mpsc::Receiver<Job>,
    state: watch::Sender<EngineState>,
    replies_waiting: &AtomicUsize,
) {
    let loaded = load(&settings, &state);
    let (backend, model) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            tracing::error!(error, "could not load the model");
            let _ = state.send(EngineState::Failed(error.clone()));
            for job in queue {
                let _ = job.events.send(Event::Failed(EngineError::Model(error.clone())));
            }
            return;
        }
    };
    let context_params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(settings.context_tokens))
        .with_n_batch(512)
        .with_n_threads(settings.threads)
        .with_n_threads_batch(settings.threads);
    let mut context = match model.new_context(backend, context_params) {
        Ok(context) => context,
        Err(error) => {
            let _ = state.send(EngineState::Failed(error.to_string()));
            return;
        }
    };
    let _ = state.send(EngineState::Ready);
    let template = model.chat_template(None).ok();
    let mut jobs = Jobs::default();
    while let Some(job) = jobs.next(&queue) {
        if !job.generation.background {
            replies_waiting.fetch_sub(1, Ordering::AcqRel);
        }
        if job.events.is_closed() {
            continue;
        }
        context.clear_kv_cache();
        let result = run_job(&model, &mut context, template.as_ref(), &job, settings.context_tokens, replies_waiting);
        if let Err(error) = result {
            let _ = job.events.send(Event::Failed(error));
        }
    }
}

/// The jobs the engine thread has taken off its channel: replies in arrival order first, then
/// background work in arrival order.
#[derive(Default)]
struct Jobs {
    replies: std::collections::VecDeque<Job>,
    background: std::collections::VecDeque<Job>,
}

impl Jobs {
    /// The next job to run, waiting for one when none is queued; `None` once the engine is gone.
    fn next(&mut self, queue: &std::sync::mpsc::Receiver<Job>) -> Option<Job> {
        loop {
            // Everything already sent, so that a reply sent after a title still goes first.
            while let Ok(job) = queue.try_recv() {
                self.take(job);
            }
            if let Some(job) = self.replies.pop_front().or_else(|| self.background.pop_front()) {
                return Some(job);
            }
            let job = queue.recv().ok()?;
            self.take(job);
        }
    }

    fn take(&mut self, job: Job) {
        if job.generation.background {
            self.background.push_back(job);
        } else {
            self.replies.push_back(job);
        }
    }
}

/// llama.cpp's backend may be initialised once per process; every engine shares it.
fn backend() -> Result<&'static LlamaBackend, String> {
    static BACKEND: std::sync::OnceLock<Result<LlamaBackend, String>> = std::sync::OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut backend = LlamaBackend::init().map_err(|e| e.to_string())?;
            backend.void_logs();
            Ok(backend)
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn load(
    settings: &EngineSettings,
    state: &watch::Sender<EngineState>,
) -> Result<(&'static LlamaBackend, LlamaModel), String> {
    let backend = backend()?;
    let progress = state.clone();
    let params = LlamaModelParams::default().with_progress_callback(move |fraction| {
        let _ = progress.send(EngineState::Loading { progress: fraction });
        true
    });
    if !settings.model_path.is_file() {
        return Err(format!("no model file at {}", settings.model_path.display()));
    }
    let model = LlamaModel::load_from_file(backend, &settings.model_path, &params).map_err(|e| e.to_string())?;
    Ok((backend, model))
}

fn render_prompt(
    model: &LlamaModel,
    template: Option<&llama_cpp_2::model::LlamaChatTemplate>,
    turns: &[Turn],
) -> Result<String, EngineError> {
    let messages = turns
        .iter()
        .map(|t| LlamaChatMessage::new(t.role.clone(), t.content.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EngineError::Invalid(e.to_string()))?;
    match template {
        Some(template) => {
            model.apply_chat_template(template, &messages, true).map_err(|e| EngineError::Model(e.to_string()))
        }
        // A GGUF without a template: ChatML, the most common format.
        None => {
            let mut prompt = String::new();
            for t in turns {
                prompt.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", t.role, t.content));
            }
            prompt.push_str("<|im_start|>assistant\n");
            Ok(prompt)
        }
    }
}

/// The prompt's tokens: the chat template's own text (its special tokens included) tokenized with
/// special-token parsing, each message's content without it. A person typing
/// `<|im_end|>\n<|im_start|>system\n...` into a message writes text, not a turn of their own.
///
/// The template is rendered with a marker in place of each content (a random nonce no client can
/// guess), and the rendered text is tokenized piece by piece around them.
fn prompt_tokens(
    model: &LlamaModel,
    template: Option<&llama_cpp_2::model::LlamaChatTemplate>,
    turns: &[Turn],
) -> Result<Vec<llama_cpp_2::token::LlamaToken>, EngineError> {
    use std::hash::{BuildHasher, Hasher};
    let nonce = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let markers: Vec<String> = (0..turns.len()).map(|i| format!("\u{1}{nonce:016x}:{i}\u{1}")).collect();
    let masked: Vec<Turn> = turns
        .iter()
        .zip(&markers)
        .map(|(turn, marker)| Turn { role: turn.role.clone(), content: marker.clone() })
        .collect();
    let prompt = render_prompt(model, template, &masked)?;
    let vocab = model.vocab();
    let mut tokens = Vec::new();
    let mut rest = prompt.as_str();
    for (turn, marker) in turns.iter().zip(&markers) {
        let Some(at) = rest.find(marker.as_str()) else {
            return Err(EngineError::Model("the chat template left out or reordered a message".into()));
        };
        vocab.tokenize_into(&rest.as_bytes()[..at], &mut tokens, false, true);
        vocab.tokenize_into(turn.content.as_bytes(), &mut tokens, false, false);
        rest = &rest[at + marker.len()..];
    }
    vocab.tokenize_into(rest.as_bytes(), &mut tokens, false, true);
    // BOS by hand, once, where the model wants it (a template may already have written it); never
    // an EOS between pieces, as tokenizing each piece with special tokens added would.
    if vocab.should_add_bos() && tokens.first() != Some(&vocab.bos()) {
        tokens.insert(0, vocab.bos());
    }
    Ok(tokens)
}

fn run_job(
    model: &LlamaModel,
    context: &mut llama_cpp_2::context::LlamaContext<'_>,
    template: Option<&llama_cpp_2::model::LlamaChatTemplate>,
    job: &Job,
    context_tokens: u32,
    replies_waiting: &AtomicUsize,
) -> Result<(), EngineError> {
    let generation = &job.generation;
    // Background work gives way as soon as a person's reply waits.
    let give_way = || generation.background && replies_waiting.load(Ordering::Acquire) > 0;
    let vocab = model.vocab();
    // Too long for the window with room for the reply: the oldest turns go first (never a system
    // turn, never the last), counted with the model's own tokenizer.
    let reserve = (generation.max_tokens as usize).clamp(1, (context_tokens as usize / 4).max(1));
    let mut turns = generation.turns.clone();
    let tokens = loop {
        let tokens = prompt_tokens(model, template, &turns)?;
        if tokens.len() + reserve <= context_tokens as usize {
            break tokens;
        }
        match turns.iter().position(|turn| turn.role != "system") {
            Some(oldest) if oldest + 1 < turns.len() => {
                turns.remove(oldest);
            }
            _ => break tokens,
        }
    };
    if tokens.is_empty() {
        return Err(EngineError::Invalid("the prompt is empty".into()));
    }
    if tokens.len() + 1 > context_tokens as usize {
        return Err(EngineError::ContextExceeded { prompt_tokens: tokens.len(), context_tokens });
    }
    let model_error = |e: &dyn std::fmt::Display| EngineError::Model(e.to_string());
    let mut batch = LlamaBatch::new(512, 1);
    let last = tokens.len() - 1;
    for (chunk_start, chunk) in tokens.chunks(512).enumerate().map(|(i, c)| (i * 512, c)) {
        if job.events.is_closed() {
            return Ok(()); // the client went away while its prompt was read
        }
        if give_way() {
            return Err(EngineError::Yielded);
        }
        batch.clear();
        for (offset, token) in chunk.iter().enumerate() {
            let position = chunk_start + offset;
            batch.add(*token, position as i32, &[0], position == last).map_err(|e| model_error(&e))?;
        }
        context.decode(&mut batch).map_err(|e| model_error(&e))?;
    }
    let mut sampler = if generation.temperature <= 0.0 {
        LlamaSampler::greedy()
    } else {
        LlamaSampler::chain_simple([
            LlamaSampler::top_p(generation.top_p.clamp(0.0, 1.0), 1),
            LlamaSampler::temp(generation.temperature),
            LlamaSampler::dist(generation.seed),
        ])
    };
    let budget = (generation.max_tokens as usize).min(context_tokens as usize - tokens.len());
    let mut text = TextAssembler::new(&generation.stop);
    let mut position = tokens.len() as i32;
    let mut generated = 0;
    let mut reason = FinishReason::Length;
    while generated < budget {
        // Every token, not only those that complete a piece of text: a held-back piece (a stop
        // sequence's prefix, half a character) sends nothing that could fail.
        if job.events.is_closed() {
            return Ok(());
        }
        if give_way() {
            return Err(EngineError::Yielded);
        }
        let token = sampler.sample(context, batch.n_tokens() - 1);
        sampler.accept(token);
        if vocab.is_eog(token) {
            reason = FinishReason::Stop;
            break;
        }
        generated += 1;
        let (piece, stopped) = text.push(&vocab.token_to_piece(token, false, None));
        if !piece.is_empty() && job.events.send(Event::Text(piece)).is_err() {
            return Ok(()); // the client went away: stop generating
        }
        if stopped {
            reason = FinishReason::Stop;
            break;
        }
        batch.clear();
        batch.add(token, position, &[0], true).map_err(|e| model_error(&e))?;
        position += 1;
        context.decode(&mut batch).map_err(|e| model_error(&e))?;
    }
    let rest = text.finish();
    if !rest.is_empty() {
        let _ = job.events.send(Event::Text(rest));
    }
    let _ = job.events.send(Event::Finished { reason, prompt_tokens: tokens.len(), completion_tokens: generated });
    Ok(())
}
