//! What the commands that talk to the head share: finding the cluster, who is asking, and
//! printing the head's refusals as Slurm's commands print theirs.

use gangway_api::client::{Client, ClientConfig, ClientError};

/// Connects to the cluster (`GANGWAY_URL`/`GANGWAY_TOKEN`, `GANGWAY_STATE_DIR`, or the
/// default state directory); on failure says why, as `prog`.
pub fn connect(prog: &str) -> Result<Client, String> {
    let config = ClientConfig::discover(None).map_err(|e| format!("{prog}: error: {e}"))?;
    Client::new(&config).map_err(|e| format!("{prog}: error: {e}"))
}

/// The calling user: name, uid, gid.
pub fn identity() -> (String, u32, u32) {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    (user_name(uid).unwrap_or_else(|| uid.to_string()), uid, gid)
}

fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: getpwuid_r writes into `pwd` and `buf`, both ours and large enough or it says ERANGE.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut out);
        if rc != 0 || out.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        Some(std::ffi::CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned())
    }
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
