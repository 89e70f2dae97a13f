//! Per-user API tokens: created by a user for themselves (over the socket, or with another
//! credential), shown once, stored as the SHA-256 digest of their secret, revoked by their
//! owner or an admin. A token acts as its owner until it expires.

use gangway_api::tokens::{ApiToken, TokenAddParameter};
use gangway_api::{Owner, Timestamp};
use serde::{Deserialize, Serialize};

use super::{Effects, HeadState};
use crate::head::auth::same_secret;
use crate::head::error::ApiError;
use crate::head::identity::Caller;
use crate::head::sha256::{hex, hex_digest, hmac};
use crate::store::Write;

/// A token as the head keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TokenRec {
    /// What the API shows (never the token).
    pub token: ApiToken,
    /// The SHA-256 digest of its secret, in hex.
    pub hash: String,
}

/// The longest token name.
const MAX_NAME: usize = 100;

/// Why a presented token is refused.
pub(crate) const NOT_VALID: &str = "the bearer token is not valid for this cluster";

impl HeadState {
    /// Records a new token `id` with `secret` for `owner`; returns it with the token itself,
    /// which is never shown again.
    pub(crate) fn add_token(
        &mut self,
        owner: Owner,
        p: TokenAddParameter,
        id: String,
        secret: &str,
        fx: &mut Effects,
    ) -> Result<ApiToken, ApiError> {
        if let Some(name) = &p.name {
            if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
                return Err(ApiError::invalid(format!(
                    "name: at most {MAX_NAME} printable characters (got {} characters)",
                    name.chars().count()
                )));
            }
        }
        if p.expires_in.is_some_and(|d| d.0.is_zero() || d.is_unlimited()) {
            return Err(ApiError::invalid(
                "expiresIn must be a positive, finite duration (leave it out for no expiry)",
            ));
        }
        let now = Timestamp::now();
        let token = ApiToken {
            id: id.clone(),
            owner,
            name: p.name,
            creation_time: now,
            expiry_time: p.expires_in.map(|d| now.plus(d.0)),
            token: None,
        };
        let rec = TokenRec { token, hash: hex_digest(secret.as_bytes()) };
        fx.writes
            .push(Write::PutToken { id: id.clone(), body: serde_json::to_string(&rec).expect("tokens serialize") });
        let shown = ApiToken {
            token: Some(format!("{}{id}_{secret}", gangway_api::tokens::TOKEN_PREFIX)),
            ..rec.token.clone()
        };
        self.tokens.insert(id, rec);
        Ok(shown)
    }

    /// The tokens `caller` may see: their own, or every one for an admin.
    pub(crate) fn tokens_for(&self, caller: &Caller) -> Vec<ApiToken> {
        self.tokens.values().filter(|t| caller.may_change(Some(t.token.owner.uid))).map(|t| t.token.clone()).collect()
    }

    /// Revokes token `id` (its owner or an admin).
    pub(crate) fn revoke_token(&mut self, caller: &Caller, id: &str, fx: &mut Effects) -> Result<(), ApiError> {
        let t = self
            .tokens
            .get(id)
            .filter(|t| caller.may_change(Some(t.token.owner.uid)))
            .ok_or_else(|| ApiError::not_found("TokenNotFound", format!("you have no token '{id}'")))?;
        let id = t.token.id.clone();
        self.tokens.remove(&id);
        fx.writes.push(Write::DeleteToken { id });
        Ok(())
    }

    /// The uid a presented token (`id`, `secret`) acts as at `now`, or why it is refused.
    pub(crate) fn token_user(&self, id: &str, secret: &str, now: Timestamp) -> Result<u32, String> {
        let t = self.tokens.get(id).ok_or_else(|| NOT_VALID.to_owned())?;
        if !same_secret(hex_digest(secret.as_bytes()).as_bytes(), t.hash.as_bytes()) {
            return Err(NOT_VALID.to_owned());
        }
        if let Some(expiry) = t.token.expiry_time.filter(|e| *e <= now) {
            return Err(format!("token expired (token {id} expired at {expiry})"));
        }
        Ok(t.token.owner.uid)
    }

    /// Puts back the tokens the store held.
    pub(crate) fn restore_tokens(&mut self, bodies: Vec<String>) -> Result<(), String> {
        for body in bodies {
            let rec: TokenRec = serde_json::from_str(&body).map_err(|e| format!("stored token: {e}"))?;
            self.tokens.insert(rec.token.id.clone(), rec);
        }
        Ok(())
    }
}

/// What a job credential starts with (`gwj_JOB_MAC`).
pub(crate) const JOB_TOKEN_PREFIX: &str = "gwj_";
/// What a job manager's credential starts with (`gwm_JOB_MAC`).
pub(crate) const MANAGER_TOKEN_PREFIX: &str = "gwm_";

/// The credential a job's processes talk to the head with (`GANGWAY_TOKEN` in a batch job, for
/// its `srun`s): it acts as the job's owner until the job ends. It is a MAC of the job (its id
/// and creation time) under the head's `key`, so nothing is stored and no submitter's token
/// needs to travel in the job's environment.
pub(crate) fn job_token(key: &[u8], job: &gangway_api::Job) -> String {
    format!("{JOB_TOKEN_PREFIX}{}_{}", job.id, job_mac(key, job, ""))
}

/// A job manager task's credential (`AZ_BATCH_AUTHENTICATION_TOKEN`): like [`job_token`],
/// but it may only add and read the tasks of its own job (see `routes::within_scope`).
pub(crate) fn manager_token(key: &[u8], job: &gangway_api::Job) -> String {
    format!("{MANAGER_TOKEN_PREFIX}{}_{}", job.id, job_mac(key, job, "manager\n"))
}

fn job_mac(key: &[u8], job: &gangway_api::Job, kind: &str) -> String {
    hex(&hmac(key, format!("{kind}{}\n{}", job.id, job.creation_time.0).as_bytes()))
}

/// Whom a job credential acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobCredential {
    /// The job's owner.
    pub uid: u32,
    /// For a job manager's credential: the only job it may touch.
    pub scope: Option<String>,
}

impl HeadState {
    /// The key job credentials are made with (from the cluster secret, at start-up).
    pub fn set_job_token_key(&mut self, secret: &str) {
        self.job_token_key = crate::head::sha256::digest(format!("gangway job credentials\n{secret}").as_bytes());
    }

    /// Whom a job (or job manager) credential acts as, or why it is refused (not one, or its
    /// job ended).
    pub(crate) fn job_token_user(&self, token: &str) -> Result<JobCredential, String> {
        let (rest, kind, manager) =
            match (token.strip_prefix(JOB_TOKEN_PREFIX), token.strip_prefix(MANAGER_TOKEN_PREFIX)) {
                (Some(r), _) => (r, "", false),
                (_, Some(r)) => (r, "manager\n", true),
                _ => return Err(NOT_VALID.to_owned()),
            };
        let (job, mac) = rest.rsplit_once('_').ok_or_else(|| NOT_VALID.to_owned())?;
        let j = self.jobs.get(job).ok_or_else(|| NOT_VALID.to_owned())?;
        let want = job_mac(&self.job_token_key, &j.wire, kind);
        if !same_secret(want.as_bytes(), mac.as_bytes()) {
            return Err(NOT_VALID.to_owned());
        }
        if j.wire.state == gangway_api::JobState::Completed {
            return Err(format!("job credential expired: job {job} has ended"));
        }
        let uid = j.wire.owner.as_ref().map(|o| o.uid).ok_or_else(|| NOT_VALID.to_owned())?;
        Ok(JobCredential { uid, scope: manager.then(|| job.to_owned()) })
    }
}
