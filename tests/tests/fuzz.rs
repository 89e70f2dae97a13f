//! Fuzz targets for every parser that takes outside input (see `gangway_tests::fuzz`): the
//! `#SBATCH` and option parser, time, hostlist, array, dependency and begin specs, the
//! `$filter` grammar, the launcher wire protocol, the PMI wire protocol, resource-file names,
//! paths, modes and URLs, and a node's join (its request body, and the PEM it gets back). Each runs briefly in the suite; a longer run:
//! `GANGWAY_FUZZ_SECS=600 cargo nextest run -p gangway-tests --test fuzz`.
//! A crash found keeps its input here as a seed, so it stays a regression test.

use std::time::Duration;

use gangway_tests::fuzz::fuzz;

/// Each target's time in the suite.
const SUITE: Duration = Duration::from_millis(1500);

fn text(input: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(input)
}

/// Runs every parser of `parsers` on `input` as text (none stops early: each must not panic);
/// true when any accepts it.
fn any_accepts(input: &[u8], parsers: &[fn(&str) -> bool]) -> bool {
    let s = text(input);
    parsers.iter().fold(false, |any, parse| parse(&s) | any)
}

#[test]
fn sbatch_scripts_and_options() {
    let seeds: &[&[u8]] = &[
        b"#!/bin/bash\n#SBATCH -N 2 --ntasks-per-node=4\n#SBATCH --time=1-02:00:00 --mem=4G\nsrun ./a.out\n\0-p debug",
        b"#!/bin/sh\n#SBATCH --gres=gpu:a100:2 -c 8\n#SBATCH --array=1-10%2 -o out_%A_%a.txt\n\0--hold --wrap true",
        b"#!/bin/bash\n#SBATCH --dependency=afterok:12:13,singleton\n#SBATCH --begin=now+1hour\n\0",
        b"\0-n 4 -G 2 --gpus-per-task=1 --cpus-per-gpu=2 --mem-per-gpu=1G --exclusive --export=ALL,X=1",
    ];
    let words: &[&[u8]] = &[
        b"#SBATCH ",
        b"--nodes=",
        b"-N ",
        b"--ntasks=",
        b"--time=",
        b"--mem=",
        b"--gres=gpu:",
        b"--array=",
        b"--dependency=",
        b"--begin=",
        b"--export=",
        b"-c ",
        b"--hint=nomultithread",
        b"--gpus=",
        b"\n",
        b"\0",
        b"=",
        b"%",
        b"k",
        b"G",
        b"-",
        b":",
        b",",
    ];
    fuzz("sbatch", seeds, words, SUITE, |input| {
        let (script, args) = match input.iter().position(|b| *b == 0) {
            Some(i) => (&input[..i], &input[i + 1..]),
            None => (input, &[][..]),
        };
        let args: Vec<String> = text(args).split_whitespace().map(str::to_owned).collect();
        gangway_slurm::resolve::resolve(&text(script), &args).is_ok()
    });
}

#[test]
fn time_specs() {
    let seeds: &[&[u8]] = &[b"1-02:03:04", b"90", b"2:00", b"UNLIMITED", b"PT1H30M", b"10m", b"1.5h", b"P1DT2H"];
    let words: &[&[u8]] = &[b"-", b":", b"PT", b"P", b"H", b"M", b"S", b"D", b".", b"99999999999", b"infinite"];
    fuzz("time", seeds, words, SUITE, |input| {
        any_accepts(
            input,
            &[
                |s| gangway_slurm::time::parse_time_limit(s).is_ok(),
                |s| gangway_slurm::time::parse_duration_secs(s).is_ok(),
                |s| gangway_api::IsoDuration::parse(s).is_ok(),
                |s| gangway_api::time::parse_human_duration(s).is_ok(),
                |s| gangway_api::Timestamp::parse(s).is_ok(),
            ],
        )
    });
}

#[test]
fn hostlists() {
    let seeds: &[&[u8]] = &[b"node[1-4,7]", b"rack[1-2]-n[01-16]", b"a,b,c[0-3]", b"n[001-100]"];
    let words: &[&[u8]] = &[b"[", b"]", b"-", b",", b"999999999", b"0", b"n"];
    fuzz("hostlist", seeds, words, SUITE, |input| gangway_topology::hostlist::expand_hostlist(&text(input)).is_ok());
}

