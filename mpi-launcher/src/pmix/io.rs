//! Serving a namespace's upcalls: fences go through the step's [`FenceExchange`] (the same
//! relay PMI-1 barriers use: srun's hub for steps, the head for Azure tasks), aborts become
//! [`PmiEvent::Abort`].

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use tokio::sync::mpsc;

use super::server::{ModexReply, Upcall};
use crate::pmi::io::FenceError;
use crate::pmi::{FenceExchange, PmiEvent};

/// The key under which a node's fence data travels in a fence exchange.
const FENCE_KEY: &str = "pmix";

/// Hex, as the exchange carries text.
pub fn encode(data: &[u8]) -> String {
    gangway_api::sha256::hex(data)
}

/// Bytes from [`encode`]'s hex; `None` for anything else.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Every node's fence data, in the exchange's (node) order, as the library wants it: one
/// buffer, the nodes' parts one after another.
pub fn fence_result(all: &[(String, String)]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for (_, v) in all.iter().filter(|(k, _)| k == FENCE_KEY) {
        out.extend(decode(v)?);
    }
    Some(out)
}

type Exchange<'a> = Pin<Box<dyn Future<Output = Result<Vec<(String, String)>, FenceError>> + Send + 'a>>;

/// Serves `upcalls` until the namespace is dropped. Fences run one at a time, in the order
/// the ranks entered them (as every node sees them in the same order).
pub async fn serve_namespace<F: FenceExchange + Sync>(
    mut upcalls: mpsc::UnboundedReceiver<Upcall>,
    fence: &F,
    events: mpsc::UnboundedSender<PmiEvent>,
) {
    let mut waiting: VecDeque<(Vec<u8>, ModexReply)> = VecDeque::new();
    let mut in_flight: Option<(Exchange<'_>, ModexReply)> = None;
    loop {
        if in_flight.is_none() {
            if let Some((data, reply)) = waiting.pop_front() {
                in_flight = Some((Box::pin(fence.exchange(vec![(FENCE_KEY.into(), encode(&data))])), reply));
            }
        }
        tokio::select! {
            done = async { in_flight.as_mut().expect("guarded").0.as_mut().await }, if in_flight.is_some() => {
                let (_, reply) = in_flight.take().expect("guarded");
                match done.map(|all| fence_result(&all)) {
                    Ok(Some(data)) => reply.ok(data),
                    Ok(None) => {
                        tracing::warn!("PMIx fence data from another node is not hex");
                        reply.fail();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "PMIx fence failed");
                        reply.fail();
                        let _ = events.send(PmiEvent::FenceFailed(e));
                    }
                }
            }
            up = upcalls.recv() => match up {
                None => return,
                Some(Upcall::Fence { data, reply }) => waiting.push_back((data, reply)),
                Some(Upcall::DirectModex { rank, reply }) => {
                    // Answered whenever the rank's node does, beside fences and other requests.
                    let fetch = fence.fetch_modex(rank);
                    tokio::spawn(async move {
                        match fetch.await {
                            Some(data) => reply.ok(data),
                            None => reply.fail(),
                        }
                    });
                }
                Some(Upcall::Abort { rank, status, message }) => {
                    tracing::info!(rank, status, message, "PMIx abort");
                    let msg = (!message.is_empty()).then_some(message);
                    let _ = events.send(PmiEvent::Abort { rank, code: status, msg });
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_data_round_trips_and_concatenates_in_node_order() {
        let all = vec![
            ("pmix".to_string(), encode(&[1, 2, 255])),
            ("other".to_string(), "zz".to_string()),
            ("pmix".to_string(), encode(&[])),
            ("pmix".to_string(), encode(&[0])),
        ];
        assert_eq!(fence_result(&all), Some(vec![1, 2, 255, 0]));
        assert_eq!(fence_result(&[("pmix".into(), "0g".into())]), None);
        assert_eq!(fence_result(&[("pmix".into(), "abc".into())]), None);
    }
}
