//! The PMI-1 "simple" wire protocol: one request or reply per line, `cmd=NAME key=value ...\n`.
//!
//! Facts checked against MPICH's `src/pmi/maint/pmi-1.1.txt` and its client (`pmi_wire.c`),
//! Hydra's proxy and flux-core's `simple_server.c`:
//! - `value=` (in `put` and in `get_result`) may hold spaces and `=`: Open MPI's values do, so it
//!   is read as the rest of the line, and written last in replies. `message=` in `abort` is free
//!   text too and is also the last field a client writes, so it is read the same way.
//! - The only multi-line form is `mcmd=spawn` … `endcmd`; gangway does not spawn, so the server
//!   swallows its lines and refuses it (as flux-core does).
//! - Error replies carry `rc=-1 msg=WORD`: MPICH's client stops a value at the first unescaped
//!   space, so a `msg` never holds spaces.
//!
//! Parsing never panics; every error names what was wrong with the line.

use std::fmt;

/// Longest kvsname, key and value gangway accepts (and announces in `maxes`, as Hydra does).
pub const KVSNAME_MAX: usize = 256;
/// See [`KVSNAME_MAX`].
pub const KEYLEN_MAX: usize = 256;
/// See [`KVSNAME_MAX`].
pub const VALLEN_MAX: usize = 1024;

/// A request from a rank, as the simple PMI client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `cmd=init pmi_version=V pmi_subversion=S`.
    Init { pmi_version: u32, pmi_subversion: u32 },
    /// `cmd=get_maxes`.
    GetMaxes,
    /// `cmd=get_appnum`.
    GetAppnum,
    /// `cmd=get_my_kvsname`.
    GetMyKvsname,
    /// `cmd=get_universe_size`.
    GetUniverseSize,
    /// `cmd=get kvsname=K key=KEY` (kvsname is optional in PMI 1.1).
    Get { kvsname: Option<String>, key: String },
    /// `cmd=put kvsname=K key=KEY value=REST OF LINE`.
    Put { kvsname: Option<String>, key: String, value: String },
    /// `cmd=barrier_in`.
    BarrierIn,
    /// `cmd=finalize`.
    Finalize,
    /// `cmd=abort [exitcode=N] [message=REST OF LINE]`; the exit code defaults to 1 (pmi-1.1.txt).
    Abort { exitcode: i32, message: Option<String> },
    /// `cmd=publish_name|unpublish_name|lookup_name ...`: name service, refused.
    NameService(NameOp),
    /// `mcmd=spawn`: the first line of a multi-line spawn, refused once `endcmd` arrives.
    SpawnBegin,
}

/// The three name-service commands, which gangway refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameOp {
    /// `publish_name` → `publish_result`.
    Publish,
    /// `unpublish_name` → `unpublish_result`.
    Unpublish,
    /// `lookup_name` → `lookup_result`.
    Lookup,
}

impl NameOp {
    fn reply_cmd(self) -> &'static str {
        match self {
            NameOp::Publish => "publish_result",
            NameOp::Unpublish => "unpublish_result",
            NameOp::Lookup => "lookup_result",
        }
    }
}

