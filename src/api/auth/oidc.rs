//! JWTs from trusted OIDC issuers (spec §11): discovery, one cached key set per issuer, and
//! the checks on a token. `jsonwebtoken` verifies signatures and time claims; this file is the
//! glue around it.
//!
//! Key sets are fetched on first use and again when a token names a key (`kid`) the cached set
//! lacks (the issuer rotated its keys) or when the set is older than [`MAX_KEY_SET_AGE`] (so a
//! key the issuer withdrew stops being trusted). One refresh per issuer runs at a time; requests
//! arriving meanwhile wait for it and use its result instead of fetching again, and refreshes
//! are at least [`MIN_REFRESH_INTERVAL`] apart, so tokens naming unknown keys cannot make us
//! flood the issuer. A refresh makes up to `--auth-read-key-set-max-retries` attempts, with a
//! short backoff; when they all fail the previous set, if any, stays in use.
//!
//! The issuer's endpoints are fetched by a client of their own, not the webhook client of
//! `outbound.rs`: issuers are chosen by the operator (often on the internal network), so the
//! SSRF guard, which protects against endpoints chosen by API clients, does not apply.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 60;
/// Bound of one discovery or key-set request.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Shortest time between two refreshes of one issuer's key set.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// Age after which a cached key set is fetched again before use.
const MAX_KEY_SET_AGE: Duration = Duration::from_secs(600);
/// Backoff between the attempts of one refresh: doubles from the first, capped.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Asymmetric algorithms only: `none` is not even an [`Algorithm`], and HMAC (`HS*`) would
/// let anyone holding a public key forge tokens.
const ACCEPTED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why a token was refused; the text is what the client reads (never the token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("invalid token")]
    Invalid,
    #[error("untrusted token issuer")]
    UntrustedIssuer,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token issuer's key set unavailable")]
    KeySetUnavailable,
}

/// The trusted issuers and the client that reads their key sets.
pub struct Issuers {
    issuers: Vec<Issuer>,
    client: reqwest::Client,
    max_attempts: u32,
}

impl std::fmt::Debug for Issuers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<&str> = self.issuers.iter().map(|i| i.url.as_str()).collect();
        f.debug_struct("Issuers")
            .field("urls", &urls)
            .finish_non_exhaustive()
    }
}

impl Issuers {
    /// `max_attempts` of 0 still makes one attempt.
    pub fn new(urls: &[String], max_attempts: u64) -> Result<Issuers, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .user_agent(crate::outbound::USER_AGENT)
            .build()?;
        Ok(Issuers {
            issuers: urls.iter().map(|u| Issuer::new(u)).collect(),
            client,
            max_attempts: u32::try_from(max_attempts.max(1)).unwrap_or(u32::MAX),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Verifies `token` and returns the scopes it grants.
    pub async fn verify(&self, token: &str) -> Result<Vec<String>, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(TokenError::Invalid);
        }
        // Which issuer's keys to try; the signature check then binds `iss` to that issuer.
        let iss = unverified_issuer(token).ok_or(TokenError::Invalid)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.url == iss)
            .ok_or(TokenError::UntrustedIssuer)?;
        let keys = issuer.keys_for(self, header.kid.as_deref(), header.alg).await?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_issuer(&[&issuer.url]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        let mut refusal = TokenError::Invalid;
        for key in keys {
            match jsonwebtoken::decode::<ScopeClaims>(token, &key.decoding, &validation) {
                Ok(data) => return Ok(data.claims.scopes()),
                // Time claims are checked only once the signature verified.
                Err(e) => match e.kind() {
                    ErrorKind::ExpiredSignature => refusal = TokenError::Expired,
                    ErrorKind::ImmatureSignature => refusal = TokenError::NotYetValid,
                    _ => {}
                },
            }
        }
        Err(refusal)
    }
}

/// The `iss` claim, read before any check to pick the issuer.
fn unverified_issuer(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Iss {
        iss: String,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Iss>(&bytes).ok().map(|c| c.iss)
}

/// `scope` (space-separated string) and `scp` (array); either may use the other's form.
#[derive(Debug, Deserialize)]
struct ScopeClaims {
    #[serde(default)]
    scope: Option<ScopeList>,
    #[serde(default)]
    scp: Option<ScopeList>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ScopeList {
    Text(String),
    List(Vec<String>),
}

impl ScopeClaims {
    fn scopes(self) -> Vec<String> {
        [self.scope, self.scp]
            .into_iter()
            .flatten()
            .flat_map(|list| match list {
                ScopeList::Text(s) => s.split_whitespace().map(str::to_owned).collect(),
                ScopeList::List(v) => v,
            })
            .collect()
    }
}

/// Which family of keys an algorithm verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec,
    Ed,
}

fn family(alg: Algorithm) -> Option<Family> {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Some(Family::Rsa),
        Algorithm::ES256 | Algorithm::ES384 => Some(Family::Ec),
        Algorithm::EdDSA => Some(Family::Ed),
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => None,
    }
}

