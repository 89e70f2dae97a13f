//! What the commands that talk to the head share: finding the cluster, who is asking, and
//! printing the head's refusals as Slurm's commands print theirs.

use gangway_api::client::{Client, ClientConfig, ClientError};

/// Connects to the cluster (`GANGWAY_URL`/`GANGWAY_TOKEN`, `GANGWAY_STATE_DIR`, or the
/// default state directory); on failure says why, as `prog`.
pub fn connect(prog: &str) -> Result<Client, String> {
    let config = ClientConfig::discover(None).map_err(|e| format!("{prog}: error: {e}"))?;
    Client::new(&config).map_err(|e| format!("{prog}: error: {e}"))
}

/// The caller's uid and gid. Their user name is the head's to find, as it is slurmctld's.
pub fn ids() -> (u32, u32) {
    // SAFETY: getuid/getgid cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// This host's short name (`SLURM_SUBMIT_HOST`).
pub fn short_hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "localhost".into());
    name.trim().split('.').next().unwrap_or("localhost").to_owned()
}

/// The head's message for a refused call (`Invalid job id specified: 12`), or the transport error.
pub fn message(e: &ClientError) -> String {
    match e {
        ClientError::Api { body, .. } => body.message.value.clone(),
        other => other.to_string(),
    }
}

/// The head's error code for a refused call.
pub fn code(e: &ClientError) -> Option<&str> {
    match e {
        ClientError::Api { body, .. } => Some(body.code.as_str()),
        _ => None,
    }
}
