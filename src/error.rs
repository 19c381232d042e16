//! One error type for the whole service, rendered as the error envelope.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    FailedPrecondition,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    RateLimited,
    Internal,
    Unavailable,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::InvalidArgument,
        ErrorCode::FailedPrecondition,
        ErrorCode::Unauthenticated,
        ErrorCode::PermissionDenied,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::FailedPrecondition => "failed_precondition",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidArgument | ErrorCode::FailedPrecondition => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::AlreadyExists => StatusCode::CONFLICT,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The one message every refused key gets, whatever the reason.
pub const KEY_REFUSED: &str = "Invalid or missing enterprise API key";
pub const CONSOLE_REFUSED: &str = "Invalid or missing console token";

#[derive(Debug, Clone)]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
    /// Overrides the code's HTTP status (413 for big bodies, 405 for wrong methods).
    pub status: Option<StatusCode>,
    pub retry_after_secs: Option<u64>,
    pub allow: Option<String>,
    /// The precise reason for the audit event, never shown to the caller.
    pub audit_reason: Option<&'static str>,
    /// What went wrong underneath (a database error, an I/O error): logged
    /// with the request, never shown to the caller.
    pub cause: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError {
            code,
            message: message.into(),
            status: None,
            retry_after_secs: None,
            allow: None,
            audit_reason: None,
            cause: None,
        }
    }

    /// Keeps `cause` as this error's source (for the logs).
    pub fn caused_by(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(std::sync::Arc::new(cause));
        self
    }

    /// The chain of causes, outermost first, as one line for the logs.
    pub fn cause_chain(&self) -> Option<String> {
        let mut next = std::error::Error::source(self);
        let mut out: Vec<String> = Vec::new();
        while let Some(e) = next {
            out.push(e.to_string());
            next = e.source();
        }
        (!out.is_empty()).then(|| out.join(": "))
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::FailedPrecondition, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::AlreadyExists, message)
    }
    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error")
    }
    pub fn unavailable() -> Self {
        Self::new(ErrorCode::Unavailable, "service temporarily unavailable; nothing was changed")
    }
    /// A refused key: same body for every reason, the reason goes to the audit log only.
    pub fn key_refused(reason: &'static str) -> Self {
        AppError { audit_reason: Some(reason), ..Self::new(ErrorCode::Unauthenticated, KEY_REFUSED) }
    }
    pub fn console_refused(reason: &'static str) -> Self {
        AppError { audit_reason: Some(reason), ..Self::new(ErrorCode::Unauthenticated, CONSOLE_REFUSED) }
    }
    pub fn role_required(roles: &str) -> Self {
        AppError {
            audit_reason: Some("role_required"),
            ..Self::new(ErrorCode::PermissionDenied, format!("this operation needs the role {roles}"))
        }
    }
    pub fn payload_too_large(limit: usize) -> Self {
        AppError {
            status: Some(StatusCode::PAYLOAD_TOO_LARGE),
            ..Self::invalid(format!("request body exceeds the limit of {limit} bytes"))
        }
    }
    pub fn method_not_allowed(allow: &str) -> Self {
        AppError {
            status: Some(StatusCode::METHOD_NOT_ALLOWED),
            allow: Some(allow.to_string()),
            ..Self::invalid(format!("method not allowed; this route accepts {allow}"))
        }
    }
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        AppError {
            retry_after_secs: Some(retry_after_secs),
            audit_reason: Some("rate_limited"),
            ..Self::new(ErrorCode::RateLimited, "rate limit exceeded; retry later")
        }
    }

    pub fn http_status(&self) -> StatusCode {
        self.status.unwrap_or_else(|| self.code.status())
    }

    /// What the audit event records as the reason.
    pub fn reason(&self) -> &'static str {
        self.audit_reason.unwrap_or(self.code.as_str())
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for AppError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_deref().map(|c| c as &(dyn std::error::Error + 'static))
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.http_status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.http_status());
        if let Some(secs) = self.retry_after_secs {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(allow) = &self.allow {
            res.insert_header((header::ALLOW, allow.clone()));
        }
        // Keep the error on the response so the audit middleware can read its reason.
        let mut response = res.json(json!({
            "ok": false,
            "request_id": crate::telemetry::current_request_id(),
            // Messages may quote input; a pasted secret is never echoed back.
            "error": {"code": self.code.as_str(), "message": crate::domain::redact::scrub(&self.message)},
        }));
        response.extensions_mut().insert(self.clone());
        response
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        match e {
            E::NotFound => AppError::not_found("not found"),
            E::DatabaseError(K::UniqueViolation, _) => AppError::already_exists("already exists"),
            E::DatabaseError(K::ForeignKeyViolation | K::NotNullViolation | K::CheckViolation, ref info) => {
                tracing::error!(error = %info.message(), "constraint violation");
                AppError::internal().caused_by(e)
            }
            // PostgreSQL refuses NUL in text (SQLSTATE 22021): bad input, not an outage.
            E::DatabaseError(_, info) if info.message().contains("0x00") => {
                AppError::invalid("text must not contain NUL characters")
            }
            E::DatabaseError(_, ref info) => {
                tracing::warn!(error = %info.message(), "database unavailable");
                AppError::unavailable().caused_by(e)
            }
            E::BrokenTransactionManager | E::AlreadyInTransaction | E::NotInTransaction => {
                tracing::warn!(error = %e, "database transaction state");
                AppError::unavailable().caused_by(e)
            }
            other => {
                tracing::error!(error = %other, "database error");
                AppError::internal().caused_by(other)
            }
        }
    }
}

impl From<diesel::r2d2::PoolError> for AppError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        tracing::warn!(error = %e, "database pool unavailable");
        AppError::unavailable().caused_by(e)
    }
}

impl From<diesel::ConnectionError> for AppError {
    fn from(e: diesel::ConnectionError) -> Self {
        tracing::warn!(error = %e, "database connection failed");
        AppError::unavailable().caused_by(e)
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn a_cause_is_kept_for_the_logs_and_never_shown() {
        let e = AppError::from(diesel::result::Error::BrokenTransactionManager);
        assert_eq!(e.code, ErrorCode::Unavailable);
        let chain = e.cause_chain().expect("the diesel error is the source");
        assert!(chain.contains("transaction manager"), "{chain}");
        let body = e.error_response().into_body().try_into_bytes().unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("transaction manager"), "{text}");
        assert_eq!(AppError::invalid("x").cause_chain(), None);
    }
}
