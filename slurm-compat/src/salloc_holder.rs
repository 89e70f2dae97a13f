//! `gangway-slurm salloc-holder`: the batch script of a salloc allocation ([`crate::salloc`]).
//!
//! It runs on the allocation's first node with the job's environment, listens on a TCP port
//! of every address of that node, and writes the port and the job's `SLURM_*` variables to
//! `.gangway-salloc-N.json` in the job's working directory. Then it serves:
//! - `Srun`: runs `srun ARGS…` here — inside the allocation, where srun starts its step over
//!   the job's nodes — with the caller's environment under the job's own variables, and
//!   streams its output back, then its exit code; the caller's input and signals go to it.
//! - `Release`: salloc's command ended: the holder exits with its code, which ends the job.
//!
//! Every request must carry the allocation's key, which the holder makes and writes in that
//! file (its user's alone); salloc exports it to its command as `GANGWAY_SALLOC_KEY`. No key
//! travels through the head or stays in the job's stored environment.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use gangway_api::slurm_step::{AllocReady, AllocReply, AllocRequest};

use crate::salloc::send;

/// Runs the holder; returns when salloc releases the allocation.
pub fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(msg) => {
            gangway_api::errln!("salloc-holder: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Whether a variable of the holder's environment is the job's, and wins over the caller's.
fn job_variable(k: &str) -> bool {
    (k.starts_with("SLURM") || k.starts_with("AZ_BATCH_") || k.starts_with("GANGWAY_"))
        && !k.starts_with("GANGWAY_SALLOC")
        && k != crate::terminal::SIZE_ENV
}

fn run() -> Result<i32, String> {
    let key = crate::step_plan::new_key()?;
    let job: u64 = std::env::var("SLURM_JOB_ID").ok().and_then(|j| j.parse().ok()).ok_or("SLURM_JOB_ID is not set")?;
    let listener = TcpListener::bind(("0.0.0.0", 0)).map_err(|e| format!("listening: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("SLURM")).collect();
    let dir = std::env::current_dir().map_err(|e| format!("getcwd: {e}"))?;
    let file = crate::salloc::ready_file(&dir, job);
    let tmp = file.with_extension("tmp");
    let text = serde_json::to_string(&AllocReady { port, key: key.clone(), env }).map_err(|e| e.to_string())?;
    {
        use std::os::unix::fs::OpenOptionsExt;
        // A fresh file of our own: never one (or a link) that someone left there.
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        f.write_all(text.as_bytes()).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    }
    std::fs::rename(&tmp, &file).map_err(|e| format!("writing {}: {e}", file.display()))?;
    let own: Vec<(String, String)> = std::env::vars().filter(|(k, _)| job_variable(k)).collect();
    // Each connection is read on a thread of its own, its first line within a few seconds,
    // so a stray or stalled client holds up nobody; a release ends the process from there.
    for stream in listener.incoming().map_while(Result::ok) {
        let (key, own, file) = (key.clone(), own.clone(), file.clone());
        std::thread::spawn(move || {
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
            let Ok(clone) = stream.try_clone() else { return };
            let mut lines = BufReader::new(clone);
            let mut first = String::new();
            if lines.read_line(&mut first).is_err() {
                return;
            }
            let _ = stream.set_read_timeout(None);
            match serde_json::from_str::<AllocRequest>(&first) {
                Ok(AllocRequest::Release { key: k, code }) if k == key => {
                    let _ = std::fs::remove_file(&file);
                    std::process::exit(code.clamp(0, 255));
                }
                Ok(AllocRequest::Srun { key: k, args, env, cwd }) if k == key => {
                    serve_srun(stream, lines, &args, env, &cwd, &own);
                }
                _ => {}
            }
        });
    }
    Err("the listener stopped".into())
}

/// Runs one forwarded srun and relays it both ways until it exits.
fn serve_srun(
    mut stream: TcpStream,
    lines: BufReader<TcpStream>,
    args: &[String],
    env: Vec<(String, String)>,
    cwd: &str,
    own: &[(String, String)],
) {
    let me = std::env::current_exe().unwrap_or_else(|_| "gangway-slurm".into());
    let mut cmd = Command::new(me);
    cmd.arg("srun").args(args).env_clear();
    cmd.envs(env.into_iter().filter(|(k, _)| !job_variable(k)));
    cmd.envs(own.iter().map(|(k, v)| (k, v)));
    if std::path::Path::new(cwd).is_dir() {
        cmd.current_dir(cwd);
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let data = format!("srun: error: starting srun in the allocation: {e}\n").into_bytes().into();
            let _ = send(&mut stream, &AllocReply::Output { stderr: true, data });
            let _ = send(&mut stream, &AllocReply::Exited { code: 1 });
            return;
        }
    };
    let pid = child.id() as i32;
    let mut stdin = child.stdin.take();
    // Set once the srun is reaped: its pid must not be signalled after that.
    let reaped = Arc::new(AtomicBool::new(false));
    let done = reaped.clone();
    let signal = move |sig: i32| {
        if !done.load(Ordering::SeqCst) {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(pid, sig) };
        }
    };
    std::thread::spawn(move || {
        for line in lines.lines().map_while(Result::ok) {
            match serde_json::from_str::<AllocRequest>(&line) {
                Ok(AllocRequest::Input { data }) => {
                    if let Some(w) = stdin.as_mut() {
                        if w.write_all(&data.into_bytes()).is_err() {
                            stdin = None;
                        }
                    }
                }
                Ok(AllocRequest::InputEnd) => stdin = None,
                Ok(AllocRequest::Signal { signal: sig }) => signal(sig),
                _ => {}
            }
        }
        // The caller went away: nobody sees this srun's output any more.
        signal(libc::SIGTERM);
        std::thread::sleep(std::time::Duration::from_secs(2));
        signal(libc::SIGKILL);
    });
    // Both relays write whole lines to the one connection, one at a time.
    let out = Arc::new(Mutex::new(stream));
    let streams: [(bool, Option<Box<dyn Read + Send>>); 2] = [
        (false, child.stdout.take().map(|o| Box::new(o) as Box<dyn Read + Send>)),
        (true, child.stderr.take().map(|e| Box::new(e) as Box<dyn Read + Send>)),
    ];
    let relays: Vec<_> = streams
        .into_iter()
        .filter_map(|(stderr, from)| from.map(|f| (stderr, f)))
        .map(|(stderr, mut from)| {
            let out = out.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let data = buf[..n].to_vec().into();
                    let _ = send(&mut *out.lock().expect("lock"), &AllocReply::Output { stderr, data });
                }
            })
        })
        .collect();
    let status = child.wait();
    reaped.store(true, Ordering::SeqCst);
    for r in relays {
        let _ = r.join();
    }
    let code = status.ok().and_then(|s| s.code()).unwrap_or(1);
    let _ = send(&mut *out.lock().expect("lock"), &AllocReply::Exited { code });
}
