//! Who is calling: the identity every request carries into the handlers, and who may change
//! what.
//!
//! - On the head's Unix socket the kernel says who the peer is (`SO_PEERCRED`, read once per
//!   connection at accept): that user, with no secret file to read. The socket is
//!   connectable by every user of the machine.
//! - The admin token (`admin.token`, in `client.json`), on the socket or over TCP, is the
//!   bootstrap credential: its holder is an admin (acting as the head's own user over TCP).
//! - Admins are root, the head's own user and the users and groups given to `gangway head
//!   --admin`. They change anything; a user changes only what they own.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context;

/// The peer of a Unix-socket connection, as the kernel reported it at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
}

/// What every request of one connection carries: its Unix-socket peer (None over TCP) and
/// its permit under the connection cap, held as long as the connection (or the launcher
/// stream it became) lives.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The peer the kernel named, on the Unix socket.
    pub peer: Option<Peer>,
    /// Its share of `--max-connections`.
    pub permit: std::sync::Arc<tokio::sync::OwnedSemaphorePermit>,
    /// The fingerprint of the client certificate it presented over TLS (verified against the
    /// cluster CA): a node's.
    pub node_cert: Option<std::sync::Arc<str>>,
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user it acts as.
    pub uid: u32,
    /// Whether it may change anything (see the module's text).
    pub admin: bool,
    /// Whether it came with a job credential (which may not make lasting credentials).
    pub by_job: bool,
    /// A job manager's credential: the only job it may add and read tasks of.
    pub scope: Option<String>,
}

impl Caller {
    /// Whether it may change what `owner` owns (None: a record from before owners, admins only).
    pub fn may_change(&self, owner: Option<u32>) -> bool {
        self.admin || owner == Some(self.uid)
    }
}

/// The head's admins beyond root and its own user.
#[derive(Debug, Default)]
pub struct Admins {
    head_uid: u32,
    uids: Vec<u32>,
    gids: Vec<u32>,
    /// Whether a uid is in one of `gids` (supplementary groups included), as found once.
    members: Mutex<HashMap<u32, bool>>,
}

impl Admins {
    /// Root, the head's own user, and each of `names`: a user (name or uid) or `@group` (name
    /// or gid). An unknown name is an error that names it.
    pub fn new(names: &[String]) -> anyhow::Result<Admins> {
        // SAFETY: getuid has no preconditions.
        let head_uid = unsafe { libc::getuid() };
        let mut admins = Admins { head_uid, ..Admins::default() };
        for name in names.iter().flat_map(|n| n.split(',')).map(str::trim).filter(|n| !n.is_empty()) {
            match name.strip_prefix('@') {
                Some(group) => {
                    let gid = group.parse().ok().or_else(|| gangway_api::users::group_id(group));
                    admins.gids.push(gid.with_context(|| format!("--admin @{group}: no such group"))?);
                }
                None => {
                    let uid = name.parse().ok().or_else(|| gangway_api::users::user_id(name));
                    admins.uids.push(uid.with_context(|| format!("--admin {name}: no such user"))?);
                }
            }
        }
        Ok(admins)
    }

    /// The uid the head runs as.
    pub fn head_uid(&self) -> u32 {
        self.head_uid
    }

    /// Whether the user `uid` (in group `gid`, when the caller's group is known) is an admin.
    /// Group membership is looked up once per uid, off the async workers (a directory service
    /// may be slow).
    pub async fn is_admin(&self, uid: u32, gid: Option<u32>) -> bool {
        if uid == 0 || uid == self.head_uid || self.uids.contains(&uid) || gid.is_some_and(|g| self.gids.contains(&g)) {
            return true;
        }
        if self.gids.is_empty() {
            return false;
        }
        if let Some(known) = self.members.lock().expect("admin members lock").get(&uid) {
            return *known;
        }
        let groups = tokio::task::spawn_blocking(move || match gid {
            Some(gid) => gangway_api::users::groups_of(uid, gid),
            None => gangway_api::users::user_groups(uid),
        })
        .await
        .unwrap_or_default();
        let member = groups.iter().any(|g| self.gids.contains(g));
        self.members.lock().expect("admin members lock").insert(uid, member);
        member
    }
}