/// A JWK's `alg`, when it names a signature algorithm we accept.
fn signing_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    let alg = match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    };
    Some(alg)
}

/// One verification key of an issuer.
struct Key {
    decoding: DecodingKey,
    family: Family,
    /// The JWK's `alg`, when it pins one.
    alg: Option<Algorithm>,
}

impl Key {
    /// A signature-verification key from a JWK; None for encryption keys, symmetric keys and
    /// anything `jsonwebtoken` cannot use.
    fn from_jwk(jwk: &Jwk) -> Option<Key> {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return None;
        }
        let key_family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Family::Rsa,
            AlgorithmParameters::EllipticCurve(_) => Family::Ec,
            AlgorithmParameters::OctetKeyPair(_) => Family::Ed,
            AlgorithmParameters::OctetKey(_) => return None,
        };
        // A key pinned to an algorithm we refuse, or of another family, verifies nothing.
        let alg = match jwk.common.key_algorithm {
            Some(a) => Some(signing_algorithm(a).filter(|a| family(*a) == Some(key_family))?),
            None => None,
        };
        let decoding = DecodingKey::from_jwk(jwk).ok()?;
        Some(Key {
            decoding,
            family: key_family,
            alg,
        })
    }

    fn verifies(&self, alg: Algorithm) -> bool {
        family(alg) == Some(self.family) && self.alg.is_none_or(|a| a == alg)
    }
}

/// An issuer's keys as last fetched.
#[derive(Clone, Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<Key>>,
    all: Vec<Arc<Key>>,
    /// When the last refresh finished, successful or not.
    checked: Option<Instant>,
    /// Whether the last refresh succeeded.
    fetched: bool,
}

impl KeySet {
    fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Vec<Arc<Key>> {
        let keys: Vec<&Arc<Key>> = match kid {
            Some(kid) => self.by_kid.get(kid).into_iter().collect(),
            // A token without `kid` (an issuer with one key) may be signed by any key.
            None => self.all.iter().collect(),
        };
        keys.into_iter().filter(|k| k.verifies(alg)).cloned().collect()
    }
}

/// One trusted issuer.
struct Issuer {
    /// Exactly as configured; `iss` must equal it.
    url: String,
    discovery: String,
    keys: RwLock<Arc<KeySet>>,
    /// Held while refreshing; holds when the last refresh started.
    refresh: tokio::sync::Mutex<Option<Instant>>,
    /// Refreshes finished so far: a waiter that sees it move uses that refresh's result.
    refreshes: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("unreadable document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the discovery document names another issuer")]
    IssuerMismatch,
}

impl Issuer {
    fn new(url: &str) -> Issuer {
        Issuer {
            url: url.to_owned(),
            discovery: format!("{}/.well-known/openid-configuration", url.trim_end_matches('/')),
            keys: RwLock::default(),
            refresh: tokio::sync::Mutex::new(None),
            refreshes: AtomicU64::new(0),
        }
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.keys.read().map(|k| Arc::clone(&k)).unwrap_or_default()
    }

