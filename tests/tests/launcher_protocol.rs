//! The head's end of the launcher protocol, against a real head: a launcher without a valid
//! join token or certificate is refused and leaves no trace but a log line, a certificate
//! names one node for good (another name, a removed node, another CA: refused), and a node
//! cannot answer for another's files or reach uploads not sent to it; garbage on the head's
//! port (random bytes, bad TLS, bad HTTP, bad lines, bad hellos, huge lines, silence) costs
//! the head nothing; and a hand-written client that repeats a report sees it acknowledged
//! twice and applied once. Everything speaks TLS as launchers do (`gangway_tests::tls`).

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gangway_api::client::{Client, ListOptions};
use gangway_api::messages::{AttemptId, HeadMessage, LauncherMessage, TaskFinished, LAUNCHER_PATH, LAUNCHER_PROTOCOL};
use gangway_api::*;
use gangway_tests::tls::{connect_tls, join_as, join_with, NodeIdentity};
use gangway_tests::{bin, wait_for, Cluster, Options};
use serde_json::{json, Value};

/// A single-host cluster with no launchers (the tests bring their own).
fn headless() -> Cluster {
    Cluster::start(Options { nodes: 0, ..Options::default() })
}

/// The certificate of node `name`, made by joining once per test cluster and name.
fn ident(cluster: &Cluster, name: &str) -> NodeIdentity {
    static KNOWN: Mutex<Vec<(std::path::PathBuf, NodeIdentity)>> = Mutex::new(Vec::new());
    let state = cluster.state_dir();
    let mut known = KNOWN.lock().unwrap();
    if let Some((_, id)) = known.iter().find(|(s, id)| *s == state && id.name == name) {
        return id.clone();
    }
    let id = join_as(&state, &cluster.config, name);
    known.push((state, id.clone()));
    id
}

fn timeouts(s: TcpStream) -> TcpStream {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Plain TCP to the head's port (which speaks only TLS).
fn connect_raw(cluster: &Cluster) -> TcpStream {
    timeouts(TcpStream::connect(gangway_tests::tls::head_addr(&cluster.config)).expect("connecting to the head"))
}

/// HTTP to the head over TLS, with no certificate (a REST client).
fn connect(cluster: &Cluster) -> TcpStream {
    timeouts(connect_tls(&cluster.config, None))
}

/// Everything the head sends until it closes the connection (or 20 s pass: a hang).
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("the head neither answered nor closed the connection: {e} (got {out:?})"),
        }
    }
}

/// The status line of an HTTP answer.
fn status_line(answer: &[u8]) -> String {
    String::from_utf8_lossy(answer).lines().next().unwrap_or_default().to_owned()
}

/// One launcher stream spoken by hand: the upgrade, then JSON lines.
struct Stream {
    rd: BufReader<TcpStream>,
    wr: Arc<Mutex<TcpStream>>,
}

/// What the head sends on a stream that has been idle for a heartbeat interval.
const HEAD_HEARTBEAT: &[u8] = b"{\"type\":\"heartbeat\"}\n";

impl Stream {
    /// Upgrades a new connection with node `name`'s certificate; panics unless the head answers 101.
    fn upgrade(cluster: &Cluster, name: &str) -> Stream {
        Stream::upgrade_with(cluster, &ident(cluster, name))
    }

