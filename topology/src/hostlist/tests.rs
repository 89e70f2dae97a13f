use proptest::prelude::*;

use super::*;

fn names(list: &str) -> Vec<String> {
    list.split(',').map(str::to_string).collect()
}

/// `scontrol show hostnames EXPR`.
fn check_expand(expr: &str, expected: &[&str]) {
    assert_eq!(expand_hostlist(expr).unwrap(), expected, "expanding {expr:?}");
}

/// `scontrol show hostnames EXPR` failing.
fn check_expand_error(expr: &str, message: &str) {
    let err = expand_hostlist(expr).unwrap_err();
    assert_eq!(err.to_string(), message, "expanding {expr:?}");
}

/// `scontrol show hostlist NAMES` and `scontrol show hostlistsorted NAMES`.
fn check_compress(hosts: &str, unsorted: &str, sorted: &str) {
    let hosts = names(hosts);
    assert_eq!(compress_hostlist_unsorted(&hosts), unsorted, "hostlist {hosts:?}");
    assert_eq!(compress_hostlist(&hosts), sorted, "hostlistsorted {hosts:?}");
}

// Every case of shared/reference/slurm-22.05/hostlist-examples.txt.

#[test]
fn slurm_example_hostnames_ranges_and_singles() {
    check_expand("node[01-04,07]", &["node01", "node02", "node03", "node04", "node07"]);
}

#[test]
fn slurm_example_hostnames_two_bracket_groups() {
    check_expand(
        "rack[0-1]_blade[0-2]",
        &["rack0_blade0", "rack0_blade1", "rack0_blade2", "rack1_blade0", "rack1_blade1", "rack1_blade2"],
    );
}

#[test]
fn slurm_example_hostnames_mixed_list_keeps_padding() {
    check_expand("a[1-2],b3,c[008-010]", &["a1", "a2", "b3", "c008", "c009", "c010"]);
}

#[test]
fn slurm_example_hostlist_merges_consecutive_numbers() {
    assert_eq!(compress_hostlist_unsorted(&names("node01,node02,node03,node04,node07")), "node[01-04,07]");
}

#[test]
fn slurm_example_hostlist_unpadded_numbers_grow_a_digit() {
    assert_eq!(compress_hostlist_unsorted(&names("node9,node10,node11")), "node[9-11]");
}

#[test]
fn slurm_example_hostlist_padded_and_unpadded_stay_apart() {
    assert_eq!(compress_hostlist_unsorted(&names("node09,node10,node9")), "node[09-10,9]");
}

#[test]
fn slurm_example_hostlist_keeps_order_and_duplicates() {
    assert_eq!(compress_hostlist_unsorted(&names("n3,n1,n2,n1")), "n[3,1-2,1]");
}

#[test]
fn slurm_example_hostlistsorted_sorts_and_keeps_duplicates() {
    assert_eq!(compress_hostlist(&names("n3,n1,n2,n1")), "n[1,1-3]");
}

#[test]
fn slurm_example_hostlist_prefixes_with_digits() {
    assert_eq!(
        compress_hostlist_unsorted(&names("rack0_blade0,rack0_blade1,rack1_blade0,rack1_blade1")),
        "rack0_blade[0-1],rack1_blade[0-1]"
    );
}

#[test]
fn slurm_example_suffix_after_last_bracket_is_invalid() {
    check_expand_error(
        "gpu[1-3]-ib",
        "text after ']' in `gpu[1-3]-ib`: only ',' or the end of the name may follow the last ']'",
    );
}

#[test]
fn slurm_example_backwards_range_is_invalid() {
    check_expand_error("x[1-3,5-4]", "range 5-4 goes backwards");
}

// Further behaviour of Slurm's parser.

#[test]
fn expand_edge_cases() {
    check_expand("", &[]);
    check_expand(" , ,\t", &[]);
    check_expand("a, b\tc", &["a", "b", "c"]);
    check_expand("n[8-10]", &["n8", "n9", "n10"]);
    check_expand("n[1,1]", &["n1", "n1"]);
    check_expand("n[5-]", &["n5"]);
    check_expand("[1-2]", &["1", "2"]);
    check_expand("a]b[1-2]", &["a]b1", "a]b2"]);
    check_expand("n[1-2],m[3]", &["n1", "n2", "m3"]);
    check_expand("n[1-2]\tm[3]", &["n1", "n2", "m3"]);
    // Slurm recurses from the right: the middle group varies slowest.
    check_expand("a[1-2]b[3-4]c[5]", &["a1b3c5", "a2b3c5", "a1b4c5", "a2b4c5"]);
}

