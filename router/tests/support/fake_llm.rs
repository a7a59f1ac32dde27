//! A fault-injecting fake OpenAI-compatible server on loopback, scriptable per request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the fake does with one request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// A normal answer (whole or streamed, as asked).
    Ok,
    /// A normal answer with this text (streamed a word at a time when asked to stream).
    Says(&'static str),
    /// This HTTP status with a JSON error body, and a `Retry-After` header when given (seconds).
    Status(u16, Option<u64>),
    /// Waits, then answers normally.
    Delay(Duration),
    /// Streams: headers at once, then waits before the first event.
    SlowFirstToken(Duration),
    /// Streams two deltas, then goes silent without closing.
    StallMidStream,
    /// Streams two deltas, then closes the connection.
    DisconnectMidStream,
    /// Streams an event whose data is not JSON.
    MalformedSse,
    /// A whole answer of this many bytes.
    Huge(usize),
    /// Streams a delta every 20 ms for a long time (for cancellation tests).
    Endless,
    /// HTTP 500 whose body is this many bytes (counted in `error_bytes_written` as they go out).
    HugeError(usize),
}

/// The fake server. `requests` counts requests received; `closed_at` is when a streamed reply found its
/// connection closed by the client.
pub struct FakeLlm {
    pub port: u16,
    pub requests: Arc<AtomicUsize>,
    /// Every request body received, in order.
    pub bodies: Arc<Mutex<Vec<String>>>,
    /// Every request's head (request line and headers), in order.
    pub heads: Arc<Mutex<Vec<String>>>,
    pub closed_at: Arc<Mutex<Option<Instant>>>,
    /// Bytes of `HugeError` bodies the client accepted before it closed the connection.
    pub error_bytes_written: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeLlm {
    /// Serves `script[i]` to the i-th request; the last entry repeats.
    pub async fn start(script: Vec<Fault>) -> Self {
        assert!(!script.is_empty());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let closed_at = Arc::new(Mutex::new(None));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = (bodies.clone(), heads.clone());
        let (count, closed) = (requests.clone(), closed_at.clone());
        let error_bytes_written = Arc::new(AtomicUsize::new(0));
        let written = error_bytes_written.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (count, closed, script, seen) = (count.clone(), closed.clone(), script.clone(), seen.clone());
                let written = written.clone();
                tokio::spawn(async move {
                    let Some(stream) = read_request(socket, &count, &script, &seen.0, &seen.1).await else {
                        return;
                    };
                    let (socket, fault, streaming) = stream;
                    answer(socket, fault, streaming, closed, &written).await;
                });
            }
        });
        Self {
            port,
            requests,
            bodies,
            heads,
            closed_at,
            error_bytes_written,
            task,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The value of header `name` in the i-th request.
    pub fn header(&self, i: usize, name: &str) -> Option<String> {
        let heads = self.heads.lock().unwrap();
        heads.get(i)?.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
        })
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP request; returns the socket, this request's fault and whether a stream was asked for.
async fn read_request(
    mut socket: TcpStream,
    count: &AtomicUsize,
    script: &[Fault],
    bodies: &Mutex<Vec<String>>,
    heads: &Mutex<Vec<String>>,
) -> Option<(TcpStream, Fault, bool)> {
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 65536];
    loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buffer).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                let index = count.fetch_add(1, Ordering::SeqCst);
                let fault = script[index.min(script.len() - 1)].clone();
                let streaming = text[end..].contains("\"stream\":true");
                bodies.lock().unwrap().push(text[end + 4..].to_owned());
                heads.lock().unwrap().push(text[..end].to_owned());
                return Some((socket, fault, streaming));
            }
        }
    }
}

fn completion() -> String {
    completion_of("fake answer")
}

fn completion_of(text: &str) -> String {
    serde_json::json!({
        "model": "fake",
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2}
    })
    .to_string()
}

/// A whole stream of `text`, a word at a time.
fn stream_of(text: &str) -> String {
    let deltas: String = text.split_inclusive(' ').map(delta).collect();
    format!(
        "{SSE_HEADERS}{deltas}data: {{\"choices\":[{{\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\ndata: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":3,\"completion_tokens\":2}}}}\n\ndata: [DONE]\n\n"
    )
}

