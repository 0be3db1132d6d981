//! A WebSocket client of the chat: sends questions and reads the frames back, strictly for a
//! test (a late or unexpected frame fails it) or leniently for a bench (a timeout ends a reply).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chat_wire::{ReplyText, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::reply::{Read, Reading, Reply, TimedReply};

/// The longest a test waits for the next frame before it fails: a guard against a hang, far
/// above what any story needs even on a busy machine (the embedded model writes four replies at
/// once on two cores).
pub const FRAME_WAIT: Duration = Duration::from_secs(30);

/// A WebSocket client of the chat, as one browser tab: it sends frames and reads replies.
pub struct WsClient {
    /// The connection itself, for a story that sends or closes at the frame level.
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames read while waiting for another (an ack may follow the first delta).
    buffered: VecDeque<ServerFrame>,
    /// The session's list notices (`conversation`, `conversation_deleted`), set aside from the
    /// reply frames a story reads; [`WsClient::next_notice`] reads them.
    notices: VecDeque<ServerFrame>,
}

/// Whether a frame tells about the session's list of conversations rather than a reply.
fn is_notice(frame: &ServerFrame) -> bool {
    matches!(frame, ServerFrame::Conversation { .. } | ServerFrame::ConversationDeleted { .. })
}

impl WsClient {
    /// Connects to `{ws_url}?token={token}`, as the web app does.
    pub async fn connect(ws_url: &str, token: &str) -> Result<WsClient, WsError> {
        let (stream, _) = tokio_tungstenite::connect_async(format!("{ws_url}?token={token}")).await?;
        Ok(WsClient { stream, buffered: VecDeque::new(), notices: VecDeque::new() })
    }

    /// Sends `text` as one text frame, as it is (valid JSON or not).
    pub async fn try_send_text(&mut self, text: &str) -> Result<(), WsError> {
        self.stream.send(Message::Text(text.into())).await
    }

    /// Sends `text` as one text frame; a failure to send fails the test.
    pub async fn send_text(&mut self, text: &str) {
        self.try_send_text(text).await.unwrap();
    }

    /// Sends a `sendMessage` frame: the question `content`, as message `id`.
    pub async fn try_send_message(&mut self, id: &str, content: &str) -> Result<(), WsError> {
        let frame = serde_json::json!({"action": "sendMessage", "id": id, "content": content});
        self.try_send_text(&frame.to_string()).await
    }

    /// Sends a `sendMessage` frame; a failure to send fails the test.
    pub async fn send_message(&mut self, id: &str, content: &str) {
        self.try_send_message(id, content).await.unwrap();
    }

    /// Asks something in conversation `conversation`.
    pub async fn send_message_in(&mut self, conversation: &str, id: &str, content: &str) {
        let frame =
            serde_json::json!({"action": "sendMessage", "id": id, "content": content, "conversation": conversation});
        self.send_text(&frame.to_string()).await;
    }

    /// The next list notice (`conversation` or `conversation_deleted`), passing reply frames on
    /// to [`WsClient::next_frame`] (fails the test after 10 s).
    pub async fn next_notice(&mut self) -> ServerFrame {
        loop {
            if let Some(notice) = self.notices.pop_front() {
                return notice;
            }
            let frame = self.read_any().await;
            if is_notice(&frame) {
                return frame;
            }
            self.buffered.push_back(frame);
        }
    }

    /// Closes the connection (a failure to close is no failure of the caller's).
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }

    /// The next server frame (fails the test after [`FRAME_WAIT`]).
    pub async fn next_frame(&mut self) -> ServerFrame {
        if let Some(frame) = self.buffered.pop_front() {
            return frame;
        }
        self.read_frame().await
    }

    /// The next reply frame read, notices set aside.
    async fn read_frame(&mut self) -> ServerFrame {
        loop {
            let frame = self.read_any().await;
            if !is_notice(&frame) {
                return frame;
            }
            self.notices.push_back(frame);
        }
    }

    async fn read_any(&mut self) -> ServerFrame {
        loop {
            let message = tokio::time::timeout(FRAME_WAIT, self.stream.next())
                .await
                .expect("a frame within FRAME_WAIT")
                .expect("the connection is open")
                .expect("a valid websocket message");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).expect("a protocol frame"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected message {other:?}"),
            }
        }
    }

    /// Reads deltas (and snapshots) until the reply's `done` or an `error` frame, rebuilding the
    /// text as the web app does.
    pub async fn read_reply(&mut self) -> Reply {
        self.read_reply_from(ReplyText::default()).await
    }

    /// Like [`WsClient::read_reply`], for a client that already holds part of the reply.
    pub async fn read_reply_from(&mut self, text: ReplyText) -> Reply {
        let mut reading = Reading::from_text(text);
        loop {
            match reading.take(self.next_frame().await, Instant::now()) {
                Read::Delta | Read::Snapshot | Read::Ack => continue,
                Read::End(end) => {
                    let text = &reading.text;
                    assert!(!text.has_gap(), "a delta never arrived: {text:?}");
                    let text = text.text().to_string();
                    return Reply { deltas: reading.deltas, snapshots: reading.snapshots, text, end };
                }
                Read::Other(other) => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Sends a message and expects its ack.
    pub async fn ask(&mut self, id: &str, content: &str) {
        self.send_message(id, content).await;
        loop {
            match self.read_frame().await {
                ServerFrame::Ack { id: acked, .. } => {
                    assert_eq!(acked, id);
                    return;
                }
                frame @ ServerFrame::Delta { .. } => self.buffered.push_back(frame),
                other => panic!("expected an ack, got {other:?}"),
            }
        }
    }

    /// The next protocol frame before `deadline`, passing over anything else; `None` when the
    /// deadline passes or the connection ends or fails.
    pub async fn frame_before(&mut self, deadline: tokio::time::Instant) -> Option<ServerFrame> {
        if let Some(frame) = self.buffered.pop_front() {
            return Some(frame);
        }
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, self.stream.next()).await {
            let Message::Text(body) = message else {
                continue;
            };
            if let Ok(frame) = serde_json::from_str::<ServerFrame>(&body) {
                if is_notice(&frame) {
                    self.notices.push_back(frame);
                    continue;
                }
                return Some(frame);
            }
        }
        None
    }

    /// Sends a question and reads until its `done` or an `error` (or `timeout`), timing each step.
    pub async fn timed_ask(&mut self, id: &str, content: &str, timeout: Duration) -> TimedReply {
        let mut timed = TimedReply { sent: Some(Instant::now()), ..TimedReply::default() };
        if self.try_send_message(id, content).await.is_err() {
            return timed;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut reading = Reading::default();
        while let Some(frame) = self.frame_before(deadline).await {
            let now = Instant::now();
            match reading.take(frame, now) {
                Read::End(ServerFrame::Done { status, .. }) => {
                    timed.done = Some(now);
                    timed.dones += 1;
                    timed.status = Some(status);
                    break;
                }
                Read::End(ServerFrame::Error { message, .. }) => {
                    timed.error = Some(message);
                    break;
                }
                _ => {}
            }
        }
        timed.ack = reading.ack;
        timed.first_delta = reading.first_delta;
        timed.last_delta = reading.last_delta;
        timed.deltas = reading.deltas.len();
        timed.delta_times = std::mem::take(&mut reading.delta_times);
        timed.text = reading.text.text().to_string();
        timed
    }
}
