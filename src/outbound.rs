//! The one outbound HTTP client: signed webhook POSTs for deliveries and the test route.
//!
//! Hardening (spec §4.7, §7.1): no redirects, no proxies from the environment, one total
//! timeout per call, the response read capped, and the SSRF guard applied to the addresses a
//! connection will actually use — in the resolver for host names (no second resolution, so DNS
//! rebinding cannot slip through) and before the call for IP-literal hosts, which never reach a
//! resolver.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::config::{HttpSettings, SignatureHeaders};
use crate::domain::signature::sign;
use crate::domain::ssrf::AddressPolicy;

/// The `user-agent` of every outbound call.
pub const USER_AGENT: &str = "formance-webhooks/v0";

/// What one call is about; `body` is sent byte for byte.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub endpoint: &'a str,
    pub secret: &'a str,
    /// The replaced secret while its overlap lasts (spec §2.5): it signs too, after `secret`.
    pub previous_secret: Option<&'a str>,
    pub webhook_id: &'a str,
    pub body: &'a [u8],
    pub idempotency_key: &'a str,
    pub test: bool,
    /// W3C `traceparent` of the call's span, sent along when tracing is on (spec §8.2).
    pub traceparent: Option<&'a str>,
}

/// Why a call got no HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Refused by the SSRF guard (permanent).
    AddressNotAllowed,
    /// The endpoint cannot be called at all (permanent).
    InvalidEndpoint,
    /// Refused, reset, DNS, TLS, timeout… (retryable); the text starts with `timeout` for timeouts.
    Failed(String),
}

impl Transport {
    pub fn message(&self) -> &str {
        match self {
            Transport::AddressNotAllowed => "endpoint address not allowed",
            Transport::InvalidEndpoint => "invalid endpoint",
            Transport::Failed(m) => m,
        }
    }
}

/// The result of one call.
#[derive(Debug, Clone)]
pub struct CallResult {
    /// The HTTP response status, or the transport failure.
    pub response: Result<Response, Transport>,
    pub duration: Duration,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// At most `--max-response-bytes` of the body, lossy UTF-8.
    pub excerpt: String,
    /// The raw `Retry-After` header, interpreted by the retry rules.
    pub retry_after: Option<String>,
}

impl CallResult {
    /// The status code as stored: 0 when no HTTP response arrived.
    pub fn status_code(&self) -> u16 {
        self.response.as_ref().map(|r| r.status).unwrap_or(0)
    }
}

#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    policy: AddressPolicy,
    max_response_bytes: usize,
    timeout: Duration,
    signature_headers: SignatureHeaders,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// Builds the client; nobody else builds one.
    pub fn new(settings: &HttpSettings) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(settings.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .user_agent(USER_AGENT)
            .dns_resolver(Arc::new(GuardedResolver {
                policy: settings.address_policy.clone(),
            }))
            .build()?;
        Ok(Outbound {
            client,
            policy: settings.address_policy.clone(),
            max_response_bytes: settings.max_response_bytes,
            timeout: settings.timeout,
            signature_headers: settings.signature_headers,
        })
    }

    /// Sends one signed POST and reports what happened; never fails otherwise.
    pub async fn send(&self, req: SignedRequest<'_>) -> CallResult {
        let started = Instant::now();
        let response = self.call(req).await;
        CallResult {
            response,
            duration: started.elapsed(),
        }
    }

    async fn call(&self, req: SignedRequest<'_>) -> Result<Response, Transport> {
        let url = callable_url(req.endpoint).ok_or(Transport::InvalidEndpoint)?;
        if let Some(ip) = literal_ip(&url) {
            if !self.policy.is_allowed(ip) {
                return Err(Transport::AddressNotAllowed);
            }
        }
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign(
            req.secret,
            req.previous_secret,
            req.webhook_id,
            timestamp,
            req.body,
        );
        let timestamp = timestamp.to_string();
        let mut builder = self.client.post(url).header("content-type", "application/json");
        // Same id, timestamp and signature bytes in every set (spec §4.6).
        let (formance, standard) = match self.signature_headers {
            SignatureHeaders::Formance => (true, false),
            SignatureHeaders::Standard => (false, true),
            SignatureHeaders::Both => (true, true),
        };
        if formance {
            builder = builder
                .header("formance-webhook-id", req.webhook_id)
                .header("formance-webhook-timestamp", &timestamp)
                .header("formance-webhook-signature", &signature)
                .header("formance-webhook-test", if req.test { "true" } else { "false" });
            if !req.idempotency_key.is_empty() {
                builder = builder.header(
                    "formance-webhook-idempotency-key",
                    header_value(req.idempotency_key),
                );
            }
        }
        if standard {
            builder = builder
                .header("webhook-id", req.webhook_id)
                .header("webhook-timestamp", &timestamp)
                .header("webhook-signature", &signature);
        }
        if let Some(traceparent) = req.traceparent {
            builder = builder.header("traceparent", traceparent);
        }
        let mut resp = builder
            .body(req.body.to_vec())
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // A body-read error after the status line keeps the status classification (§4.7).
        let mut excerpt = Vec::new();
        while excerpt.len() < self.max_response_bytes {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = self.max_response_bytes - excerpt.len();
                    excerpt.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) | Err(_) => break,
            }
        }
        Ok(Response {
            status,
            excerpt: String::from_utf8_lossy(&excerpt).into_owned(),
            retry_after,
        })
    }

    fn transport_error(&self, e: &reqwest::Error) -> Transport {
        let mut source: Option<&dyn std::error::Error> = Some(e);
        let mut innermost = e.to_string();
        while let Some(s) = source {
            if s.downcast_ref::<AddressNotAllowed>().is_some() {
                return Transport::AddressNotAllowed;
            }
            innermost = s.to_string();
            source = s.source();
        }
        if e.is_timeout() {
            return Transport::Failed(format!("timeout after {:?}", self.timeout));
        }
        let stage = if e.is_connect() { "connect" } else { "request" };
        Transport::Failed(format!("{stage} error: {innermost}"))
    }
}

/// A header value carrying text from a record: control characters, which a header cannot carry
/// (a NUL would make the request unsendable, and a retryable failure forever), become U+FFFD,
/// as they do in storage; other text goes as its UTF-8 bytes.
fn header_value(text: &str) -> reqwest::header::HeaderValue {
    let text: String = text
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect();
    reqwest::header::HeaderValue::from_bytes(text.as_bytes())
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static(""))
}

/// An endpoint we are willing to call: parsable, http or https, with a host.
fn callable_url(endpoint: &str) -> Option<url::Url> {
    let url = url::Url::parse(endpoint).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.host().is_some()).then_some(url)
}

fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("endpoint address not allowed")]
struct AddressNotAllowed;

/// Resolves host names and drops every address the SSRF policy blocks.
struct GuardedResolver {
    policy: AddressPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let any = !resolved.is_empty();
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| policy.is_allowed(a.ip()))
                .collect();
            if allowed.is_empty() && any {
                return Err(Box::new(AddressNotAllowed) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_text_in_a_header_keeps_its_bytes_but_no_control_character() {
        assert_eq!(header_value("key-1").as_bytes(), b"key-1");
        assert_eq!(header_value("cl\u{e9}").as_bytes(), "cl\u{e9}".as_bytes());
        assert_eq!(
            header_value("k\0\r\n").as_bytes(),
            "k\u{FFFD}\u{FFFD}\u{FFFD}".as_bytes()
        );
    }
}