fn delta(text: &str) -> String {
    let content = serde_json::Value::String(text.to_owned());
    format!("data: {{\"choices\":[{{\"delta\":{{\"content\":{content}}}}}]}}\n\n")
}

const SSE_HEADERS: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";

async fn answer(
    mut socket: TcpStream,
    fault: Fault,
    streaming: bool,
    closed: Arc<Mutex<Option<Instant>>>,
    error_bytes_written: &AtomicUsize,
) {
    let whole = |status: &str, body: String, extra: &str| {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let normal_stream = format!(
        "{SSE_HEADERS}: keep-alive\n\n{}{}data: {{\"choices\":[{{\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\ndata: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":3,\"completion_tokens\":2}}}}\n\ndata: [DONE]\n\n",
        delta("fake "),
        delta("answer")
    );
    let normal = if streaming {
        normal_stream.clone()
    } else {
        whole("200 OK", completion(), "")
    };
    match fault {
        Fault::Ok => {
            let _ = socket.write_all(normal.as_bytes()).await;
        }
        Fault::Says(text) => {
            let reply = if streaming {
                stream_of(text)
            } else {
                whole("200 OK", completion_of(text), "")
            };
            let _ = socket.write_all(reply.as_bytes()).await;
        }
        Fault::Status(code, retry_after) => {
            let extra = retry_after.map(|s| format!("retry-after: {s}\r\n")).unwrap_or_default();
            let body = r#"{"error":{"message":"injected failure"}}"#.to_owned();
            let _ = socket
                .write_all(whole(&format!("{code} Injected"), body, &extra).as_bytes())
                .await;
        }
        Fault::Delay(d) => {
            tokio::time::sleep(d).await;
            let _ = socket.write_all(normal.as_bytes()).await;
        }
        Fault::SlowFirstToken(d) => {
            let _ = socket.write_all(SSE_HEADERS.as_bytes()).await;
            tokio::time::sleep(d).await;
            let _ = socket.write_all(&normal_stream.as_bytes()[SSE_HEADERS.len()..]).await;
        }
        Fault::StallMidStream => {
            let _ = socket
                .write_all(format!("{SSE_HEADERS}{}{}", delta("partial "), delta("text")).as_bytes())
                .await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Fault::DisconnectMidStream => {
            let _ = socket
                .write_all(format!("{SSE_HEADERS}{}{}", delta("partial "), delta("text")).as_bytes())
                .await;
            let _ = socket.shutdown().await;
        }
        Fault::MalformedSse => {
            let _ = socket
                .write_all(format!("{SSE_HEADERS}data: {{this is not json\n\n").as_bytes())
                .await;
        }
        Fault::Huge(bytes) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {bytes}\r\nconnection: close\r\n\r\n"
            );
            write_large(&mut socket, &head, bytes, b'x', &AtomicUsize::new(0)).await;
        }
        Fault::HugeError(bytes) => {
            let head = format!(
                "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: {bytes}\r\nconnection: close\r\n\r\n"
            );
            write_large(&mut socket, &head, bytes, b'e', error_bytes_written).await;
        }
        Fault::Endless => {
            if socket.write_all(SSE_HEADERS.as_bytes()).await.is_err() {
                return;
            }
            for _ in 0..3000 {
                if socket.write_all(delta("tick ").as_bytes()).await.is_err() {
                    break;
                }
                // A closed peer shows up as a read of 0 bytes (or an error) before the next write fails.
                let mut probe = [0u8; 1];
                if let Ok(Ok(0) | Err(_)) =
                    tokio::time::timeout(Duration::from_millis(20), socket.read(&mut probe)).await
                {
                    break;
                }
            }
            *closed.lock().unwrap() = Some(Instant::now());
        }
    }
}

/// Writes `head`, then `bytes` bytes of `fill` in blocks until done or the client closes; `written` follows.
async fn write_large(socket: &mut TcpStream, head: &str, bytes: usize, fill: u8, written: &AtomicUsize) {
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let block = vec![fill; 64 << 10];
    let mut sent = 0;
    while sent < bytes {
        let n = block.len().min(bytes - sent);
        if socket.write_all(&block[..n]).await.is_err() {
            return;
        }
        sent += n;
        written.store(sent, Ordering::SeqCst);
    }
}
