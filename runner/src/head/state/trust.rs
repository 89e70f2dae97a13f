//! Trust between the head and its nodes: join tokens and the node certificates issued with them.
//!
//! An admin makes a join token (`gwn_ID_SECRET`, kept as the digest of its secret, valid for a
//! short time and a number of joins, optionally for one node name). A new node presents it
//! once with its name and public key and gets a certificate signed by the cluster CA
//! (`head/tls.rs`); from then on its TLS connections carry that certificate, and the head knows
//! the node by the certificate's fingerprint. A certificate names one node for good: a
//! launcher that presents it under another name is refused, and removing the node from its
//! pool revokes it.

use gangway_api::tokens::{JoinToken, JoinTokenAddParameter, JOIN_TOKEN_PREFIX};
use gangway_api::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Effects, HeadState};
use crate::head::auth::same_secret;
use crate::head::error::ApiError;
use crate::head::sha256::hex_digest;
use crate::store::Write;

/// How long a join token is valid unless asked otherwise.
const DEFAULT_JOIN_TTL: std::time::Duration = std::time::Duration::from_secs(3600);
/// The most joins one token may allow.
const MAX_USES: u32 = 100_000;

/// What the store keeps of trust: a join token or an issued certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub(crate) enum TrustRec {
    JoinToken {
        token: JoinToken,
        /// The SHA-256 digest of its secret, in hex.
        hash: String,
    },
    Certificate(NodeCert),
}

/// A certificate the CA issued to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeCert {
    /// The SHA-256 of its DER encoding, in hex.
    pub fingerprint: String,
    /// The node it was issued to.
    pub node: String,
    /// The join token it was issued for.
    pub join_token: String,
    pub issued: Timestamp,
    /// When it was revoked (its node removed, or replaced by a new certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Timestamp>,
}

/// What the head knows of join tokens and node certificates.
#[derive(Debug, Default)]
pub(crate) struct Trust {
    join_tokens: std::collections::BTreeMap<String, (JoinToken, String)>,
    /// Every certificate issued, by fingerprint.
    certs: std::collections::HashMap<String, NodeCert>,
}

impl Trust {
    /// How many node certificates were issued (about how many nodes joined).
    pub(crate) fn issued(&self) -> usize {
        self.certs.len()
    }

    /// The fingerprints of `node`'s certificates that are not revoked.
    fn live_certs(&self, node: &str) -> Vec<String> {
        self.certs.values().filter(|c| c.node == node && c.revoked.is_none()).map(|c| c.fingerprint.clone()).collect()
    }
}

impl HeadState {
    /// Records a new join token `id` with `secret`; returns it with the token itself, shown once.
    pub(crate) fn add_join_token(
        &mut self,
        p: JoinTokenAddParameter,
        id: String,
        secret: &str,
        fx: &mut Effects,
    ) -> Result<JoinToken, ApiError> {
        let ttl = match p.expires_in {
            None => DEFAULT_JOIN_TTL,
            Some(d) if d.0.is_zero() || d.is_unlimited() => {
                return Err(ApiError::invalid("expiresIn must be a positive, finite duration (default PT1H)"))
            }
            Some(d) => d.0,
        };
        let uses = p.uses.unwrap_or(1);
        if !(1..=MAX_USES).contains(&uses) {
            return Err(ApiError::invalid(format!("uses must be between 1 and {MAX_USES} (got {uses})")));
        }
        if let Some(node) = &p.node {
            gangway_api::common::validate_id("node", node).map_err(ApiError::invalid)?;
        }
        let now = Timestamp::now();
        let token = JoinToken {
            id: id.clone(),
            creation_time: now,
            expiry_time: now.plus(ttl),
            uses_left: uses,
            node: p.node,
            token: None,
        };
        let hash = hex_digest(secret.as_bytes());
        put(&TrustRec::JoinToken { token: token.clone(), hash: hash.clone() }, fx);
        let shown = JoinToken { token: Some(format!("{JOIN_TOKEN_PREFIX}{id}_{secret}")), ..token.clone() };
        self.trust.join_tokens.insert(id, (token, hash));
        Ok(shown)
    }

    /// The join tokens that may still be used (admins).
    pub(crate) fn join_tokens(&self, now: Timestamp) -> Vec<JoinToken> {
        self.trust
            .join_tokens
            .values()
            .filter(|(t, _)| t.uses_left > 0 && t.expiry_time > now)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Node `node` joins with the join token (`id`, `secret`) for the certificate `issue`
    /// makes: the token is used up by one, and the certificate recorded. Refused, changing
    /// nothing, for a token that is unknown, expired, used up or for another node, and for a
    /// name that already holds a certificate unless the token names that node (whose old
    /// certificates it then revokes).
    pub(crate) fn join_node(
        &mut self,
        id: &str,
        secret: &str,
        node: &str,
        issue: impl FnOnce() -> Result<(String, String), String>,
        fx: &mut Effects,
    ) -> Result<String, ApiError> {
        let refuse = |why: String| ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "AuthenticationFailed", why);
        gangway_api::common::validate_id("node", node).map_err(ApiError::invalid)?;
        let now = Timestamp::now();
        let (token, hash) =
            self.trust.join_tokens.get(id).ok_or_else(|| refuse("join token not valid for this cluster".into()))?;
        if !same_secret(hex_digest(secret.as_bytes()).as_bytes(), hash.as_bytes()) {
            return Err(refuse("join token not valid for this cluster".into()));
        }
        if token.expiry_time <= now {
            return Err(refuse(format!("join token expired (token {id} expired at {})", token.expiry_time)));
        }
        if token.uses_left == 0 {
            return Err(refuse(format!("join token already used (token {id})")));
        }
        if token.node.as_deref().is_some_and(|n| n != node) {
            return Err(refuse(format!(
                "join token {id} is for node {}, not {node}",
                token.node.as_deref().unwrap_or_default()
            )));
        }
        let named = token.node.is_some();
        let held = self.trust.live_certs(node);
        if !held.is_empty() && !named {
            return Err(ApiError::conflict(
                "NodeAlreadyJoined",
                format!(
                    "node {node} already has a certificate: remove the node (which revokes it), or make a join token for {node} (`gangway node join-token --node {node}`) to replace it"
                ),
            ));
        }
        let (pem, fingerprint) = issue().map_err(ApiError::invalid)?;
        for fp in held {
            self.revoke_cert(&fp, now, fx);
        }
        let (token, hash) = self.trust.join_tokens.get_mut(id).expect("checked");
        token.uses_left -= 1;
        put(&TrustRec::JoinToken { token: token.clone(), hash: hash.clone() }, fx);
        let cert = NodeCert {
            fingerprint: fingerprint.clone(),
            node: node.to_owned(),
            join_token: id.to_owned(),
            issued: now,
            revoked: None,
        };
        put(&TrustRec::Certificate(cert.clone()), fx);
        self.trust.certs.insert(fingerprint, cert);
        tracing::info!(node, token = id, "node joined: certificate issued");
        Ok(pem)
    }