    /// Upgrades a new connection presenting `id`; panics unless the head answers 101.
    fn upgrade_with(cluster: &Cluster, id: &NodeIdentity) -> Stream {
        let s = timeouts(connect_tls(&cluster.config, Some(id)));
        let mut rd = BufReader::new(s.try_clone().unwrap());
        let mut wr = s;
        write!(
            wr,
            "GET {LAUNCHER_PATH} HTTP/1.1\r\nHost: head\r\nUpgrade: {LAUNCHER_PROTOCOL}\r\nConnection: Upgrade\r\n\r\n"
        )
        .unwrap();
        let mut head = String::new();
        loop {
            let mut line = String::new();
            assert!(rd.read_line(&mut line).unwrap() > 0, "connection closed during the upgrade: {head:?}");
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        assert!(head.to_ascii_lowercase().contains(&format!("upgrade: {LAUNCHER_PROTOCOL}")), "{head}");
        Stream { rd, wr: Arc::new(Mutex::new(wr)) }
    }

    fn send_raw(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.wr.lock().unwrap().write_all(bytes)
    }

    fn send(&self, msg: &Value) {
        self.send_raw(format!("{msg}\n").as_bytes()).expect("sending to the head");
    }

    /// The next line from the head as JSON (its heartbeats skipped), None once it closed the
    /// connection.
    fn recv(&mut self) -> Option<Value> {
        loop {
            let mut line = Vec::new();
            match self.rd.read_until(b'\n', &mut line) {
                Ok(0) => return None,
                Ok(_) if line == HEAD_HEARTBEAT => continue,
                Ok(_) => {
                    return Some(
                        serde_json::from_slice(&line)
                            .unwrap_or_else(|e| panic!("bad line from the head ({e}): {line:?}")),
                    )
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("the head neither sent a line nor closed the connection: {e}"),
            }
        }
    }

    fn recv_msg(&mut self) -> HeadMessage {
        let v = self.recv().expect("the head closed the connection");
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("not a head message ({e}): {v}"))
    }

    /// Asserts the head closes the connection within `within`, sending nothing more.
    #[track_caller]
    fn expect_closed(mut self, within: Duration, what: &str) {
        self.rd.get_ref().set_read_timeout(Some(within)).unwrap();
        let start = Instant::now();
        let mut rest = self.rd.buffer().to_vec();
        rest.extend(read_to_close(self.rd.get_mut()));
        let rest: Vec<&[u8]> = rest.split_inclusive(|b| *b == b'\n').filter(|l| *l != HEAD_HEARTBEAT).collect();
        assert!(rest.is_empty(), "{what}: the head sent {rest:?}");
        assert!(start.elapsed() < within, "{what}: still open after {within:?}");
    }

    /// Sends a heartbeat every 100 ms from another thread until the returned flag is set.
    fn keep_alive(&self) -> Arc<AtomicBool> {
        let stop = Arc::new(AtomicBool::new(false));
        let (wr, flag) = (self.wr.clone(), stop.clone());
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if wr.lock().unwrap().write_all(b"{\"type\":\"heartbeat\"}\n").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        stop
    }
}

fn hello(name: &str, pool: &str) -> Value {
    json!({
        "type": "hello",
        "name": name,
        "address": "127.0.0.1",
        "pool": pool,
        "resources": {"cpus": 2, "cores": 2, "memoryBytes": 1u64 << 30},
        "root_dir": format!("/nonexistent/{name}"),
        "running": [],
        "finished": [],
        "boot_id": format!("{name}-boot"),
    })
}

fn node_names(c: &mut Client) -> Vec<String> {
    c.list_nodes(None).expect("GET /nodes").into_iter().map(|n| n.id).collect()
}

/// The head is alive and answers REST calls, and no refused name was ever registered.
#[track_caller]
fn assert_serving(cluster: &mut Cluster, what: &str) {
    let alive = cluster.head.as_mut().expect("head").try_wait().expect("try_wait").is_none();
    assert!(alive, "the head exited after {what}; its log:\n{}", cluster.head_log());
    let mut c = cluster.client();
    c.list_jobs(&ListOptions::default()).unwrap_or_else(|e| panic!("GET /jobs after {what}: {e}"));
    let nodes = node_names(&mut c);
    assert!(!nodes.iter().any(|n| n == "a b" || n == "nopool"), "after {what}: refused node listed: {nodes:?}");
}

/// Deterministic junk (xorshift), with newlines and NULs among it.
fn junk(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Starts a launcher named `name` with the join token `token`; returns what it said once it exited.
fn refused_launcher(cluster: &Cluster, name: &str, token: &str) -> String {
    let file = cluster.dir.path().join(format!("{name}.token"));
    std::fs::write(&file, token).unwrap();
    let stderr = cluster.dir.path().join(format!("{name}.log"));
    let mut child = Command::new(bin("gangway-node"))
        .args(["--head", &cluster.config.url, "--ca"])
        .arg(cluster.config.ca.as_ref().unwrap())
        .arg("--join-token-file")
        .arg(&file)
        .args(["--name", name, "--no-cgroups", "--root"])
        .arg(cluster.dir.path().join(name))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("starting gangway-node");
    let status = wait_for(Duration::from_secs(20), "the refused launcher to exit", || child.try_wait().unwrap());
    let _ = child.kill();
    let said = std::fs::read_to_string(&stderr).unwrap();
    assert!(!status.success(), "a refused launcher exits non-zero; it said:\n{said}");
    said
}

/// Answers one upgrade request on a new TLS connection presenting `id` (None: no certificate).
fn upgrade_answer(cluster: &Cluster, id: Option<&NodeIdentity>) -> String {
    let mut s = timeouts(connect_tls(&cluster.config, id));
    write!(
        s,
        "GET {LAUNCHER_PATH} HTTP/1.1\r\nHost: x\r\nUpgrade: {LAUNCHER_PROTOCOL}\r\nConnection: Upgrade, close\r\n\r\n"
    )
    .unwrap();
    String::from_utf8_lossy(&read_to_close(&mut s)).into_owned()
}

#[test]
fn a_launcher_without_a_valid_join_token_or_certificate_is_refused_and_never_listed() {
    let cluster = headless();
    let mut c = cluster.client();
    let token = |c: &mut Client, p: gangway_api::tokens::JoinTokenAddParameter| {
        c.create_join_token(&p).expect("POST /jointokens").token.expect("the token, once")
    };
    // A stolen token after its use: refused (and one that was never issued).
    let once = token(&mut c, Default::default());
    join_with(&cluster.config, &once, "first").expect("the token's one join");
    let said = refused_launcher(&cluster, "thief", &once);
    assert!(said.contains("join token already used"), "{said}");
    let said = refused_launcher(&cluster, "forger", "gwn_0123456789abcdef_00");
    assert!(said.contains("join token not valid for this cluster"), "{said}");
    // An expired one.
    let p = gangway_api::tokens::JoinTokenAddParameter {
        expires_in: Some(IsoDuration(Duration::from_secs(1))),
        ..Default::default()
    };
    let short = token(&mut c, p);
    std::thread::sleep(Duration::from_millis(1100));
    let said = refused_launcher(&cluster, "late", &short);
    assert!(said.contains("join token expired"), "{said}");
    // One made for another node; and a name that already holds a certificate.
    let p = gangway_api::tokens::JoinTokenAddParameter { node: Some("node3".into()), ..Default::default() };
    let for_node3 = token(&mut c, p);
    let said = refused_launcher(&cluster, "node4", &for_node3);
    assert!(said.contains("is for node node3, not node4"), "{said}");
    let again = token(&mut c, Default::default());
    let err = join_with(&cluster.config, &again, "first").unwrap_err();
    assert_eq!(err.0, 409, "{err:?}");
    assert!(err.1.contains("node first already has a certificate"), "{err:?}");
    // The token for node3 still works for node3, and only once.
    join_with(&cluster.config, &for_node3, "node3").expect("node3's own token");
    assert!(join_with(&cluster.config, &for_node3, "node3").unwrap_err().1.contains("already used"));

    // By hand: no certificate gets 401, never a 101.
    let answer = upgrade_answer(&cluster, None);
    assert!(answer.starts_with("HTTP/1.1 401") && answer.contains("node certificate"), "{answer}");
    // A certificate another CA signed: the TLS handshake fails, nothing is served.
    let rogue = rogue_identity("node1");
    let answer = upgrade_answer(&cluster, Some(&rogue));
    assert!(answer.is_empty(), "{answer}");
    // A certificate used under another name.
    let mut s = Stream::upgrade(&cluster, "n3");
    s.send(&hello("n4", "default"));
    let refusal = s.recv().expect("a refusal");
    assert_eq!(refusal["reason"], "certificate for n3 used by n4", "{refusal}");
    // A removed node's certificate is revoked.
    let mut s = Stream::upgrade(&cluster, "gone");
    s.send(&hello("gone", "default"));
    assert!(matches!(s.recv_msg(), HeadMessage::Welcome(_)));
    let stop = s.keep_alive();
    c.remove_nodes("default", &["gone".into()], None).expect("removenodes");
    let left = loop {
        match s.recv() {
            Some(v) if v["type"] == "leave" => break true,
            Some(_) => continue,
            None => break false,
        }
    };
    stop.store(true, Ordering::Relaxed);
    assert!(left, "the removed node is told to leave");
    wait_for(Duration::from_secs(10), "gone to be forgotten", || {
        (!node_names(&mut c).contains(&"gone".to_string())).then_some(())
    });
    let answer = upgrade_answer(&cluster, Some(&ident(&cluster, "gone")));
    assert!(answer.starts_with("HTTP/1.1 401") && answer.contains("revoked"), "{answer}");

    assert_eq!(node_names(&mut c), Vec::<String>::new(), "no refused launcher is a node");
    let log = cluster.head_log();
    for why in ["no node certificate", "certificate for n3 used by n4", "was revoked"] {
        assert!(
            log.lines().any(|l| l.contains("launcher refused") && l.contains(why)),
            "the head logs {why:?}:\n{log}"
        );
    }
}

/// A node identity signed by a CA of its own (not the cluster's).
fn rogue_identity(name: &str) -> NodeIdentity {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256};
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = CertificateParams::new(Vec::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(vec![name.to_owned()]).unwrap();
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
    NodeIdentity { name: name.into(), cert: cert.pem(), key: key.serialize_pem() }
}

#[test]
fn garbage_on_the_port_does_not_hurt_the_head() {
    let mut cluster = headless();
    let heartbeat = Duration::from_millis(300);

    // Held open while everything else happens: plain TCP that says nothing, an upgrade that
    // says nothing (the hello timeout ends it), and a registered launcher that goes silent
    // (three missed heartbeats end it).
    let silent_tcp = connect_raw(&cluster);
    let silent_upgrade = Stream::upgrade(&cluster, "silent");
    let silent_upgraded_at = Instant::now();
    let mut mute = Stream::upgrade(&cluster, "mute1");
    mute.send(&hello("mute1", "default"));
    assert!(matches!(mute.recv_msg(), HeadMessage::Welcome(_)));
    assert_serving(&mut cluster, "silent connections");

    // Junk where the TLS handshake should be, and inside TLS where HTTP should be.
    for seed in 1..=8u64 {
        let mut s = if seed % 2 == 1 { connect_raw(&cluster) } else { connect(&cluster) };
        // The head may close before reading it all; that is its right.
        let _ = s.write_all(&junk(seed, 64 << 10));
        let answer = read_to_close(&mut s);
        // Raw, a TLS alert record (content type 21) or the plain-HTTP 400; inside TLS, an HTTP 4xx.
        let alert = seed % 2 == 1 && answer.first() == Some(&21);
        let refused = answer.is_empty() || alert || status_line(&answer).starts_with("HTTP/1.1 4");
        assert!(refused, "seed {seed}: {answer:?}");
        assert_serving(&mut cluster, &format!("random bytes (seed {seed})"));
    }

    let bad_http: [&[u8]; 6] = [
        b"BREW /v1/launcher HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"POST /v1/launcher HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        b"GET /v1/launcher HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /v1/launcher\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET /v1/launcher HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    ];
    for req in bad_http {
        let mut s = connect(&cluster);
        s.write_all(req).unwrap();
        let status = status_line(&read_to_close(&mut s));
        assert!(status.starts_with("HTTP/1.1 4"), "{:?} got {status:?}", String::from_utf8_lossy(req));
        assert_serving(&mut cluster, &format!("bad HTTP {:?}", String::from_utf8_lossy(req)));
    }
    // Plain HTTP on the TLS port: told so, and nothing served.
    let mut s = connect_raw(&cluster);
    s.write_all(b"GET /jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let answer = String::from_utf8_lossy(&read_to_close(&mut s)).into_owned();
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("this port speaks TLS"), "{answer}");
    // A node's certificate without the upgrade is told what is missing.
    let mut s = timeouts(connect_tls(&cluster.config, Some(&ident(&cluster, "silent"))));
    write!(s, "GET {LAUNCHER_PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let answer = read_to_close(&mut s);
    assert!(status_line(&answer).starts_with("HTTP/1.1 426"), "{}", String::from_utf8_lossy(&answer));

    // Upgraded, then anything but a hello: closed without a word.
    let not_hello: [&[u8]; 7] = [
        b"hello\n",
        b"{\"type\":\"hello\"\n",
        b"{\"type\":\"hello\",\"name\":5}\n",
        b"{\"type\":\"heartbeat\"}\n",
        b"{\"type\":\"launch_missiles\"}\n",
        b"\xff\xfe\x00\n",
        b"[1,2,3]\n",
    ];
    for line in not_hello {
        let s = Stream::upgrade(&cluster, "nothello");
        s.send_raw(line).unwrap();
        s.expect_closed(Duration::from_secs(5), &format!("first line {:?}", String::from_utf8_lossy(line)));
        assert_serving(&mut cluster, &format!("first line {:?}", String::from_utf8_lossy(line)));
    }
    // A report for an attempt that does not exist, as the first line.
    let s = Stream::upgrade(&cluster, "ghost");
    let ghost = LauncherMessage::TaskFinished(report("nojob", "t", 1, 0));
    s.send(&serde_json::to_value(&ghost).unwrap());
    s.expect_closed(Duration::from_secs(5), "a report before the hello");

    // Hellos the head refuses: it says why, closes, and lists nothing.
    // (The certificate's name is checked first: "a b" and "" cannot have one.)
    let refused = [
        ("ab", "a b", "default", "a b"),
        ("nopool", "nopool", "nosuchpool", "nosuchpool"),
        ("empty", "", "default", ""),
    ];
    for (cert, name, pool, why) in refused {
        let mut s = Stream::upgrade(&cluster, cert);
        s.send(&hello(name, pool));
        let refusal = s.recv().expect("a refusal before the close");
        assert_eq!(refusal["type"], "refused", "{refusal}");
        let reason = refusal["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(why), "the refusal of {name:?}/{pool:?} names the problem: {reason}");
        s.expect_closed(Duration::from_secs(5), &format!("refused hello {name:?}"));
        assert_serving(&mut cluster, &format!("hello {name:?} in pool {pool:?}"));
    }
    let mut c = cluster.client();
    assert_eq!(node_names(&mut c), vec!["mute1".to_string()], "refused hellos register nothing");

    // Registered, then garbage: the head drops that connection only.
    for (i, line) in [&b"not json\n"[..], b"{\"type\":\"files\",\"req\":\"x\"}\n", b"\x00\x01\x02\n"].iter().enumerate()
    {
        let name = format!("garbage{i}");
        let mut s = Stream::upgrade(&cluster, &name);
        s.send(&hello(&name, "default"));
        assert!(matches!(s.recv_msg(), HeadMessage::Welcome(_)));
        s.send_raw(line).unwrap();
        s.expect_closed(Duration::from_secs(5), &format!("{name} sending {:?}", String::from_utf8_lossy(line)));
        assert_serving(&mut cluster, &format!("{name} sending garbage"));
    }
    // A second hello on one connection.
    let mut s = Stream::upgrade(&cluster, "twice");
    s.send(&hello("twice", "default"));
    assert!(matches!(s.recv_msg(), HeadMessage::Welcome(_)));
    s.send(&hello("twice", "default"));
    s.expect_closed(Duration::from_secs(5), "a second hello");

    // A 20 MiB line, before and after the hello: refused after the 8 MiB limit, not buffered whole.
    for after_hello in [false, true] {
        let mut s = Stream::upgrade(&cluster, "huge");
        if after_hello {
            s.send(&hello("huge", "default"));
            assert!(matches!(s.recv_msg(), HeadMessage::Welcome(_)));
        }
        let mut line = vec![b'x'; 20 << 20];
        line[0] = b'"';
        *line.last_mut().unwrap() = b'\n';
        // The head stops reading at its limit and closes: the write fails part-way.
        let wrote = s.send_raw(&line);
        s.expect_closed(
            Duration::from_secs(10),
            &format!("a 20 MiB line (after hello: {after_hello}, write: {wrote:?})"),
        );
        assert_serving(&mut cluster, &format!("a 20 MiB line (after hello: {after_hello})"));
    }
    let rss = vm_rss_kib(cluster.head.as_ref().unwrap().id());
    assert!(rss < 256 << 10, "the head's RSS is {rss} KiB after the huge lines");

    // The registered launcher that went silent is dropped after three missed heartbeats…
    mute.expect_closed(heartbeat * 3 + Duration::from_secs(5), "a launcher that stopped heartbeating");
    // …and an upgrade that never says hello after the hello timeout (10 s).
    let left = Duration::from_secs(15).saturating_sub(silent_upgraded_at.elapsed()).max(Duration::from_secs(1));
    silent_upgrade.expect_closed(left, "an upgraded connection that never says hello");
    assert_serving(&mut cluster, "silent connections timing out");
    drop(silent_tcp);

    // A real launcher still registers and runs a task.
    cluster.nodes.push(None);
    cluster.start_node(0);
    cluster.wait_idle(1);
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "after".into(), ..Default::default() }).unwrap();
    c.add_task("after", &TaskAddParameter { id: "t".into(), command_line: "/bin/true".into(), ..Default::default() })
        .unwrap();
    let t = wait_for(Duration::from_secs(30), "the task after the garbage", || {
        let t = c.get_task("after", "t").ok()?;
        (t.state == TaskState::Completed).then_some(t)
    });
    assert_eq!(t.execution_info.exit_code, Some(0), "{t:?}");
    assert_eq!(t.node_info.map(|n| n.node_id).as_deref(), Some("node1"));
    assert_serving(&mut cluster, "everything");
}

fn report(job: &str, task: &str, attempt: u32, exit_code: i32) -> TaskFinished {
    TaskFinished {
        id: AttemptId { job: job.into(), task: task.into(), attempt },
        exit_code: Some(exit_code),
        failure: None,
        start_time: Some(Timestamp::now()),
        end_time: Timestamp::now(),
        max_rss_bytes: None,
        instance: None,
    }
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS value")
}

#[test]
fn a_report_sent_twice_is_acknowledged_twice_and_applied_once() {
    let cluster = headless();
    let mut s = Stream::upgrade(&cluster, "fake1");
    s.send(&hello("fake1", "default"));
    let HeadMessage::Welcome(welcome) = s.recv_msg() else { panic!("no welcome") };
    assert_eq!(welcome.heartbeat_ms, 300);
    assert!(welcome.kill.is_empty());
    let stop = s.keep_alive();
    let mut c = cluster.client();
    wait_for(Duration::from_secs(10), "fake1 to be idle", || {
        (c.get_node("fake1").ok()?.state == NodeState::Idle).then_some(())
    });

    c.add_job(&JobAddParameter { id: "j".into(), ..Default::default() }).unwrap();
    c.add_task("j", &TaskAddParameter { id: "t".into(), command_line: "/bin/true".into(), ..Default::default() })
        .unwrap();
    let HeadMessage::StartTask(start) = s.recv_msg() else { panic!("expected start_task") };
    assert_eq!((start.id.job.as_str(), start.id.task.as_str()), ("j", "t"));
    assert_eq!((start.command_line.as_str(), start.pool.as_str(), start.slots), ("/bin/true", "default", 1));
    let t = c.get_task("j", "t").unwrap();
    assert_eq!(t.state, TaskState::Running);
    assert_eq!(t.node_info.as_ref().map(|n| n.node_id.as_str()), Some("fake1"));

    let first = report("j", "t", start.id.attempt, 5);
    s.send(&serde_json::to_value(LauncherMessage::TaskFinished(first.clone())).unwrap());
    let HeadMessage::Ack { id } = s.recv_msg() else { panic!("expected an ack") };
    assert_eq!(id, start.id);
    let done = c.get_task("j", "t").unwrap();
    assert_eq!(done.state, TaskState::Completed);
    assert_eq!(done.execution_info.exit_code, Some(5));
    assert_eq!(done.execution_info.retry_count, 0);
    assert_eq!(done.execution_info.end_time, Some(first.end_time));
    assert_eq!(done.execution_info.failure_info.as_ref().map(|f| f.code.as_str()), Some("FailureExitCode"));

    // The same report again (as after a reconnect), later and with other figures.
    std::thread::sleep(Duration::from_millis(20));
    let mut second = report("j", "t", start.id.attempt, 5);
    second.max_rss_bytes = Some(1 << 20);
    s.send(&serde_json::to_value(LauncherMessage::TaskFinished(second)).unwrap());
    let HeadMessage::Ack { id } = s.recv_msg() else { panic!("expected a second ack") };
    assert_eq!(id, start.id);
    // And one for an attempt that never was, and one for a job that does not exist.
    for ghost in [report("j", "t", start.id.attempt + 7, 0), report("nojob", "t", 1, 0)] {
        s.send(&serde_json::to_value(LauncherMessage::TaskFinished(ghost.clone())).unwrap());
        let HeadMessage::Ack { id } = s.recv_msg() else { panic!("expected an ack for {ghost:?}") };
        assert_eq!(id, ghost.id);
    }
    let again = c.get_task("j", "t").unwrap();
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        serde_json::to_value(&done).unwrap(),
        "a repeated report changes nothing"
    );
    let counts = c.task_counts("j").unwrap().task_counts;
    assert_eq!((counts.completed, counts.failed, counts.succeeded), (1, 1, 0));
    let node = c.get_node("fake1").unwrap();
    assert_eq!((node.total_tasks_run, node.total_tasks_succeeded), (1, 0), "{node:?}");
    assert_eq!(node.state, NodeState::Idle);

    // Nothing else comes but heartbeats: no retry, no second start.
    s.rd.get_ref().set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_millis(500) {
        let mut line = Vec::new();
        match s.rd.read_until(b'\n', &mut line) {
            Ok(_) if line == HEAD_HEARTBEAT => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            other => panic!("unexpected from the head: {other:?} {:?}", String::from_utf8_lossy(&line)),
        }
    }
    stop.store(true, Ordering::Relaxed);
}

/// Reads messages until one of type `kind` (others skipped).
fn recv_type(s: &mut Stream, kind: &str) -> Value {
    loop {
        let v = s.recv().unwrap_or_else(|| panic!("the head closed the stream before a {kind}"));
        if v["type"] == kind {
            return v;
        }
    }
}

#[test]
fn a_node_cannot_answer_for_another_nodes_files() {
    let cluster = headless();
    let mut c = cluster.client();
    let mut holder = Stream::upgrade(&cluster, "holder");
    holder.send(&hello("holder", "default"));
    assert!(matches!(holder.recv_msg(), HeadMessage::Welcome(_)));
    let stop_holder = holder.keep_alive();
    c.add_job(&JobAddParameter { id: "fj".into(), ..Default::default() }).unwrap();
    c.add_task("fj", &TaskAddParameter { id: "t".into(), command_line: "/bin/true".into(), ..Default::default() })
        .unwrap();
    recv_type(&mut holder, "start_task");
    // Another node joins after the task was placed on the holder.
    let mut rogue = Stream::upgrade(&cluster, "rogue");
    rogue.send(&hello("rogue", "default"));
    assert!(matches!(rogue.recv_msg(), HeadMessage::Welcome(_)));
    let stop_rogue = rogue.keep_alive();

    let mut reader = cluster.client();
    let asked = std::thread::spawn(move || reader.get_task_file("fj", "t", "stdout.txt", 0));
    let req = recv_type(&mut holder, "read_files")["req"].as_u64().expect("req");
    let answer = |text: &[u8]| {
        let data = gangway_api::messages::base64_encode(text);
        let result = gangway_api::messages::FilesResult::Data { data, size: text.len() as u64 };
        serde_json::to_value(LauncherMessage::Files { req, result }).unwrap()
    };
    // The rogue answers first, for the holder: ignored.
    rogue.send(&answer(b"forged"));
    wait_for(Duration::from_secs(10), "the head to log the forged answer", || {
        cluster.head_log().contains("a node answered a file request sent to another node").then_some(())
    });
    holder.send(&answer(b"real"));
    let got = asked.join().unwrap().expect("the file");
    assert_eq!(got, b"real", "only the node asked answers");
    stop_holder.store(true, Ordering::Relaxed);
    stop_rogue.store(true, Ordering::Relaxed);
}
