//! HTTP receivers on 127.0.0.1 that record every call and answer as told: at once, slowly,
//! never (hang), with a TCP reset, with an error status and `Retry-After`, or with a binary or
//! gzip body full of NUL bytes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};

/// How a receiver answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 with an empty body, at once.
    Ok,
    /// Reads the request and answers nothing for this long (longer than the caller's
    /// `--http-timeout`), then closes the connection.
    Hang(Duration),
    /// Reads the request, then resets the connection (RST, no response).
    Reset,
    /// 200 after this delay.
    Slow(Duration),
    /// This status, with a `Retry-After` header when set.
    Status {
        status: u16,
        retry_after: Option<String>,
    },
    /// This status with these body bytes and headers.
    Body {
        status: u16,
        body: Vec<u8>,
        headers: Vec<(String, String)>,
    },
}

/// One call as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Call {
    /// When the request (head and body) had arrived.
    pub at: Instant,
    /// When its connection was accepted: a process killed before that cannot have made it.
    pub accepted: Instant,
    pub webhook_id: String,
    /// `payload.i` of the event, when the body carries one.
    pub event: Option<u64>,
    pub body: Vec<u8>,
}

/// The `webhook-id`s each event (`payload.i`) was called with, duplicates included.
pub fn ids_by_event(calls: &[Call]) -> HashMap<u64, Vec<&str>> {
    let mut ids: HashMap<u64, Vec<&str>> = HashMap::new();
    for c in calls {
        if let Some(i) = c.event {
            ids.entry(i).or_default().push(c.webhook_id.as_str());
        }
    }
    ids
}

struct State {
    behaviour: Mutex<Behaviour>,
    calls: Mutex<Vec<Call>>,
}

/// A receiver; stops accepting when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

fn record(state: &State, accepted: Instant, headers: Vec<(String, String)>, body: Vec<u8>) {
    let webhook_id = headers
        .iter()
        .find(|(k, _)| k == "formance-webhook-id" || k == "webhook-id")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let event = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["payload"]["i"].as_u64());
    if let Ok(mut calls) = state.calls.lock() {
        calls.push(Call {
            at: Instant::now(),
            accepted,
            webhook_id,
            event,
            body,
        });
    }
}

fn kept(name: &str) -> bool {
    name.starts_with("formance-webhook") || name.starts_with("webhook-")
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> anyhow::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            behaviour: Mutex::new(behaviour),
            calls: Mutex::default(),
        });
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let accepted = Instant::now();
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&shared);
                let reset = matches!(state.behaviour.lock().map(|b| b.clone()), Ok(Behaviour::Reset));
                if reset {
                    tokio::spawn(reset_after_request(stream, state, accepted));
                } else {
                    tokio::spawn(serve(stream, state, accepted));
                }
            }
        });
        Ok(Receiver { addr, state, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn count(&self) -> usize {
        self.state.calls.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// When the first call whose connection was accepted after `t` arrived (no copy: cheap
    /// enough to poll).
    pub fn first_accepted_after(&self, t: Instant) -> Option<Instant> {
        self.state
            .calls
            .lock()
            .ok()?
            .iter()
            .filter(|c| c.accepted > t)
            .map(|c| c.at)
            .min()
    }

    /// How many distinct events (`payload.i`) arrived.
    pub fn distinct_events(&self) -> usize {
        self.state.calls.lock().map_or(0, |c| {
            c.iter()
                .filter_map(|c| c.event)
                .collect::<std::collections::HashSet<u64>>()
                .len()
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(stream: TcpStream, state: Arc<State>, accepted: Instant) {
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let state = Arc::clone(&state);
        async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            let headers = parts
                .headers
                .iter()
                .filter(|(k, _)| kept(k.as_str()))
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            record(&state, accepted, headers, body);
            let behaviour = state.behaviour.lock().map(|b| b.clone()).unwrap_or(Behaviour::Ok);
            let (status, body, headers): (u16, Vec<u8>, Vec<(String, String)>) = match behaviour {
                Behaviour::Ok | Behaviour::Reset => (200, Vec::new(), Vec::new()),
                Behaviour::Hang(d) => {
                    tokio::time::sleep(d).await;
                    return Err(std::io::Error::other("hung up"));
                }
                Behaviour::Slow(d) => {
                    tokio::time::sleep(d).await;
                    (200, Vec::new(), Vec::new())
                }
                Behaviour::Status { status, retry_after } => (
                    status,
                    b"error".to_vec(),
                    retry_after
                        .map(|r| vec![("retry-after".to_owned(), r)])
                        .unwrap_or_default(),
                ),
                Behaviour::Body {
                    status,
                    body,
                    headers,
                } => (status, body, headers),
            };
            let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
            *resp.status_mut() =
                hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
            for (k, v) in headers {
                if let (Ok(k), Ok(v)) = (
                    hyper::header::HeaderName::from_bytes(k.as_bytes()),
                    hyper::header::HeaderValue::from_str(&v),
                ) {
                    resp.headers_mut().insert(k, v);
                }
            }
            Ok::<_, std::io::Error>(resp)
        }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Reads one request (head and `content-length` body), records it, and resets the connection.
async fn reset_after_request(mut stream: TcpStream, state: Arc<State>, accepted: Instant) {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    let (head_end, length) = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    };
    while buf.len() < head_end + length {
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .filter(|(k, _)| kept(k))
        .collect();
    let body = buf.get(head_end..).unwrap_or_default().to_vec();
    record(&state, accepted, headers, body);
    let _ = stream.set_zero_linger();
    drop(stream);
}
