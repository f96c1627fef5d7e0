//! The one API error type and its JSON envelope (spec §2.1):
//! `{"errorCode":"<CODE>","errorMessage":"<text>"}` followed by a newline.
//!
//! Error policy: handlers return [`ApiError`]; anything unexpected becomes a 500 that is logged
//! once here with its cause chain and tells the client only `internal error`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::store::StoreError;
use crate::telemetry::error_chain;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "VALIDATION",
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "NOT_FOUND",
            message: message.into(),
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::CONFLICT,
            code: "CONFLICT",
            message: message.into(),
        }
    }

    /// 401: missing or refused credential (spec §11); the caller adds `WWW-Authenticate`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "UNAUTHORIZED",
            message: message.into(),
        }
    }

    /// 403: a valid credential without the scope the request needs (spec §11).
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: "FORBIDDEN",
            message: message.into(),
        }
    }

    pub fn config_not_found() -> Self {
        Self::not_found("config not found")
    }

    pub fn too_large(limit: usize) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "VALIDATION",
            message: format!("Request body must not be larger than {limit} bytes"),
        }
    }

    pub fn method_not_allowed() -> Self {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "VALIDATION",
            message: "method not allowed".to_owned(),
        }
    }

    pub fn internal() -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "INTERNAL",
            message: "internal error".to_owned(),
        }
    }

    /// 503 with one of the fixed reasons of spec §2.8/§2.9.
    pub fn unavailable(reason: &'static str) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "INTERNAL",
            message: reason.to_owned(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "errorCode")]
    code: &'a str,
    #[serde(rename = "errorMessage")]
    message: &'a str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        super::json_response(
            self.status,
            &Envelope {
                code: self.code,
                message: &self.message,
            },
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %error_chain(&e), "storage error");
        ApiError::internal()
    }
}
