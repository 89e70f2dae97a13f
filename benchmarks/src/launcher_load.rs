//! Launcher load on the head: starts a real `gangway head`, measures its CPU and memory while
//! idle, joins N simulated nodes (each gets its certificate, as a real launcher's first start
//! does), then opens their N launcher streams over TLS at once, `--concurrency` handshakes at
//! a time (a reconnect storm: every node reconnecting after a head restart), and measures
//! again over a steady window (node `simN` in pool `default`, each heartbeating at the
//! head's interval). With
//! `--tasks M` it then submits M tasks that the simulated launchers finish at once (exit 0),
//! so the figure is tasks/s through the head alone: no processes, no task directories.
//!
//! `cargo build --release --bins && target/release/gangway-launcher-load [--launchers 1000]
//! [--duration 30] [--tasks 0] [--heartbeat 2s] [--concurrency 100] [--head-nofile SOFT]`
//!
//! Each stream costs one descriptor here and one in the head. This program raises its soft
//! `RLIMIT_NOFILE` to the hard limit, and the head inherits it; if the hard limit is below
//! N + 64, raise it first (`ulimit -Hn`, or `LimitNOFILE=` in a unit file). `--head-nofile 1024`
//! starts the head with the common default soft limit instead, to see what it does when it
//! runs out.
//!
//! CPU is utime+stime from `/proc/PID/stat` over the window, as % of one core; memory is
//! `VmRSS` at the end of the window and `VmHWM` (peak) from `/proc/PID/status`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gangway_api::client::{Client, ClientConfig};
use gangway_api::messages::{AttemptId, Hello, LauncherMessage, TaskFinished, LAUNCHER_PATH, LAUNCHER_PROTOCOL};
use gangway_api::*;
use gangway_topology::NodeResources;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

struct Args {
    launchers: usize,
    duration: Duration,
    tasks: usize,
    heartbeat: String,
    concurrency: usize,
    head_nofile: Option<u64>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        launchers: 1000,
        duration: Duration::from_secs(30),
        tasks: 0,
        heartbeat: "2s".into(),
        concurrency: 100,
        head_nofile: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--launchers" | "-n" => a.launchers = value()?.parse()?,
            "--duration" | "-d" => a.duration = Duration::from_secs_f64(value()?.parse()?),
            "--tasks" => a.tasks = value()?.parse()?,
            "--heartbeat" => a.heartbeat = value()?,
            "--concurrency" => a.concurrency = value()?.parse::<usize>()?.max(1),
            "--head-nofile" => a.head_nofile = Some(value()?.parse()?),
            other => bail!("unknown option {other}; see the source's header for usage"),
        }
    }
    Ok(a)
}

/// The head process and its temporary directory; both go away on drop, also on errors.
struct HeadGuard {
    child: Child,
    dir: PathBuf,
}

impl HeadGuard {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for HeadGuard {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_head(heartbeat: &str, nofile: Option<u64>) -> anyhow::Result<(HeadGuard, ClientConfig)> {
    let gangway = std::env::current_exe()?.with_file_name("gangway");
    if !gangway.exists() {
        bail!("{} is missing: run `cargo build --release --bins` first", gangway.display());
    }
    let dir = std::env::temp_dir().join(format!("gangway-launcher-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log = std::fs::File::create(dir.join("head.log")).context("creating head.log")?;
    let state = dir.join("state");
    let mut cmd = Command::new(&gangway);
    cmd.arg("--state-dir")
        .arg(&state)
        .args(["head", "--listen", "127.0.0.1:0", "--heartbeat", heartbeat, "--node-timeout", "5m"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // The head must not outlive this program, even if it is killed; `--head-nofile` gives it
    // a lower soft descriptor limit, as a shell or unit file with defaults would.
    // SAFETY: prctl and setrlimit are async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if let Some(soft) = nofile {
                let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
                lim.rlim_cur = soft.min(lim.rlim_max);
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| format!("starting {}", gangway.display()))?;
    let mut guard = HeadGuard { child, dir };
    let deadline = Instant::now() + Duration::from_secs(30);
    let config = loop {
        if let Ok(c) = ClientConfig::from_state_dir(&state) {
            break c;
        }
        if let Some(status) = guard.child.try_wait()? {
            bail!("the head exited ({status}); see {}", guard.dir.join("head.log").display());
        }
        if Instant::now() > deadline {
            bail!("the head did not write client.json within 30 s");
        }
        pause(Duration::from_millis(20))?;
    };
    Ok((guard, config))
}

/// Raises the soft descriptor limit to the hard one; returns (soft before, hard).
fn raise_nofile() -> (u64, u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let before = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        (before, lim.rlim_max)
    }
}

/// The head's `Max open files` (soft, hard) from `/proc/PID/limits`.
fn nofile_of(pid: u32) -> Option<(String, String)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut f = line["Max open files".len()..].split_whitespace();
    Some((f.next()?.to_owned(), f.next()?.to_owned()))
}

/// utime+stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/PID/stat")?;
    // Fields after the command name, which may contain spaces: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').context("malformed /proc/PID/stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks as f64 / hz)
}

/// (VmRSS, VmHWM, threads) of `pid`, memory in KiB.
fn memory_of(pid: u32) -> anyhow::Result<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/PID/status")?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status.lines().find(|l| l.starts_with(name)).with_context(|| format!("{name} missing"))?;
        Ok(line[name.len()..].split_whitespace().next().context("empty field")?.parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?, field("Threads:")?))
}

