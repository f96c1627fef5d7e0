//! A reverse proxy between the browser and the app that records every request the page made,
//! and the check of those requests against openapi.yaml.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::openapi::documented;

/// One request the browser made.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub authorization: Option<String>,
}

/// A reverse proxy in front of the app that records every request passing through.
pub struct Recorder {
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Recorder {
    pub async fn start(target: &str) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let shared = (client, Arc::clone(&seen), target.to_owned());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<Incoming>| {
                        let (client, seen, target) = shared.clone();
                        async move { forward(&client, &target, req, &seen).await }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Recorder {
            base: format!("http://{addr}"),
            seen,
            task,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    client: &reqwest::Client,
    target: &str,
    req: hyper::Request<Incoming>,
    seen: &Mutex<Vec<Seen>>,
) -> Result<hyper::Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(std::io::Error::other)?;
    let path_and_query = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut out = client.request(parts.method.clone(), format!("{target}{path_and_query}"));
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST && name != hyper::header::CONNECTION {
            out = out.header(name, value);
        }
    }
    let resp = out.body(body).send().await.map_err(std::io::Error::other)?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.map_err(std::io::Error::other)?;
    if let Ok(mut all) = seen.lock() {
        all.push(Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            status: status.as_u16(),
            authorization: parts
                .headers
                .get(hyper::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
    }
    let mut res = hyper::Response::new(Full::new(bytes));
    *res.status_mut() = status;
    for (name, value) in &headers {
        if name != hyper::header::TRANSFER_ENCODING
            && name != hyper::header::CONNECTION
            && name != hyper::header::CONTENT_LENGTH
        {
            res.headers_mut().append(name.clone(), value.clone());
        }
    }
    Ok(res)
}

pub fn is_console_asset(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

fn matches_template(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
}

/// The documented operations the page used; panics on any request openapi.yaml does not list.
pub fn documented_operations(seen: &[Seen]) -> BTreeSet<(String, String)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let documented = documented(&doc);
    let mut used = BTreeSet::new();
    for s in seen.iter().filter(|s| !is_console_asset(&s.path)) {
        let op = documented
            .iter()
            .find(|(m, t)| *m == s.method && matches_template(t, &s.path))
            .unwrap_or_else(|| {
                panic!(
                    "the console called {} {}, which openapi.yaml does not document",
                    s.method, s.path
                )
            });
        used.insert(op.clone());
    }
    used
}

pub fn op(method: &str, path: &str) -> (String, String) {
    (method.to_owned(), path.to_owned())
}
