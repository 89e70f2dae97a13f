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