#[test]
fn arrays_dependencies_and_begin_times() {
    let seeds: &[&[u8]] = &[
        b"1-10:2%3",
        b"0,5,7-9",
        b"afterok:12:13?afterany:14",
        b"singleton",
        b"aftercorr:7_2+5",
        b"now+1hour",
        b"2026-12-31T23:59:59",
        b"16:00",
        b"teatime",
    ];
    let words: &[&[u8]] = &[b"-", b":", b"%", b",", b"?", b"+", b"_", b"after", b"ok", b"now", b"T", b"4294967296"];
    fuzz("specs", seeds, words, SUITE, |input| {
        any_accepts(
            input,
            &[
                |s| gangway_slurm::array::parse_array(s).is_ok(),
                |s| gangway_slurm::dependency::parse_dependencies(s).is_ok(),
                |s| gangway_slurm::begin::parse_begin(s).is_ok(),
            ],
        )
    });
}

#[test]
fn odata_filters() {
    let seeds: &[&[u8]] = &[
        b"state eq 'active'",
        b"(priority gt 5 and startswith(id, 'job-')) or not (state ne 'completed')",
        b"poolInfo/poolId eq 'default'",
    ];
    let words: &[&[u8]] =
        &[b"(", b")", b" and ", b" or ", b"not ", b" eq ", b"'", b"startswith(", b"id", b"state", b"1"];
    let fields = &["id", "displayName", "state", "priority", "poolInfo/poolId"];
    fuzz("filter", seeds, words, SUITE, |input| {
        gangway_runner::head::filter::parse_filter(&text(input), fields).is_ok()
    });
}

#[test]
fn launcher_wire_protocol() {
    let seeds: &[&[u8]] = &[
        br#"{"type":"heartbeat"}"#,
        br#"{"type":"killTask","id":{"job":"j","task":"t","attempt":1},"reason":"x"}"#,
        br#"{"type":"hello","node":"n1","pool":"default","bootId":"b","running":[],"unacked":[]}"#,
        br#"{"type":"taskFinished","id":{"job":"j","task":"t","attempt":1},"exitCode":0}"#,
    ];
    let words: &[&[u8]] = &[b"{", b"}", b"[", b"]", b"\"", b":", b",", b"null", b"-1", b"1e999", b"\\u0000"];
    fuzz("launcher-wire", seeds, words, SUITE, |input| {
        let head = serde_json::from_slice::<gangway_api::messages::HeadMessage>(input).is_ok();
        let launcher = serde_json::from_slice::<gangway_api::messages::LauncherMessage>(input).is_ok();
        head || launcher
    });
}

#[test]
fn pmi_wire_protocol() {
    let seeds: &[&[u8]] = &[
        b"cmd=init pmi_version=1 pmi_subversion=1\n",
        b"cmd=put kvsname=kvs_1 key=k value=v\n",
        b"cmd=get kvsname=kvs_1 key=k\n",
        b"cmd=barrier_in\n",
        b"mcmd=spawn\n",
        b"cmd=get_maxes\n",
    ];
    let words: &[&[u8]] =
        &[b"cmd=", b"mcmd=", b" ", b"=", b"\n", b"kvsname=", b"key=", b"value=", b"-1", b"99999999999999999999"];
    fuzz("pmi-wire", seeds, words, SUITE, |input| gangway_launcher::pmi::wire::parse_request(input).is_ok());
}

#[test]
fn resource_file_names_paths_modes_and_urls() {
    let seeds: &[&[u8]] =
        &[b"https://example.org/a/b?c=d", b"dir/sub/file.txt", b"0755", b"input.dat", b"http://h:80/"];
    let words: &[&[u8]] = &[b"/", b"..", b".", b"http://", b"https://", b":", b"?", b"#", b"%2e", b"7", b"\0"];
    fuzz("resource-files", seeds, words, SUITE, |input| {
        any_accepts(
            input,
            &[
                |s| gangway_api::files::check_http_url(s).is_ok(),
                |s| gangway_api::files::check_file_path(s).is_ok(),
                |s| gangway_api::files::parse_file_mode(s).is_ok(),
                |s| gangway_api::files::validate_file_name(s).is_ok(),
            ],
        )
    });
}

#[test]
fn node_join_requests_and_certificates() {
    let seeds: &[&[u8]] = &[
        br#"{"name":"node1","publicKey":"04a1b2"}"#,
        b"-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIUX\n-----END CERTIFICATE-----\n",
        b"-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n",
    ];
    let words: &[&[u8]] = &[
        b"\"publicKey\":\"",
        b"\"name\":",
        b"04",
        b"zz",
        b"-----BEGIN ",
        b"-----END ",
        b"CERTIFICATE-----",
        b"\n",
        b"=",
    ];
    fuzz("join", seeds, words, SUITE, |input| {
        let body = serde_json::from_slice::<gangway_api::tokens::NodeJoinParameter>(input)
            .ok()
            .and_then(|p| p.public_key_bytes())
            .is_some();
        let certs = gangway_api::tls::certs_from_pem(input).is_ok();
        let key = gangway_api::tls::key_from_pem(input).is_ok();
        body | certs | key
    });
}
