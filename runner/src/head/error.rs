//! API errors: an HTTP status and an Azure-style body naming the problem.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gangway_api::ErrorBody;

/// An error answer. Every one leaves the head's state as it was.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Azure-style code and message.
    pub body: ErrorBody,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError { status, body: ErrorBody::new(code, message) }
    }
    /// 400 for a value that is not acceptable.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "InvalidPropertyValue", message)
    }
    /// 400 with its own code.
    pub fn invalid_code(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    /// 404 for a missing resource.
    pub fn not_found(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }
    /// 409 for a conflict with the current state.
    pub fn conflict(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// Parses a JSON request body; the error names the field and the problem as serde reports it.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "MissingRequiredProperty",
            "the request body is empty; a JSON object is required",
        ));
    }
    // The path names the field at fault: serde_json alone says only "expected i32 at column 27".
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let code =
            if e.inner().is_syntax() || e.inner().is_eof() { "InvalidRequestBody" } else { "InvalidPropertyValue" };
        ApiError::new(StatusCode::BAD_REQUEST, code, format!("the request body is not valid: {e}"))
    })?;
    de.end().map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "InvalidRequestBody", format!("the request body is not valid: {e}"))
    })?;
    Ok(parsed)
}