/// Decodes a MUNGE credential with the munged at `socket` (None: munge's default), which must
/// share the clients' key: the uid and gid it names, or why it is refused (invalid, expired,
/// replayed: munged remembers every credential it decoded until it expires).
pub async fn unmunge(socket: Option<&str>, credential: &str) -> Result<(u32, u32), String> {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new("unmunge");
    if let Some(s) = socket {
        cmd.arg("--socket").arg(s);
    }
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("this head cannot check MUNGE credentials (unmunge: {e})"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(credential.as_bytes()).await;
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait_with_output())
        .await
        .map_err(|_| "MUNGE credential refused: munged did not answer within 10 s".to_owned())?
        .map_err(|e| format!("MUNGE credential refused: running unmunge: {e}"))?;
    parse_unmunge(&String::from_utf8_lossy(&out.stdout), &String::from_utf8_lossy(&out.stderr))
}

/// The uid and gid in `unmunge`'s report, when its status is success.
fn parse_unmunge(stdout: &str, stderr: &str) -> Result<(u32, u32), String> {
    let field =
        |name: &str| stdout.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')).map(str::trim));
    let status = field("STATUS").unwrap_or_else(|| stderr.trim().trim_start_matches("unmunge: Error: "));
    if !status.starts_with("Success") {
        return Err(format!("MUNGE credential refused: {status}"));
    }
    // `UID:  alice (1001)`: the number in parentheses.
    let id = |name: &str| {
        field(name)
            .and_then(|v| v.rsplit_once('(')?.1.strip_suffix(')')?.parse::<u32>().ok())
            .ok_or_else(|| format!("MUNGE credential refused: unmunge gave no {name}"))
    };
    Ok((id("UID")?, id("GID")?))
}

/// The peer credentials of a connected Unix socket.
pub fn peer_of(stream: &tokio::net::UnixStream) -> Option<Peer> {
    stream.peer_cred().ok().map(|c| Peer { uid: c.uid(), gid: c.gid() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn root_and_the_head_user_are_admins_and_unknown_names_are_refused() {
        let admins = Admins::new(&[]).unwrap();
        assert!(admins.is_admin(0, Some(0)).await);
        assert!(admins.is_admin(admins.head_uid(), Some(12345)).await);
        assert!(!admins.is_admin(4_000_000_000, Some(4_000_000_000)).await || admins.head_uid() == 4_000_000_000);
        let listed = Admins::new(&["4000000001, @4000000002".into()]).unwrap();
        assert!(listed.is_admin(4_000_000_001, Some(7)).await);
        assert!(listed.is_admin(4_000_000_003, Some(4_000_000_002)).await, "the primary group counts");
        assert!(!listed.is_admin(4_000_000_003, Some(7)).await);
        assert!(!listed.is_admin(4_000_000_004, None).await, "an unknown user is in no group");
        let err = Admins::new(&["no-such-user-here".into()]).unwrap_err().to_string();
        assert!(err.contains("--admin no-such-user-here: no such user"), "{err}");
        let err = Admins::new(&["@no-such-group-here".into()]).unwrap_err().to_string();
        assert!(err.contains("--admin @no-such-group-here: no such group"), "{err}");
        assert!(Admins::new(&["root,@root".into()]).is_ok());
    }

    #[test]
    fn unmunge_reports_are_read_for_their_ids_and_refusals_name_the_status() {
        let ok = "STATUS:          Success (0)\nUID:             alice (1001)\nGID:             users (100)\n";
        assert_eq!(parse_unmunge(ok, ""), Ok((1001, 100)));
        let replayed = "STATUS:          Replayed credential (17)\nUID:             alice (1001)\n";
        assert_eq!(parse_unmunge(replayed, ""), Err("MUNGE credential refused: Replayed credential (17)".into()));
        let garbage = parse_unmunge("", "unmunge: Error: Failed to match armor prefix\n");
        assert_eq!(garbage, Err("MUNGE credential refused: Failed to match armor prefix".into()));
        assert!(parse_unmunge("STATUS: Success (0)\nUID: x\n", "").unwrap_err().contains("no UID"));
    }

    #[test]
    fn a_user_changes_only_their_own_and_an_admin_anything() {
        let alice = Caller { uid: 1001, admin: false, by_job: false, scope: None };
        assert!(alice.may_change(Some(1001)));
        assert!(!alice.may_change(Some(1002)));
        assert!(!alice.may_change(None));
        let admin = Caller { uid: 0, admin: true, by_job: false, scope: None };
        assert!(admin.may_change(Some(1001)) && admin.may_change(None));
    }
}
