//! User names for uids. As in Slurm, the submitting host sends only its ids and the head names
//! them (slurmctld does the same), so a submission does not pay for a passwd lookup, which on
//! a site with LDAP or SSSD is a round trip. Names are remembered once found.

use std::collections::HashMap;
use std::sync::Mutex;

/// The names found so far, by uid.
#[derive(Default)]
pub struct UserNames(Mutex<HashMap<u32, String>>);

impl UserNames {
    /// `uid`'s name from the passwd database, or the number when it has none.
    pub async fn name(&self, uid: u32) -> String {
        if let Some(n) = self.0.lock().expect("user names lock").get(&uid) {
            return n.clone();
        }
        // The lookup may block (a directory service): off the async workers.
        match tokio::task::spawn_blocking(move || gangway_api::users::user_name(uid)).await.ok().flatten() {
            Some(n) => {
                self.0.lock().expect("user names lock").insert(uid, n.clone());
                n
            }
            // Not remembered: a user added later gets their name.
            None => uid.to_string(),
        }
    }
}

/// Users' groups, remembered for a while as slurmctld keeps them: a submission does not
/// read the group database each time.
#[derive(Default)]
pub struct UserGroups(gangway_api::users::Remembered<u32, std::sync::Arc<Vec<u32>>>);

impl UserGroups {
    /// Every group of `uid` (primary and supplementary; none for an unknown user).
    pub async fn of(&self, uid: u32) -> std::sync::Arc<Vec<u32>> {
        if let Some(groups) = self.0.get(&uid) {
            return groups;
        }
        let groups =
            tokio::task::spawn_blocking(move || gangway_api::users::user_groups(uid)).await.unwrap_or_default();
        let groups = std::sync::Arc::new(groups);
        if !groups.is_empty() {
            self.0.put(uid, groups.clone());
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_come_from_the_passwd_database_and_unknown_uids_stay_numbers() {
        let names = UserNames::default();
        assert_eq!(names.name(0).await, "root");
        assert_eq!(names.0.lock().unwrap().get(&0).map(String::as_str), Some("root"));
        let nobody = 4_000_000_000;
        assert_eq!(names.name(nobody).await, nobody.to_string());
        assert!(!names.0.lock().unwrap().contains_key(&nobody), "a missing name is looked up again next time");
    }

    #[tokio::test]
    async fn groups_are_remembered_for_known_users_only() {
        let groups = UserGroups::default();
        assert!(groups.of(0).await.contains(&0));
        assert!(groups.0.get(&0).is_some());
        assert!(groups.of(4_000_000_000).await.is_empty());
        assert!(groups.0.get(&4_000_000_000).is_none(), "an unknown user is looked up again");
    }
}
