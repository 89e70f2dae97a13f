//! Client request ids (`client-request-id`): a mutating call that carries one is done once.
//! The head remembers each id with its caller, a digest of the request and the answer it
//! gave, durably and for [`KEEP_MS`]; a repeat (a client retrying after a lost answer or a
//! head restart) gets that answer again, and the same id on another request is refused.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::{Effects, HeadState};
use crate::store::Write;

/// How long an id is remembered: well beyond any client's retry time.
pub const KEEP_MS: u64 = 15 * 60 * 1000;

/// A request done once, and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    /// `UID:ID`: ids are the caller's own.
    pub key: String,
    /// A digest of the method, path and body.
    pub digest: String,
    /// The answer's status and body (JSON, or empty).
    pub status: u16,
    pub body: String,
    /// When it was done (ms since the epoch).
    pub at_ms: u64,
}

/// The remembered requests, oldest first.
#[derive(Debug, Default)]
pub struct Requests {
    by_key: HashMap<String, Remembered>,
    order: VecDeque<(u64, String)>,
}

impl HeadState {
    /// The answer already given to request `key`, if any.
    pub(crate) fn remembered(&self, key: &str) -> Option<&Remembered> {
        self.requests.by_key.get(key)
    }

    /// Remembers a request's answer, in the same commit as the change it made; forgets
    /// those older than [`KEEP_MS`].
    pub(crate) fn remember(&mut self, rec: Remembered, fx: &mut Effects) {
        let cutoff = rec.at_ms.saturating_sub(KEEP_MS);
        let mut forgot = false;
        while self.requests.order.front().is_some_and(|(at, _)| *at < cutoff) {
            if let Some((_, key)) = self.requests.order.pop_front() {
                self.requests.by_key.remove(&key);
                forgot = true;
            }
        }
        if forgot {
            fx.writes.push(Write::DeleteRequestsBefore { at_ms: cutoff });
        }
        let body = serde_json::to_string(&rec).expect("request records serialize");
        fx.writes.push(Write::PutRequest { key: rec.key.clone(), at_ms: rec.at_ms, body });
        self.requests.order.push_back((rec.at_ms, rec.key.clone()));
        self.requests.by_key.insert(rec.key.clone(), rec);
    }

    /// The remembered requests from the store (bodies in time order).
    pub(crate) fn restore_requests(&mut self, bodies: Vec<String>) -> Result<(), String> {
        for body in bodies {
            let rec: Remembered = serde_json::from_str(&body).map_err(|e| format!("a stored request record: {e}"))?;
            self.requests.order.push_back((rec.at_ms, rec.key.clone()));
            self.requests.by_key.insert(rec.key.clone(), rec);
        }
        Ok(())
    }
}