/// Why a line is not a PMI-1 request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes are not UTF-8.
    #[error("PMI line is not UTF-8")]
    NotUtf8,
    /// The line does not start with `cmd=` or `mcmd=`.
    #[error("PMI line does not start with cmd= or mcmd=: {line:?}")]
    NoCmd { line: String },
    /// A command gangway does not know.
    #[error("unknown PMI command {cmd:?}")]
    UnknownCommand { cmd: String },
    /// A word that is not `key=value`.
    #[error("PMI command {cmd}: {word:?} is not key=value")]
    BadWord { cmd: String, word: String },
    /// A required field is absent.
    #[error("PMI command {cmd}: missing {field}=")]
    MissingField { cmd: String, field: &'static str },
    /// A field that must be an integer is not.
    #[error("PMI command {cmd}: {field}={value:?} is not an integer")]
    BadInteger { cmd: String, field: &'static str, value: String },
}

/// Parses one request line (with or without its trailing newline).
pub fn parse_request(line: &[u8]) -> Result<Request, WireError> {
    let line = std::str::from_utf8(line).map_err(|_| WireError::NotUtf8)?;
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if let Some(rest) = line.strip_prefix("mcmd=") {
        return match rest.trim_end() {
            "spawn" => Ok(Request::SpawnBegin),
            other => Err(WireError::UnknownCommand { cmd: format!("mcmd={other}") }),
        };
    }
    let fields = split_fields(line)?;
    let cmd = fields.cmd;
    let req = match cmd {
        "init" => {
            Request::Init { pmi_version: fields.uint("pmi_version")?, pmi_subversion: fields.uint("pmi_subversion")? }
        }
        "get_maxes" => Request::GetMaxes,
        "get_appnum" => Request::GetAppnum,
        "get_my_kvsname" => Request::GetMyKvsname,
        "get_universe_size" => Request::GetUniverseSize,
        "get" => Request::Get { kvsname: fields.opt("kvsname"), key: fields.req("key")? },
        "put" => Request::Put { kvsname: fields.opt("kvsname"), key: fields.req("key")?, value: fields.req("value")? },
        "barrier_in" => Request::BarrierIn,
        "finalize" => Request::Finalize,
        "abort" => Request::Abort {
            exitcode: match fields.get("exitcode") {
                None => 1,
                Some(v) => v.trim().parse().map_err(|_| fields.bad_int("exitcode", v))?,
            },
            message: fields.opt("message"),
        },
        "publish_name" => Request::NameService(NameOp::Publish),
        "unpublish_name" => Request::NameService(NameOp::Unpublish),
        "lookup_name" => Request::NameService(NameOp::Lookup),
        _ => return Err(WireError::UnknownCommand { cmd: cmd.to_string() }),
    };
    Ok(req)
}

/// A line split into its command and fields.
struct Fields<'a> {
    cmd: &'a str,
    pairs: Vec<(&'a str, &'a str)>,
}

/// Fields whose value is the rest of the line (see the module docs).
const REST_OF_LINE: [&str; 2] = ["value", "message"];

fn split_fields(line: &str) -> Result<Fields<'_>, WireError> {
    let Some(mut rest) = line.strip_prefix("cmd=") else {
        return Err(WireError::NoCmd { line: line.chars().take(80).collect() });
    };
    let end = rest.find(' ').unwrap_or(rest.len());
    let cmd = &rest[..end];
    rest = &rest[end..];
    let mut pairs = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        let Some(eq) = rest.find('=').filter(|&eq| !rest[..eq].contains(' ') && eq > 0) else {
            let word = rest.split(' ').next().unwrap_or(rest);
            return Err(WireError::BadWord { cmd: cmd.to_string(), word: word.to_string() });
        };
        let key = &rest[..eq];
        let after = &rest[eq + 1..];
        if REST_OF_LINE.contains(&key) {
            pairs.push((key, after));
            break;
        }
        let end = after.find(' ').unwrap_or(after.len());
        pairs.push((key, &after[..end]));
        rest = &after[end..];
    }
    Ok(Fields { cmd, pairs })
}

impl Fields<'_> {
    fn get(&self, field: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| *k == field).map(|(_, v)| *v)
    }
    fn opt(&self, field: &str) -> Option<String> {
        self.get(field).map(str::to_string)
    }
    fn req(&self, field: &'static str) -> Result<String, WireError> {
        self.opt(field).ok_or_else(|| WireError::MissingField { cmd: self.cmd.to_string(), field })
    }
    fn uint(&self, field: &'static str) -> Result<u32, WireError> {
        let v = self.get(field).ok_or_else(|| WireError::MissingField { cmd: self.cmd.to_string(), field })?;
        v.parse().map_err(|_| self.bad_int(field, v))
    }
    fn bad_int(&self, field: &'static str, value: &str) -> WireError {
        WireError::BadInteger { cmd: self.cmd.to_string(), field, value: value.chars().take(40).collect() }
    }
}