/// Set by SIGINT/SIGTERM.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Sleeps, unless interrupted.
fn pause(d: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + d;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        if INTERRUPTED.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
    Ok(())
}

/// What the head cost over one window.
struct Sample {
    label: String,
    secs: f64,
    cpu_pct: f64,
    rss_kib: u64,
    hwm_kib: u64,
    threads: u64,
}

fn measure(pid: u32, label: String, window: Duration) -> anyhow::Result<Sample> {
    let (c0, t0) = (cpu_seconds(pid)?, Instant::now());
    pause(window)?;
    let (c1, secs) = (cpu_seconds(pid)?, t0.elapsed().as_secs_f64());
    let (rss_kib, hwm_kib, threads) = memory_of(pid)?;
    Ok(Sample { label, secs, cpu_pct: 100.0 * (c1 - c0) / secs, rss_kib, hwm_kib, threads })
}

/// Counters shared by every simulated launcher.
#[derive(Default)]
struct Counters {
    registered: AtomicU64,
    heartbeats: AtomicU64,
    starts: AtomicU64,
    acks: AtomicU64,
    dropped: AtomicU64,
    stopping: AtomicBool,
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;
type Reader = BufReader<tokio::io::ReadHalf<Tls>>;
type Writer = tokio::io::WriteHalf<Tls>;

/// The joined nodes' TLS settings (each presents its own certificate).
type Identities = Arc<Vec<Arc<rustls::ClientConfig>>>;

/// How long a connection may take to be welcomed (a head out of descriptors never answers).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// Connect, TLS with the node's certificate, upgrade, hello; returns the stream and the
/// heartbeat interval from the welcome.
async fn handshake(
    addr: &str,
    tls: Arc<rustls::ClientConfig>,
    name: &str,
) -> anyhow::Result<(Reader, Writer, Duration)> {
    let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let server = gangway_api::tls::server_name("127.0.0.1").map_err(anyhow::Error::msg)?;
    let stream = tokio_rustls::TlsConnector::from(tls).connect(server, stream).await.context("TLS")?;
    let (rd, mut wr) = tokio::io::split(stream);
    let mut rd = BufReader::new(rd);
    let req = format!(
        "GET {LAUNCHER_PATH} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: {LAUNCHER_PROTOCOL}\r\nConnection: Upgrade\r\n\r\n"
    );
    wr.write_all(req.as_bytes()).await?;
    wr.flush().await?;
    let mut line = String::new();
    rd.read_line(&mut line).await?;
    if !line.starts_with("HTTP/1.1 101") {
        bail!("upgrade answered {:?}", line.trim());
    }
    while line != "\r\n" {
        line.clear();
        if rd.read_line(&mut line).await? == 0 {
            bail!("closed during the upgrade");
        }
    }
    let hello = Hello {
        name: name.to_owned(),
        address: "127.0.0.1".into(),
        pool: "default".into(),
        resources: NodeResources { cpus: 4, cores: 4, memory_bytes: 8 << 30, ..Default::default() },
        root_dir: format!("/nonexistent/{name}"),
        running: Vec::new(),
        finished: Vec::new(),
        boot_id: format!("{name}-{}", std::process::id()),
        topology: None,
    };
    let mut out = serde_json::to_vec(&LauncherMessage::Hello(Box::new(hello)))?;
    out.push(b'\n');
    wr.write_all(&out).await?;
    wr.flush().await?;
    let mut buf = Vec::new();
    rd.read_until(b'\n', &mut buf).await?;
    let welcome: serde_json::Value = serde_json::from_slice(&buf).context("reading the welcome")?;
    if welcome["type"] != "welcome" {
        bail!("expected a welcome, got {}", String::from_utf8_lossy(&buf).trim());
    }
    let every = Duration::from_millis(welcome["heartbeat_ms"].as_u64().context("heartbeat_ms")?.max(50));
    Ok((rd, wr, every))
}

/// One simulated launcher: the handshake, then heartbeats, and every `start_task` answered
/// at once with exit code 0. Returns when the head closes the stream.
async fn simulate(
    addr: String,
    tls: Arc<rustls::ClientConfig>,
    name: String,
    n: Arc<Counters>,
    permit: tokio::sync::OwnedSemaphorePermit,
    phase: f64,
) -> anyhow::Result<()> {
    let (mut rd, mut wr, every) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&addr, tls, &name))
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("not welcomed within {HANDSHAKE_TIMEOUT:?}")))?;
    n.registered.fetch_add(1, Ordering::Relaxed);
    drop(permit);
    let mut buf = Vec::new();

    let (tx, mut rx) = mpsc::unbounded_channel::<TaskFinished>();
    let counters = n.clone();
    let writer = tokio::spawn(async move {
        // Phases spread over the interval, as launchers started at different times would be
        // (all registering within milliseconds would otherwise heartbeat in lockstep).
        let first = tokio::time::Instant::now() + every.mul_f64(phase);
        let mut tick = tokio::time::interval_at(first, every);
        let mut out = Vec::new();
        loop {
            out.clear();
            tokio::select! {
                _ = tick.tick() => {
                    serde_json::to_writer(&mut out, &LauncherMessage::Heartbeat).expect("serialize");
                    counters.heartbeats.fetch_add(1, Ordering::Relaxed);
                }
                f = rx.recv() => match f {
                    Some(f) => serde_json::to_writer(&mut out, &LauncherMessage::TaskFinished(f)).expect("serialize"),
                    None => return,
                },
            }
            out.push(b'\n');
            if wr.write_all(&out).await.is_err() {
                return;
            }
        }
    });
    // Read as JSON values: message kinds this program does not know are skipped, not fatal.
    loop {
        buf.clear();
        if rd.read_until(b'\n', &mut buf).await? == 0 {
            break;
        }
        let msg: serde_json::Value = serde_json::from_slice(&buf)?;
        match msg["type"].as_str() {
            Some("start_task") => {
                n.starts.fetch_add(1, Ordering::Relaxed);
                let id: AttemptId = serde_json::from_value(msg["id"].clone())?;
                let _ = tx.send(TaskFinished::exited_now(id, 0));
            }
            Some("ack") => {
                n.acks.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
    writer.abort();
    Ok(())
}

fn wait_nodes_idle(c: &mut Client, want: usize, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let idle = c.list_nodes(Some("default"))?.iter().filter(|x| x.state == NodeState::Idle).count();
        if idle >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {idle} of {want} nodes idle after {timeout:?}");
        }
        pause(Duration::from_millis(100))?;
    }
}

