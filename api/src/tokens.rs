//! Per-user API tokens (`/tokens`): a bearer credential that acts as the user who created
//! it, for clients that cannot reach the head's Unix socket. The head stores only a token's
//! SHA-256 digest; the token itself is shown once, when it is created.

use serde::{Deserialize, Serialize};

use crate::job::Owner;
use crate::time::{IsoDuration, Timestamp};

/// The body of `POST /tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenAddParameter {
    /// A name to tell tokens apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How long it is valid (none: until revoked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<IsoDuration>,
}

/// A token as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiToken {
    /// Its id (the part of the token before the secret).
    pub id: String,
    /// The user it acts as.
    pub owner: Owner,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it was created.
    pub creation_time: Timestamp,
    /// When it stops being valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_time: Option<Timestamp>,
    /// The token itself: only in the answer to its creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// What every gangway API token starts with (`gwt_ID_SECRET`).
pub const TOKEN_PREFIX: &str = "gwt_";

/// The id and secret of a token in gangway's format.
pub fn split_token(token: &str) -> Option<(&str, &str)> {
    token.strip_prefix(TOKEN_PREFIX)?.split_once('_').filter(|(id, secret)| !id.is_empty() && !secret.is_empty())
}

/// What every join token starts with (`gwn_ID_SECRET`).
pub const JOIN_TOKEN_PREFIX: &str = "gwn_";

/// The id and secret of a join token.
pub fn split_join_token(token: &str) -> Option<(&str, &str)> {
    token.strip_prefix(JOIN_TOKEN_PREFIX)?.split_once('_').filter(|(id, secret)| !id.is_empty() && !secret.is_empty())
}

/// The body of `POST /jointokens` (admins): a short-lived credential a new node joins with once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinTokenAddParameter {
    /// How long it is valid (default one hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<IsoDuration>,
    /// How many nodes may join with it (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
    /// The only node that may join with it; such a token also replaces the certificate of a
    /// node of that name that already has one (a reinstalled node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A join token as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinToken {
    /// Its id (the part of the token before the secret).
    pub id: String,
    /// When it was created.
    pub creation_time: Timestamp,
    /// When it stops being valid.
    pub expiry_time: Timestamp,
    /// How many more nodes may join with it.
    pub uses_left: u32,
    /// The only node that may join with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The token itself: only in the answer to its creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The body of `POST /nodes/join`, sent with a join token: the node's name and the public key
/// its certificate is to carry (the key never leaves the node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeJoinParameter {
    /// The node's name.
    pub name: String,
    /// Its P-256 public key, uncompressed, in hex.
    pub public_key: String,
}

impl NodeJoinParameter {
    /// The public key's bytes, or None when it is not hex.
    pub fn public_key_bytes(&self) -> Option<Vec<u8>> {
        let s = &self.public_key;
        if !s.len().is_multiple_of(2) || !s.is_ascii() {
            return None;
        }
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
    }
}

/// The answer to a join: the node's certificate and the CA that signed it (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeJoinResult {
    /// The node's client certificate.
    pub certificate: String,
    /// The cluster CA's certificate.
    pub ca: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_body_names_its_key_in_hex() {
        let p = |k: &str| NodeJoinParameter { name: "n".into(), public_key: k.into() }.public_key_bytes();
        assert_eq!(p("04aBff"), Some(vec![4, 0xab, 0xff]));
        assert_eq!(p("04a"), None);
        assert_eq!(p("zz"), None);
        assert_eq!(p("é1"), None);
        assert_eq!(split_join_token("gwn_ab_cd"), Some(("ab", "cd")));
        assert_eq!(split_join_token("gwt_ab_cd"), None);
    }
}