/// A reply to a rank. `Display` writes the line, newline included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0` (or rc=-1 for other versions).
    Init { ok: bool },
    /// `cmd=maxes kvsname_max=… keylen_max=… vallen_max=… rc=0`.
    Maxes,
    /// `cmd=appnum appnum=N rc=0`.
    Appnum(i32),
    /// `cmd=my_kvsname kvsname=K rc=0`.
    MyKvsname(String),
    /// `cmd=universe_size size=N rc=0`.
    UniverseSize(u32),
    /// `cmd=get_result rc=0 value=V`, or `rc=-1 msg=WORD` when the key is absent or the get invalid.
    GetResult(Result<String, &'static str>),
    /// `cmd=put_result rc=0`, or `rc=-1 msg=WORD`.
    PutResult(Result<(), &'static str>),
    /// `cmd=barrier_out rc=0`, or `rc=-1` when the job-wide fence failed.
    BarrierOut { ok: bool },
    /// `cmd=finalize_ack rc=0`.
    FinalizeAck,
    /// `cmd=publish_result|unpublish_result|lookup_result rc=-1 msg=not_supported`.
    NameRefused(NameOp),
    /// `cmd=spawn_result rc=-1 msg=not_supported`.
    SpawnRefused,
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Response::Init { ok: true } => writeln!(f, "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0"),
            Response::Init { ok: false } => {
                writeln!(f, "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=-1 msg=unsupported_pmi_version")
            }
            Response::Maxes => {
                writeln!(f, "cmd=maxes kvsname_max={KVSNAME_MAX} keylen_max={KEYLEN_MAX} vallen_max={VALLEN_MAX} rc=0")
            }
            Response::Appnum(n) => writeln!(f, "cmd=appnum appnum={n} rc=0"),
            Response::MyKvsname(k) => writeln!(f, "cmd=my_kvsname kvsname={k} rc=0"),
            Response::UniverseSize(n) => writeln!(f, "cmd=universe_size size={n} rc=0"),
            // value= last: it may contain spaces.
            Response::GetResult(Ok(v)) => writeln!(f, "cmd=get_result rc=0 value={v}"),
            Response::GetResult(Err(msg)) => writeln!(f, "cmd=get_result rc=-1 msg={msg}"),
            Response::PutResult(Ok(())) => writeln!(f, "cmd=put_result rc=0"),
            Response::PutResult(Err(msg)) => writeln!(f, "cmd=put_result rc=-1 msg={msg}"),
            Response::BarrierOut { ok } => writeln!(f, "cmd=barrier_out rc={}", if *ok { 0 } else { -1 }),
            Response::FinalizeAck => writeln!(f, "cmd=finalize_ack rc=0"),
            Response::NameRefused(op) => writeln!(f, "cmd={} rc=-1 msg=not_supported", op.reply_cmd()),
            Response::SpawnRefused => writeln!(f, "cmd=spawn_result rc=-1 msg=not_supported"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str, expected: Result<Request, &str>) {
        let got = parse_request(line.as_bytes()).map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(str::to_string), "parsing {line:?}");
    }

    fn s(v: &str) -> String {
        v.to_string()
    }

    #[test]
    fn parses_requests() {
        check("cmd=init pmi_version=1 pmi_subversion=1\n", Ok(Request::Init { pmi_version: 1, pmi_subversion: 1 }));
        check("cmd=get_maxes\n", Ok(Request::GetMaxes));
        check("cmd=get_appnum\n", Ok(Request::GetAppnum));
        check("cmd=get_my_kvsname\n", Ok(Request::GetMyKvsname));
        check("cmd=get_universe_size", Ok(Request::GetUniverseSize));
        check("cmd=barrier_in\n", Ok(Request::BarrierIn));
        check("cmd=finalize\r\n", Ok(Request::Finalize));
        check(
            "cmd=get kvsname=kvs_1 key=PMI_process_mapping\n",
            Ok(Request::Get { kvsname: Some(s("kvs_1")), key: s("PMI_process_mapping") }),
        );
        check("cmd=get key=k\n", Ok(Request::Get { kvsname: None, key: s("k") }));
        check(
            "cmd=put kvsname=kvs_1 key=-bcast-1-0 value=abc\n",
            Ok(Request::Put { kvsname: Some(s("kvs_1")), key: s("-bcast-1-0"), value: s("abc") }),
        );
        // value= is the rest of the line: spaces, '=' and trailing blanks kept.
        check(
            "cmd=put kvsname=k key=x value=a b=c  d \n",
            Ok(Request::Put { kvsname: Some(s("k")), key: s("x"), value: s("a b=c  d ") }),
        );
        check("cmd=put key=x value=\n", Ok(Request::Put { kvsname: None, key: s("x"), value: s("") }));
        check("cmd=abort exitcode=3\n", Ok(Request::Abort { exitcode: 3, message: None }));
        check("cmd=abort\n", Ok(Request::Abort { exitcode: 1, message: None }));
        check(
            "cmd=abort exitcode=-2 message=rank 1 gave up\n",
            Ok(Request::Abort { exitcode: -2, message: Some(s("rank 1 gave up")) }),
        );
        check("cmd=publish_name service=s port=p\n", Ok(Request::NameService(NameOp::Publish)));
        check("cmd=lookup_name service=s\n", Ok(Request::NameService(NameOp::Lookup)));
        check("cmd=unpublish_name service=s\n", Ok(Request::NameService(NameOp::Unpublish)));
        check("mcmd=spawn\n", Ok(Request::SpawnBegin));
        // Extra blanks between words are tolerated, as MPICH's parser does.
        check("cmd=get  key=k   kvsname=n\n", Ok(Request::Get { kvsname: Some(s("n")), key: s("k") }));
    }

    #[test]
    fn refuses_bad_lines() {
        check("", Err("PMI line does not start with cmd= or mcmd=: \"\""));
        check("hello\n", Err("PMI line does not start with cmd= or mcmd=: \"hello\""));
        check("cmd=fly\n", Err("unknown PMI command \"fly\""));
        check("mcmd=jump\n", Err("unknown PMI command \"mcmd=jump\""));
        check("cmd=init pmi_version=1\n", Err("PMI command init: missing pmi_subversion="));
        check(
            "cmd=init pmi_version=x pmi_subversion=1\n",
            Err("PMI command init: pmi_version=\"x\" is not an integer"),
        );
        check("cmd=get kvsname=k\n", Err("PMI command get: missing key="));
        check("cmd=put key=k\n", Err("PMI command put: missing value="));
        check("cmd=get key\n", Err("PMI command get: \"key\" is not key=value"));
        check("cmd=get =v\n", Err("PMI command get: \"=v\" is not key=value"));
        check("cmd=abort exitcode=zz\n", Err("PMI command abort: exitcode=\"zz\" is not an integer"));
        assert_eq!(parse_request(b"cmd=get key=\xff\n"), Err(WireError::NotUtf8));
    }

    #[test]
    fn formats_responses() {
        let cases: &[(Response, &str)] = &[
            (Response::Init { ok: true }, "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0\n"),
            (Response::Maxes, "cmd=maxes kvsname_max=256 keylen_max=256 vallen_max=1024 rc=0\n"),
            (Response::Appnum(0), "cmd=appnum appnum=0 rc=0\n"),
            (Response::MyKvsname(s("kvs_7_0")), "cmd=my_kvsname kvsname=kvs_7_0 rc=0\n"),
            (Response::UniverseSize(4), "cmd=universe_size size=4 rc=0\n"),
            (Response::GetResult(Ok(s("(vector,(0,1,2))"))), "cmd=get_result rc=0 value=(vector,(0,1,2))\n"),
            (Response::GetResult(Ok(s("a b=c"))), "cmd=get_result rc=0 value=a b=c\n"),
            (Response::GetResult(Err("key_not_found")), "cmd=get_result rc=-1 msg=key_not_found\n"),
            (Response::PutResult(Ok(())), "cmd=put_result rc=0\n"),
            (Response::BarrierOut { ok: true }, "cmd=barrier_out rc=0\n"),
            (Response::BarrierOut { ok: false }, "cmd=barrier_out rc=-1\n"),
            (Response::FinalizeAck, "cmd=finalize_ack rc=0\n"),
            (Response::NameRefused(NameOp::Lookup), "cmd=lookup_result rc=-1 msg=not_supported\n"),
            (Response::SpawnRefused, "cmd=spawn_result rc=-1 msg=not_supported\n"),
        ];
        for (resp, line) in cases {
            assert_eq!(resp.to_string(), *line);
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = parse_request(&bytes);
        }

        #[test]
        fn never_panics_on_near_misses(line in "(m?cmd=)?(get|put|init|abort|spawn)?( [a-z_]{0,8}=?[ =a-z0-9]{0,8}){0,4}\n?") {
            let _ = parse_request(line.as_bytes());
        }

        #[test]
        fn put_values_round_trip(value in "[ -~]{0,64}") {
            let line = format!("cmd=put kvsname=k key=x value={value}\n");
            let parsed = parse_request(line.as_bytes());
            proptest::prop_assert_eq!(parsed, Ok(Request::Put { kvsname: Some(s("k")), key: s("x"), value }));
        }
    }
}
