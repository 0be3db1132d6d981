//! What a reply cost: the provider's token counts travel with the reply's `done` and are stored
//! with it, priced when `MODEL_PRICES` names the model; a reply cut before the provider counted
//! has none.

use std::time::Duration;

use chat_stub_model::Pacing;
use chat_testkit::TestApp;
use chat_wire::{ReplyStatus, ServerFrame, Usage};

#[tokio::test]
async fn each_reply_carries_its_tokens_and_their_price() {
    // Two dollars per million prompt tokens, ten per million completion tokens.
    let app = TestApp::builder().vars(&[("MODEL_PRICES", "other=1/1, stub=2/10")]).spawn().await;
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "how much does this cost").await;
    let reply = ws.read_reply().await;
    let request = app.stub.requests().pop().unwrap();
    let prompt = chat_stub_model::prompt_tokens(&request) as u64;
    // The stub writes a token a word.
    let completion = reply.text.split_inclusive(' ').count() as u64;
    let expected = Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        cost_micro_usd: Some(2 * prompt + 10 * completion),
    };
    match &reply.end {
        ServerFrame::Done { status, usage, .. } => {
            assert_eq!(*status, ReplyStatus::Done);
            assert_eq!(*usage, Some(expected), "done carries the provider's count, priced");
        }
        other => panic!("expected done, got {other:?}"),
    }
    let stored = app.session(&session.token).await.messages.pop().unwrap();
    assert_eq!(stored.usage, Some(expected), "the stored reply keeps it");
    // The next question's context is longer: its prompt counts more.
    ws.ask("m2", "and this one").await;
    let second = ws.read_reply().await;
    let ServerFrame::Done { usage: Some(usage), .. } = second.end else { panic!("{:?}", second.end) };
    assert!(usage.prompt_tokens > prompt, "{usage:?}");
}

#[tokio::test]
async fn without_prices_the_tokens_alone_and_a_stopped_reply_has_none() {
    let pacing = Pacing { between_tokens: Duration::from_millis(40), ..Default::default() };
    let app = TestApp::builder().pacing(pacing).spawn().await;
    let (session, mut ws) = app.signed_in("Ada").await;
    ws.ask("m1", "short").await;
    let ServerFrame::Done { usage, .. } = ws.read_reply().await.end else { panic!("expected done") };
    let usage = usage.expect("the stub counts");
    assert_eq!((usage.completion_tokens, usage.cost_micro_usd), (3, None), "\"You said: short\" is three words");
    // Stopped half way: the stream is dropped before the provider's count comes.
    ws.ask("m2", "word ".repeat(60).trim()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.send_text(r#"{"action":"stop","reply_to":"m2"}"#).await;
    let stopped = ws.read_reply().await;
    let ServerFrame::Done { status, usage, .. } = stopped.end else { panic!("expected done") };
    assert_eq!((status, usage), (ReplyStatus::Stopped, None));
    assert_eq!(app.session(&session.token).await.messages.pop().unwrap().usage, None);
}
