//! Pieces shared by several resources.

use serde::{Deserialize, Serialize};

/// `bytes` random bytes from the kernel, hex-encoded: secrets, keys and generated ids.
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; bytes];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// One environment variable of a task (`{"name": "X", "value": "1"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentSetting {
    /// Variable name.
    pub name: String,
    /// Variable value (Azure allows it to be absent, meaning empty).
    #[serde(default)]
    pub value: String,
}

/// A page of a list call: `{"value": [...], "odata.nextLink": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListResponse<T> {
    /// The items of this page.
    pub value: Vec<T>,
    /// Where the next page is, when there is one.
    #[serde(rename = "odata.nextLink", default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

/// The body of every error response, in Azure Batch's shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code such as `TaskExists` or `InvalidPropertyValue`.
    pub code: String,
    /// Human-readable explanation.
    pub message: ErrorMessage,
}

/// The message part of an [`ErrorBody`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorMessage {
    /// Always `en-US`.
    pub lang: String,
    /// The explanation itself: it names the field or resource at fault.
    pub value: String,
}

impl ErrorBody {
    /// An error body with an English message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> ErrorBody {
        ErrorBody { code: code.into(), message: ErrorMessage { lang: "en-US".into(), value: message.into() } }
    }
}

/// Checks an id the way Azure Batch does: 1–64 characters, letters, digits, `-` and `_`.
pub fn validate_id(kind: &str, id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err(format!("{kind} id '{id}' must be 1 to 64 characters long"));
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        return Err(format!("{kind} id '{id}' contains '{c}'; ids may hold only letters, digits, '-' and '_'"));
    }
    Ok(())
}