    /// The keys that may have signed a token with this `kid` and `alg`, refreshing the set when
    /// it lacks them or is old.
    async fn keys_for(
        &self,
        issuers: &Issuers,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<Arc<Key>>, TokenError> {
        let seen = self.refreshes.load(Ordering::Acquire);
        let set = self.snapshot();
        let found = set.candidates(kid, alg);
        let fresh = set.checked.is_some_and(|t| t.elapsed() < MAX_KEY_SET_AGE);
        if !found.is_empty() && fresh {
            return Ok(found);
        }
        let mut last_start = self.refresh.lock().await;
        if self.refreshes.load(Ordering::Acquire) == seen {
            if let Some(at) = *last_start {
                tokio::time::sleep(MIN_REFRESH_INTERVAL.saturating_sub(at.elapsed())).await;
            }
            *last_start = Some(Instant::now());
            self.refresh(issuers).await;
            self.refreshes.fetch_add(1, Ordering::Release);
        }
        drop(last_start);
        let set = self.snapshot();
        let found = set.candidates(kid, alg);
        match (found.is_empty(), set.fetched) {
            (false, _) => Ok(found),
            (true, true) => Err(TokenError::Invalid),
            (true, false) => Err(TokenError::KeySetUnavailable),
        }
    }

    /// Fetches the key set, up to `max_attempts` times; keeps the old keys when all fail.
    async fn refresh(&self, issuers: &Issuers) {
        let mut delay = RETRY_FIRST;
        let mut attempt = 1;
        let result = loop {
            match self.fetch(&issuers.client).await {
                Ok(set) => break Ok(set),
                Err(e) if attempt >= issuers.max_attempts => break Err(e),
                Err(e) => {
                    tracing::debug!(issuer = %self.url, attempt, error = %e, "OIDC key set fetch failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                    attempt += 1;
                }
            }
        };
        let mut next = match result {
            Ok(set) => {
                tracing::debug!(issuer = %self.url, keys = set.all.len(), "OIDC key set loaded");
                set
            }
            Err(e) => {
                tracing::warn!(issuer = %self.url, attempts = attempt, error = %e, "cannot fetch the OIDC key set; tokens needing it are refused");
                KeySet {
                    fetched: false,
                    ..(*self.snapshot()).clone()
                }
            }
        };
        next.checked = Some(Instant::now());
        if let Ok(mut slot) = self.keys.write() {
            *slot = Arc::new(next);
        }
    }

    async fn fetch(&self, client: &reqwest::Client) -> Result<KeySet, FetchError> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        #[derive(Deserialize)]
        struct RawKeySet {
            keys: Vec<serde_json::Value>,
        }
        let discovery: Discovery = get_json(client, &self.discovery).await?;
        if discovery.issuer != self.url {
            return Err(FetchError::IssuerMismatch);
        }
        let raw: RawKeySet = get_json(client, &discovery.jwks_uri).await?;
        let mut set = KeySet {
            fetched: true,
            ..KeySet::default()
        };
        // Keys of a type this build cannot read are skipped, not fatal to the whole set.
        for value in raw.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            let Some(key) = Key::from_jwk(&jwk).map(Arc::new) else {
                continue;
            };
            if let Some(kid) = &jwk.common.key_id {
                set.by_kid.insert(kid.clone(), Arc::clone(&key));
            }
            set.all.push(key);
        }
        Ok(set)
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> Result<T, FetchError> {
    let body = client.get(url).send().await?.error_for_status()?.bytes().await?;
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Vec<String> {
        serde_json::from_str::<ScopeClaims>(json)
            .unwrap_or_else(|e| panic!("{e}"))
            .scopes()
    }

    #[test]
    fn scopes_come_from_scope_and_scp_in_either_form() {
        assert_eq!(claims(r#"{"scope":"a b  c"}"#), ["a", "b", "c"]);
        assert_eq!(claims(r#"{"scp":["a","b"]}"#), ["a", "b"]);
        assert_eq!(claims(r#"{"scope":["a"],"scp":"b c"}"#), ["a", "b", "c"]);
        assert!(claims(r#"{"sub":"x"}"#).is_empty());
        assert!(claims(r#"{"scope":null}"#).is_empty());
    }

    #[test]
    fn only_asymmetric_algorithms_are_accepted() {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            assert!(!ACCEPTED.contains(&alg));
            assert_eq!(family(alg), None);
        }
        assert!(ACCEPTED.iter().all(|a| family(*a).is_some()));
    }

    #[test]
    fn the_issuer_is_read_from_the_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://issuer.example","exp":1}"#);
        assert_eq!(
            unverified_issuer(&format!("e30.{payload}.sig")).as_deref(),
            Some("https://issuer.example")
        );
        assert_eq!(unverified_issuer("garbage"), None);
        assert_eq!(unverified_issuer("a.b.c"), None);
        let no_iss = URL_SAFE_NO_PAD.encode(br#"{"exp":1}"#);
        assert_eq!(unverified_issuer(&format!("e30.{no_iss}.sig")), None);
    }

    #[test]
    fn discovery_url_ignores_a_trailing_slash() {
        assert_eq!(
            Issuer::new("https://id.example/realms/a/").discovery,
            "https://id.example/realms/a/.well-known/openid-configuration"
        );
        assert_eq!(
            Issuer::new("https://id.example").discovery,
            "https://id.example/.well-known/openid-configuration"
        );
    }

    #[test]
    fn symmetric_and_encryption_jwks_are_not_verification_keys() {
        let oct: Jwk = serde_json::from_str(r#"{"kty":"oct","k":"c2VjcmV0","kid":"h"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(Key::from_jwk(&oct).is_none());
        let enc: Jwk = serde_json::from_str(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","use":"enc"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(Key::from_jwk(&enc).is_none());
        let sig: Jwk = serde_json::from_str(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","alg":"EdDSA"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let key = Key::from_jwk(&sig).unwrap_or_else(|| panic!("an Ed25519 signing key"));
        assert!(key.verifies(Algorithm::EdDSA));
        assert!(!key.verifies(Algorithm::ES256));
        assert!(!key.verifies(Algorithm::HS256));
    }
}
