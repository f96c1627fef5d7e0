//! API authentication (spec §11): with `--auth-enabled`, every request but the four
//! operational `GET`s and the console's static files carries `Authorization: Bearer <credential>`, where the credential is an
//! `--auth-api-keys` key or a JWT of a trusted OIDC issuer; with `--auth-check-scopes`, reads
//! need `<service>:read` (or `:write`) and everything else `<service>:write`.
//!
//! The check wraps the whole application, before routing: an unknown path answers 401 like a
//! known one, so the route table is not visible without a credential; with one, the usual 404
//! and 405 follow.
//!
//! No credential, key, token or `Authorization` value is ever logged, traced or counted:
//! refusals are logged at debug with their fixed reason only.

mod keys;
mod oidc;

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};

use super::{ApiError, AppState};
use crate::config::AuthSettings;
use keys::ApiKeys;
use oidc::Issuers;

/// The routes that stay open: probes, metrics and the API description (and the console's
/// static page and files, [`super::console::is_open`]).
const OPEN: [&str; 4] = ["/_healthcheck", "/_info", "/metrics", "/openapi.yaml"];

/// What a request does, for the scope check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// Checks credentials; built once per process from `--auth-*`.
#[derive(Debug)]
pub struct Authenticator {
    keys: ApiKeys,
    issuers: Issuers,
    check_scopes: bool,
    read_scope: String,
    write_scope: String,
}

impl Authenticator {
    /// None when authentication is off.
    pub fn new(settings: &AuthSettings) -> Result<Option<Arc<Authenticator>>, reqwest::Error> {
        if !settings.enabled {
            return Ok(None);
        }
        let auth = Authenticator {
            keys: ApiKeys::new(&settings.api_keys),
            issuers: Issuers::new(&settings.issuers, settings.read_key_set_max_retries)?,
            check_scopes: settings.check_scopes,
            read_scope: format!("{}:read", settings.service),
            write_scope: format!("{}:write", settings.service),
        };
        tracing::info!(
            issuers = %settings.issuers.join(","),
            api_keys = auth.keys.len(),
            check_scopes = settings.check_scopes,
            "API authentication enabled"
        );
        Ok(Some(Arc::new(auth)))
    }

    async fn check(&self, authorization: Option<&HeaderValue>, access: Access) -> Result<(), Refusal> {
        let credential = bearer(authorization)?;
        if self.keys.accepts(credential) {
            // API keys carry every scope.
            return Ok(());
        }
        if self.issuers.is_empty() {
            return Err(Refusal::Invalid("invalid token"));
        }
        let scopes = self.issuers.verify(credential).await.map_err(|e| {
            Refusal::Invalid(match e {
                oidc::TokenError::Invalid => "invalid token",
                oidc::TokenError::UntrustedIssuer => "untrusted token issuer",
                oidc::TokenError::Expired => "token expired",
                oidc::TokenError::NotYetValid => "token not yet valid",
                oidc::TokenError::KeySetUnavailable => "token issuer's key set unavailable",
            })
        })?;
        if !self.check_scopes {
            return Ok(());
        }
        let has = |wanted: &str| scopes.iter().any(|s| s == wanted);
        match access {
            Access::Read if has(&self.read_scope) || has(&self.write_scope) => Ok(()),
            Access::Write if has(&self.write_scope) => Ok(()),
            Access::Read => Err(Refusal::Forbidden(self.read_scope.clone())),
            Access::Write => Err(Refusal::Forbidden(self.write_scope.clone())),
        }
    }
}

/// The credential of `Authorization: Bearer <credential>`; the scheme in any case.
fn bearer(authorization: Option<&HeaderValue>) -> Result<&str, Refusal> {
    let value = authorization.ok_or(Refusal::Missing)?;
    let value = value.to_str().map_err(|_| Refusal::NotBearer)?.trim();
    let (scheme, credential) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refusal::NotBearer);
    }
    match credential.trim() {
        "" => Err(Refusal::Missing),
        credential => Ok(credential),
    }
}

/// Why a request was refused; every text is fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    Missing,
    NotBearer,
    Invalid(&'static str),
    /// The scope that was needed.
    Forbidden(String),
}

impl Refusal {
    fn reason(&self) -> &str {
        match self {
            Refusal::Missing => "missing bearer token",
            Refusal::NotBearer => "authorization scheme must be Bearer",
            Refusal::Invalid(reason) => reason,
            Refusal::Forbidden(_) => "missing scope",
        }
    }

    /// 401 or 403 in the error shape, with the RFC 6750 challenge.
    fn response(&self) -> HttpResponse {
        let (error, challenge) = match self {
            Refusal::Missing | Refusal::NotBearer => {
                (ApiError::unauthorized(self.reason()), "Bearer".to_owned())
            }
            Refusal::Invalid(reason) => (
                ApiError::unauthorized(*reason),
                "Bearer error=\"invalid_token\"".to_owned(),
            ),
            Refusal::Forbidden(scope) => (
                ApiError::forbidden(format!("missing scope {scope}")),
                format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\""),
            ),
        };
        let mut response = error.error_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// The middleware (installed only when authentication is on).
pub async fn require(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let auth = req
        .app_data::<web::Data<AppState>>()
        .and_then(|state| state.auth.clone());
    let open =
        req.method() == Method::GET && (OPEN.contains(&req.path()) || super::console::is_open(req.path()));
    let Some(auth) = auth.filter(|_| !open) else {
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    };
    let access = if matches!(*req.method(), Method::GET | Method::HEAD) {
        Access::Read
    } else {
        Access::Write
    };
    match auth.check(req.headers().get(AUTHORIZATION), access).await {
        Ok(()) => next.call(req).await.map(ServiceResponse::map_into_left_body),
        Err(refusal) => {
            tracing::debug!(method = %req.method(), reason = refusal.reason(), "request refused");
            Ok(req.into_response(refusal.response()).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(v: &str) -> HeaderValue {
        HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for v in [
            "Bearer abc",
            "bearer abc",
            "BEARER abc",
            "  Bearer   abc  ",
            "Bearer\tabc",
        ] {
            assert_eq!(bearer(Some(&header(v))), Ok("abc"), "{v:?}");
        }
    }

    #[test]
    fn other_schemes_and_empty_credentials_are_refused() {
        assert_eq!(bearer(None), Err(Refusal::Missing));
        assert_eq!(bearer(Some(&header("Bearer"))), Err(Refusal::Missing));
        assert_eq!(bearer(Some(&header("Bearer   "))), Err(Refusal::Missing));
        assert_eq!(
            bearer(Some(&header("Basic dXNlcjpwYXNz"))),
            Err(Refusal::NotBearer)
        );
        assert_eq!(bearer(Some(&header("Bearerabc"))), Err(Refusal::NotBearer));
        assert_eq!(bearer(Some(&header("abc"))), Err(Refusal::NotBearer));
        let non_ascii = HeaderValue::from_bytes(b"Bearer \xff").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bearer(Some(&non_ascii)), Err(Refusal::NotBearer));
    }

    #[test]
    fn refusals_carry_the_error_shape_and_challenge() {
        let r = Refusal::Forbidden("webhooks:write".into()).response();
        assert_eq!(r.status(), 403);
        assert_eq!(
            r.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()),
            Some("Bearer error=\"insufficient_scope\", scope=\"webhooks:write\"")
        );
        let r = Refusal::Missing.response();
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
        let r = Refusal::Invalid("token expired").response();
        assert_eq!(
            r.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()),
            Some("Bearer error=\"invalid_token\"")
        );
    }
}