    /// The node a verified client certificate (by fingerprint) was issued to, or why it is refused.
    pub(crate) fn node_of_cert(&self, fingerprint: &str) -> Result<&str, String> {
        match self.trust.certs.get(fingerprint) {
            None => Err("this certificate was not issued to a node of this cluster".into()),
            Some(c) if c.revoked.is_some() => Err(format!(
                "the certificate of {} was revoked at {} (the node was removed or joined again)",
                c.node,
                c.revoked.expect("checked")
            )),
            Some(c) => Ok(&c.node),
        }
    }

    /// Whether `node` may reach user `uid`'s stored file `name`: to read it, work running
    /// there as that user names it (a task's resource files or common resource files, or its
    /// job's preparation or release task's, where they ran); to `write` it, a task running
    /// there as that user stores output files under a prefix of it. A task with no user runs
    /// as the head's, `head_uid`.
    pub(crate) fn node_may_reach(&self, node: &str, uid: u32, name: &str, write: bool, head_uid: u32) -> bool {
        use gangway_api::ResourceFile;
        let named = |files: &[ResourceFile]| files.iter().any(|f| f.uploaded_file.as_deref() == Some(name));
        let Some(n) = self.nodes.get(node) else { return false };
        let tasks = n.running.keys().filter_map(|k| {
            let (job, task) = self.task_index.get(k)?;
            let j = self.jobs.get(job)?;
            let t = j.tasks.get(task)?;
            // A task runs as its `userIdentity` user, else as its job's owner.
            let user = t.wire.run_as.as_ref().or(j.wire.owner.as_ref()).map_or(head_uid, |u| u.uid);
            (user == uid).then_some((j, t))
        });
        let mut tasks = tasks.peekable();
        if write {
            return tasks.any(|(_, t)| {
                t.wire
                    .output_files
                    .iter()
                    .filter_map(|o| o.destination.uploaded_file.as_deref())
                    .any(|p| name.starts_with(p))
            });
        }
        let by_task = tasks.any(|(_, t)| {
            named(&t.wire.resource_files)
                || t.wire.multi_instance_settings.as_ref().is_some_and(|m| named(&m.common_resource_files))
        });
        by_task
            || self.jobs.values().any(|j| {
                j.wire.owner.as_ref().map_or(head_uid, |o| o.uid) == uid
                    && j.wire.prep_release.iter().any(|e| e.node_id == node)
                    && (j.wire.job_preparation_task.as_ref().is_some_and(|p| named(&p.resource_files))
                        || j.wire.job_release_task.as_ref().is_some_and(|r| named(&r.resource_files)))
            })
    }

    /// Revokes every certificate of `node` (it was removed from its pool).
    pub(crate) fn revoke_node_certs(&mut self, node: &str, fx: &mut Effects) {
        let now = Timestamp::now();
        for fp in self.trust.live_certs(node) {
            self.revoke_cert(&fp, now, fx);
            tracing::info!(node, "node certificate revoked");
        }
    }

    fn revoke_cert(&mut self, fingerprint: &str, now: Timestamp, fx: &mut Effects) {
        if let Some(c) = self.trust.certs.get_mut(fingerprint) {
            c.revoked = Some(now);
            put(&TrustRec::Certificate(c.clone()), fx);
        }
    }

    /// Puts back what the store held.
    pub(crate) fn restore_trust(&mut self, bodies: Vec<String>) -> Result<(), String> {
        for body in bodies {
            match serde_json::from_str(&body).map_err(|e| format!("stored trust record: {e}"))? {
                TrustRec::JoinToken { token, hash } => {
                    self.trust.join_tokens.insert(token.id.clone(), (token, hash));
                }
                TrustRec::Certificate(c) => {
                    self.trust.certs.insert(c.fingerprint.clone(), c);
                }
            }
        }
        Ok(())
    }
}

fn put(rec: &TrustRec, fx: &mut Effects) {
    let id = match rec {
        TrustRec::JoinToken { token, .. } => format!("join:{}", token.id),
        TrustRec::Certificate(c) => format!("cert:{}", c.fingerprint),
    };
    fx.writes.push(Write::PutTrust { id, body: serde_json::to_string(rec).expect("trust records serialize") });
}