#[test]
fn expand_errors_name_the_problem() {
    check_expand_error("node[1-3", "unterminated '[' in `node[1-3`");
    check_expand_error("a[b_c[1-2]", "unterminated '[' in `a[b_c[1-2]`");
    check_expand_error("n[5-1]", "range 5-1 goes backwards");
    check_expand_error("n[]", "invalid range `` in `n[]`: expected N or N-M in decimal digits");
    check_expand_error("n[1,,2]", "invalid range `` in `n[1,,2]`: expected N or N-M in decimal digits");
    check_expand_error("n[a-2]", "invalid range `a-2` in `n[a-2]`: expected N or N-M in decimal digits");
    check_expand_error("n[1--2]", "invalid range `1--2` in `n[1--2]`: expected N or N-M in decimal digits");
    check_expand_error("n[-2]", "invalid range `-2` in `n[-2]`: expected N or N-M in decimal digits");
    check_expand_error("n[1x2]", "invalid range `1x2` in `n[1x2]`: expected N or N-M in decimal digits");
    check_expand_error(
        "n[1-2]x[3]y",
        "text after ']' in `n[1-2]x[3]y`: only ',' or the end of the name may follow the last ']'",
    );
    check_expand_error("n[0-65536]", "more than 65536 hosts");
    check_expand_error("a[1-300]b[1-300]", "more than 65536 hosts");
    check_expand_error("n[0-40000],m[0-40000]", "more than 65536 hosts");
    check_expand_error(
        "n[99999999999999999999]",
        "invalid range `99999999999999999999` in `n[99999999999999999999]`: expected N or N-M in decimal digits",
    );
}

#[test]
fn exactly_the_limit_expands() {
    assert_eq!(expand_hostlist("n[1-65536]").unwrap().len(), MAX_HOSTS);
}

#[test]
fn compress_edge_cases() {
    check_compress("login", "login", "login");
    check_compress("login,login", "login,login", "login,login");
    check_compress("node,node1,node2", "node,node[1-2]", "node,node[1-2]");
    check_compress("n1,n02", "n[1,02]", "n[1,02]");
    check_compress("b1,a1,a2", "b1,a[1-2]", "a[1-2],b1");
    check_compress("rack10_n1,rack9_n1", "rack10_n1,rack9_n1", "rack9_n1,rack10_n1");
    check_compress("n099,n100", "n[099-100]", "n[099-100]");
    check_compress("123,124", "[123-124]", "[123-124]");
    check_compress("n1,n2,n3,n2", "n[1-3,2]", "n[1-2,2-3]");
    check_compress("", "", "");
}

#[test]
fn compress_of_no_hosts_is_empty() {
    assert_eq!(compress_hostlist(&[]), "");
    assert_eq!(compress_hostlist_unsorted(&[]), "");
}

/// Host names as clusters spell them: a prefix from a small set and a number, sometimes padded,
/// sometimes no number at all.
fn host_name() -> impl Strategy<Value = String> {
    let prefix = prop::sample::select(vec!["node", "gpu", "rack1-n", "a", "x9y", ""]);
    prop_oneof![
        4 => (prefix, 0u64..300, 0usize..4).prop_map(|(p, n, w)| format!("{p}{n:0w$}")),
        1 => prop::sample::select(vec!["login", "head-a", "node"]).prop_map(str::to_string),
    ]
}

proptest! {
    #[test]
    fn unsorted_compression_round_trips_exactly(hosts in prop::collection::vec(host_name(), 0..40)) {
        let expr = compress_hostlist_unsorted(&hosts);
        prop_assert_eq!(expand_hostlist(&expr).unwrap(), hosts);
    }

    #[test]
    fn sorted_compression_round_trips(hosts in prop::collection::vec(host_name(), 0..40)) {
        let expr = compress_hostlist(&hosts);
        let expanded = expand_hostlist(&expr).unwrap();
        let (mut a, mut b) = (expanded.clone(), hosts.clone());
        a.sort();
        b.sort();
        prop_assert_eq!(a, b, "{} expands to other hosts", expr);
        prop_assert_eq!(compress_hostlist(&expanded), expr);
    }

    #[test]
    fn expand_never_panics(text in "\\PC{0,40}") {
        let _ = expand_hostlist(&text);
    }

    #[test]
    fn expand_never_panics_on_bracket_soup(text in "[a0-9\\[\\],\\- x]{0,40}") {
        if let Ok(hosts) = expand_hostlist(&text) {
            prop_assert!(hosts.len() <= MAX_HOSTS);
        }
    }

    #[test]
    fn compress_never_panics(hosts in prop::collection::vec("\\PC{0,12}", 0..20)) {
        let _ = compress_hostlist(&hosts);
        let _ = compress_hostlist_unsorted(&hosts);
    }
}
