//! Real Unix users for the tests about identity: `useradd` on creation, `userdel` on drop
//! (also when the test fails), with a name unique to the test process.

use std::process::Command;

/// A user that exists while this value lives.
pub struct TestUser {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid (its own group).
    pub gid: u32,
}

impl TestUser {
    /// Creates user `gw<pid><tag>` with its own group and no home directory.
    pub fn create(tag: &str) -> TestUser {
        let name = format!("gw{}{tag}", std::process::id());
        // A user left by a killed run of the same pid would make useradd fail.
        let _ = Command::new("userdel").arg(&name).output();
        let out = Command::new("useradd")
            .args(["--no-create-home", "--user-group", "--shell", "/bin/sh", &name])
            .output()
            .expect("running useradd (the tests about users run as root)");
        assert!(out.status.success(), "useradd {name}: {}", String::from_utf8_lossy(&out.stderr));
        let uid = gangway_api::users::user_id(&name).expect("the new user's uid");
        let gid = gangway_api::users::primary_group(uid).expect("the new user's gid");
        TestUser { name, uid, gid }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// A real `munged` of the test's own (a fresh key and socket in a temporary directory), stopped
/// on drop.
pub struct Munged {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Munged {
    /// Starts one and waits for its socket.
    pub fn start() -> Munged {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new().prefix("gangway-munge").tempdir().expect("temp dir");
        // Clients of every user connect to its socket.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let key = dir.path().join("munge.key");
        let mut bytes = vec![0u8; 1024];
        std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes)).unwrap();
        std::fs::write(&key, &bytes).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let p = |name: &str| format!("--{name}={}", dir.path().join(name).display());
        let child = Command::new("munged")
            .args(["--force", "--foreground", &format!("--key-file={}", key.display())])
            .args([p("socket"), p("pid-file"), p("log-file"), p("seed-file")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting munged (Debian's munge package; scripts/deps.sh installs it)");
        let m = Munged { child, dir };
        crate::wait_for(std::time::Duration::from_secs(10), "munged's socket", || m.socket().exists().then_some(()));
        m
    }

    /// Its socket.
    pub fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("socket")
    }
}

impl Drop for Munged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