fn run_tasks(c: &mut Client, pid: u32, tasks: usize, n: &Counters) -> anyhow::Result<()> {
    c.add_job(&JobAddParameter { id: "load".into(), ..Default::default() })?;
    let (cpu0, t0) = (cpu_seconds(pid)?, Instant::now());
    let (starts0, acks0) = (n.starts.load(Ordering::Relaxed), n.acks.load(Ordering::Relaxed));
    for chunk in (0..tasks).collect::<Vec<_>>().chunks(100) {
        let batch = chunk
            .iter()
            .map(|i| TaskAddParameter {
                id: format!("t{i:07}"),
                command_line: "/bin/true".into(),
                ..Default::default()
            })
            .collect();
        let r = c.add_task_collection("load", batch)?;
        if let Some(bad) = r.value.iter().find(|x| x.status != "success") {
            bail!("task submission failed: {bad:?}");
        }
    }
    let submitted = t0.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(600);
    let counts = loop {
        let counts = c.task_counts("load")?.task_counts;
        if counts.completed >= tasks as u64 {
            break counts;
        }
        if Instant::now() > deadline {
            bail!("only {} of {tasks} tasks completed after 10 minutes", counts.completed);
        }
        pause(Duration::from_millis(5))?;
    };
    let secs = t0.elapsed().as_secs_f64();
    let cpu = 100.0 * (cpu_seconds(pid)? - cpu0) / secs;
    let (rss, hwm, _) = memory_of(pid)?;
    println!(
        "tasks: {tasks} submitted in {submitted:.2} s, all completed in {secs:.2} s: {:.0} tasks/s \
         (succeeded {}, failed {}; {} starts, {} acks); head CPU {cpu:.1} % of one core, VmRSS {}, VmHWM {}",
        tasks as f64 / secs,
        counts.succeeded,
        counts.failed,
        n.starts.load(Ordering::Relaxed) - starts0,
        n.acks.load(Ordering::Relaxed) - acks0,
        mib(rss),
        mib(hwm)
    );
    Ok(())
}

