//! EventBridge Scheduler's errors on the wire: the type in `x-amzn-ErrorType` (boto3's
//! `Error.Code`), the status the model gives it, and `{"Message": …}` (the member every
//! Scheduler error carries its text in).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use stoke_engine::schedules::SchedulesError;

/// An error answered to a Scheduler caller.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
}

impl SchedulerError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Validation(_) => (StatusCode::BAD_REQUEST, "ValidationException"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "ResourceNotFoundException"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "ConflictException"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerException"),
        }
    }
}

impl From<SchedulesError> for SchedulerError {
    fn from(e: SchedulesError) -> Self {
        match e {
            SchedulesError::Validation(m) => Self::Validation(m),
            SchedulesError::NotFound(m) => Self::NotFound(m),
            SchedulesError::Conflict(m) => Self::Conflict(m),
            SchedulesError::Store(e) => {
                tracing::warn!(error = %e, "a Scheduler operation failed in the store");
                Self::Internal("The store failed; retry the request.".into())
            }
        }
    }
}

impl IntoResponse for SchedulerError {
    fn into_response(self) -> Response {
        let (status, type_name) = self.parts();
        let mut resp = (
            status,
            axum::Json(serde_json::json!({ "Message": self.to_string() })),
        )
            .into_response();
        resp.headers_mut()
            .insert("x-amzn-ErrorType", HeaderValue::from_static(type_name));
        resp
    }
}
