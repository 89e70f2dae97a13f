//! The parts of `scontrol` that need no cluster: `show hostnames`, `show hostlist` and
//! `show hostlistsorted`, on top of `gangway_topology::hostlist`.

use gangway_topology::hostlist::{compress_hostlist, compress_hostlist_unsorted, expand_hostlist, HostlistError};

/// `scontrol show hostnames LIST`: the host names, one per line.
pub fn show_hostnames(list: &str) -> Result<String, String> {
    let hosts = expand_hostlist(list).map_err(|e| hostlist_error(list, &e))?;
    Ok(hosts.iter().map(|h| format!("{h}\n")).collect())
}

/// `scontrol show hostlist LIST` (input order kept) or `show hostlistsorted LIST`: the
/// compressed expression, with a newline.
pub fn show_hostlist(list: &str, sorted: bool) -> Result<String, String> {
    let hosts = expand_hostlist(list).map_err(|e| hostlist_error(list, &e))?;
    let compressed = if sorted { compress_hostlist(&hosts) } else { compress_hostlist_unsorted(&hosts) };
    Ok(format!("{compressed}\n"))
}

/// What scontrol prints on stderr for a bad hostlist.
fn hostlist_error(list: &str, e: &HostlistError) -> String {
    match e {
        HostlistError::RangeBackwards { range } => {
            format!("scontrol: error: _parse_single_range: Invalid range: `{range}'\nInvalid hostlist: {list}\n")
        }
        _ => format!("Invalid hostlist: {list}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_examples() {
        // shared/reference/slurm-22.05/hostlist-examples.txt
        assert_eq!(show_hostnames("node[01-04,07]").unwrap(), "node01\nnode02\nnode03\nnode04\nnode07\n");
        assert_eq!(
            show_hostnames("rack[0-1]_blade[0-2]").unwrap(),
            "rack0_blade0\nrack0_blade1\nrack0_blade2\nrack1_blade0\nrack1_blade1\nrack1_blade2\n"
        );
        assert_eq!(show_hostnames("a[1-2],b3,c[008-010]").unwrap(), "a1\na2\nb3\nc008\nc009\nc010\n");
        assert_eq!(show_hostlist("node01,node02,node03,node04,node07", false).unwrap(), "node[01-04,07]\n");
        assert_eq!(show_hostlist("node9,node10,node11", false).unwrap(), "node[9-11]\n");
        assert_eq!(show_hostlist("node09,node10,node9", false).unwrap(), "node[09-10,9]\n");
        assert_eq!(show_hostlist("n3,n1,n2,n1", false).unwrap(), "n[3,1-2,1]\n");
        assert_eq!(show_hostlist("n3,n1,n2,n1", true).unwrap(), "n[1,1-3]\n");
        assert_eq!(
            show_hostlist("rack0_blade0,rack0_blade1,rack1_blade0,rack1_blade1", false).unwrap(),
            "rack0_blade[0-1],rack1_blade[0-1]\n"
        );
        assert_eq!(show_hostnames("gpu[1-3]-ib").unwrap_err(), "Invalid hostlist: gpu[1-3]-ib\n");
        assert_eq!(
            show_hostnames("x[1-3,5-4]").unwrap_err(),
            "scontrol: error: _parse_single_range: Invalid range: `5-4'\nInvalid hostlist: x[1-3,5-4]\n"
        );
    }

    #[test]
    fn empty_list() {
        assert_eq!(show_hostnames("").unwrap(), "");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics(list in ".{0,40}") {
            let _ = show_hostnames(&list);
            let _ = show_hostlist(&list, false);
            let _ = show_hostlist(&list, true);
        }

        #[test]
        fn never_panics_on_near_misses(list in "[a-c0-9\\[\\],\\- _]{0,30}") {
            let _ = show_hostnames(&list);
            let _ = show_hostlist(&list, true);
        }

        /// `show hostlist` then `show hostnames` gives back the names, in order.
        #[test]
        fn hostlist_round_trips(names in proptest::collection::vec("(node|gpu|rack[0-3]_b)[0-9]{1,3}", 1..20)) {
            let joined = names.join(",");
            let compressed = show_hostlist(&joined, false).unwrap();
            let back = show_hostnames(compressed.trim_end()).unwrap();
            prop_assert_eq!(back.lines().collect::<Vec<_>>(), names.iter().map(String::as_str).collect::<Vec<_>>());
        }

        /// The sorted form names the same hosts, sorted.
        #[test]
        fn sorted_hostlist_keeps_the_set(names in proptest::collection::vec("n[0-9]{1,2}", 1..20)) {
            let compressed = show_hostlist(&names.join(","), true).unwrap();
            let mut back: Vec<String> = show_hostnames(compressed.trim_end()).unwrap().lines().map(String::from).collect();
            let mut want = names.clone();
            back.sort();
            want.sort();
            prop_assert_eq!(back, want);
        }
    }
}