/// Joins `n` nodes (`sim1`…) with one join token: each gets its certificate, as a real
/// launcher's first start does. Not part of the storm: a reconnecting node has its certificate.
fn join_all(c: &mut Client, config: &ClientConfig, n: usize) -> anyhow::Result<Identities> {
    let t = Instant::now();
    let p = gangway_api::tokens::JoinTokenAddParameter { uses: Some(n.max(1) as u32), ..Default::default() };
    let token = c.create_join_token(&p)?.token.context("the head sent no join token")?;
    let ca_file = config.ca.as_ref().context("client.json names no CA")?;
    let ca = std::fs::read(ca_file).with_context(|| format!("reading {}", ca_file.display()))?;
    let mut http = gangway_api::http::HttpClient::new(&config.url)?
        .with_tls(gangway_api::tls::client_config(&ca, None).map_err(anyhow::Error::msg)?);
    let mut out = Vec::with_capacity(n);
    for i in 1..=n {
        let (cert, key) = gangway_launcher::join::request_certificate(&mut http, &token, &format!("sim{i}"))
            .map_err(|e| anyhow::anyhow!("joining sim{i}: {e:?}"))?;
        let tls = gangway_api::tls::client_config(&ca, Some((cert.as_bytes(), key.as_bytes())));
        out.push(tls.map_err(anyhow::Error::msg)?);
    }
    println!("joined {n} nodes in {:.2} s (one certificate each)", t.elapsed().as_secs_f64());
    Ok(Arc::new(out))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn run(args: &Args, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let (soft_before, hard) = raise_nofile();
    let need = args.launchers as u64 + 64;
    if hard < need {
        bail!("RLIMIT_NOFILE hard limit is {hard}, {need} descriptors are needed: raise it (ulimit -Hn) or use fewer --launchers");
    }
    let (head, config) = start_head(&args.heartbeat, args.head_nofile)?;
    let pid = head.pid();
    let addr = config.url.trim_start_matches("https://").to_owned();
    let mut c = Client::new(&config)?;
    let identities = join_all(&mut c, &config, args.launchers)?;
    let (head_soft, head_hard) = nofile_of(pid).unwrap_or_default();
    println!(
        "head pid {pid} at {addr}; heartbeat {}; Max open files soft {head_soft} hard {head_hard} \
         (this program raised its own soft limit from {soft_before} to {hard}; the head inherits it \
         unless --head-nofile is given)",
        args.heartbeat
    );
    if head_soft.parse::<u64>().is_ok_and(|s| s < need) {
        println!("warning: the head's soft limit {head_soft} is below the {need} descriptors this run needs");
    }
    if soft_before < need {
        println!(
            "note: a head started from this shell without the raise would have {soft_before} descriptors, \
             too few for {} launchers",
            args.launchers
        );
    }

    let mut samples = vec![measure(pid, "0 launchers".into(), args.duration)?];

    let counters = Arc::new(Counters::default());
    let t0 = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    let mut handles = Vec::with_capacity(args.launchers);
    for i in 1..=args.launchers {
        let (addr, tls, n, gate) = (addr.clone(), identities[i - 1].clone(), counters.clone(), gate.clone());
        let phase = (i - 1) as f64 / args.launchers as f64;
        handles.push(rt.spawn(async move {
            // Only the handshakes are bounded: a welcomed stream gives its permit back.
            let permit = gate.acquire_owned().await.expect("semaphore open");
            let r = simulate(addr, tls, format!("sim{i}"), n.clone(), permit, phase).await;
            if !n.stopping.load(Ordering::Relaxed) {
                n.dropped.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = r {
                    eprintln!("sim{i}: {e:#}");
                }
            }
        }));
    }
    while (counters.registered.load(Ordering::Relaxed) as usize) < args.launchers {
        if counters.dropped.load(Ordering::Relaxed) > 0 {
            let open = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
            bail!(
                "{} of {} launchers registered, then one failed (see above); the head has {open} descriptors open, \
                 its soft limit is {}",
                counters.registered.load(Ordering::Relaxed),
                args.launchers,
                nofile_of(pid).unwrap_or_default().0
            );
        }
        pause(Duration::from_millis(5))?;
    }
    let reg_secs = t0.elapsed().as_secs_f64();
    wait_nodes_idle(&mut c, args.launchers, Duration::from_secs(60))?;
    println!(
        "registration (TLS with node certificates): {} launchers welcomed in {reg_secs:.2} s ({:.0}/s, {} handshakes at a time)",
        args.launchers,
        args.launchers as f64 / reg_secs,
        args.concurrency
    );
    // Let the heartbeat phases spread and the registration work drain before measuring.
    pause(Duration::from_secs(3))?;
    let hb0 = counters.heartbeats.load(Ordering::Relaxed);
    samples.push(measure(pid, format!("{} launchers", args.launchers), args.duration)?);
    let hb = counters.heartbeats.load(Ordering::Relaxed) - hb0;
    let idle = c.list_nodes(Some("default"))?.iter().filter(|x| x.state == NodeState::Idle).count();

    println!("{:<16} {:>8} {:>10} {:>12} {:>12} {:>8}", "phase", "window", "CPU", "VmRSS", "VmHWM", "threads");
    for s in &samples {
        println!(
            "{:<16} {:>6.1} s {:>8.2} % {:>12} {:>12} {:>8}",
            s.label,
            s.secs,
            s.cpu_pct,
            mib(s.rss_kib),
            mib(s.hwm_kib),
            s.threads
        );
    }
    let (base, loaded) = (&samples[0], &samples[1]);
    println!(
        "per launcher: {:.1} KiB RSS; {:.0} heartbeats/s over the window; {idle} of {} nodes idle at its end; {} streams dropped",
        (loaded.rss_kib as f64 - base.rss_kib as f64) / args.launchers as f64,
        hb as f64 / loaded.secs,
        args.launchers,
        counters.dropped.load(Ordering::Relaxed)
    );
    if args.tasks > 0 {
        run_tasks(&mut c, pid, args.tasks, &counters)?;
    }
    let dropped = counters.dropped.load(Ordering::Relaxed);
    counters.stopping.store(true, Ordering::Relaxed);
    for h in handles {
        h.abort();
    }
    drop(head);
    if dropped > 0 {
        bail!("{dropped} simulated launchers lost their stream during the run");
    }
    Ok(())
}

/// `--help`: this file's header.
const USAGE: &str = r#"Launcher load on the head: starts a real `gangway head`, measures its CPU and memory while
idle, joins N simulated nodes (each gets its certificate, as a real launcher's first start
does), then opens their N launcher streams over TLS at once, `--concurrency` handshakes at
a time (a reconnect storm: every node reconnecting after a head restart), and measures
again over a steady window (node `simN` in pool `default`, each heartbeating at the
head's interval). With
`--tasks M` it then submits M tasks that the simulated launchers finish at once (exit 0),
so the figure is tasks/s through the head alone: no processes, no task directories.

`cargo build --release --bins && target/release/gangway-launcher-load [--launchers 1000]
[--duration 30] [--tasks 0] [--heartbeat 2s] [--concurrency 100] [--head-nofile SOFT]`

Each stream costs one descriptor here and one in the head. This program raises its soft
`RLIMIT_NOFILE` to the hard limit, and the head inherits it; if the hard limit is below
N + 64, raise it first (`ulimit -Hn`, or `LimitNOFILE=` in a unit file). `--head-nofile 1024`
starts the head with the common default soft limit instead, to see what it does when it
runs out.

CPU is utime+stime from `/proc/PID/stat` over the window, as % of one core; memory is
`VmRSS` at the end of the window and `VmHWM` (peak) from `/proc/PID/status`."#;

fn main() -> anyhow::Result<()> {
    if gangway_benchmarks::wants_help(USAGE) {
        return Ok(());
    }
    let args = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    // Ctrl-C and SIGTERM end the run through the waits below, so the guards clean up.
    rt.spawn(async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        INTERRUPTED.store(true, Ordering::Relaxed);
    });
    let r = run(&args, &rt);
    rt.shutdown_timeout(Duration::from_secs(1));
    r
}
