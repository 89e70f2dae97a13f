//! The loop of an `srun` step's hub ([`crate::step_hub`] starts it): the parts' hellos,
//! output (labelled, to srun's output or the files srun writes itself), PMI fences, exits and
//! failures, srun's input and signals; and how the step ends — `Kill` on a part failure or
//! `PMI_Abort`, SIGTERM then SIGKILL for `-K` and a second Ctrl-C, Slurm's exit report lines
//! and exit code.

// `0-2,5` for ranks 0, 1, 2 and 5.
use gangway_topology::ids::compress_ids as ranges;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gangway_api::slurm_step::{PartMessage, SrunMessage, StepStart};

use crate::step_hub::{read_input, Event};

/// How long a node part may take to connect back.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long tasks get between SIGTERM and SIGKILL when srun ends a step (`-K`, Ctrl-C twice).
const KILL_WAIT: Duration = Duration::from_secs(2);

/// One node's PMI puts.
type Puts = Vec<(String, String)>;

/// One node's part as the hub sees it.
#[derive(Default)]
struct Part {
    writer: Option<TcpStream>,
    /// The connection the hub took for it.
    conn: Option<u64>,
    done: bool,
    exited: bool,
}

/// The hub's state while the step runs.
pub(crate) struct Hub {
    starts: Vec<StepStart>,
    parts: Vec<Part>,
    /// The parts' processes (or their agents), by node.
    pub(crate) part_pids: Vec<i32>,
    label: bool,
    label_width: usize,
    kill_on_bad_exit: bool,
    pub(crate) quit_on_interrupt: bool,
    /// `--pty`: srun's terminal size changes go to the task's terminal.
    pub(crate) pty: bool,
    /// `StepId=J.S`, for status lines.
    pub(crate) step_name: String,
    /// The output and error files srun writes itself (`-o`/`-e` naming no node or task).
    pub(crate) files: (Option<std::fs::File>, Option<std::fs::File>),
    /// Partial lines per (rank, stderr) when labelling.
    partial: HashMap<(u32, bool), Vec<u8>>,
    /// Each open fence's puts so far, by node.
    fences: BTreeMap<u32, Vec<Option<Puts>>>,
    /// Each ended task's (exit code, signal).
    ended: BTreeMap<u32, (Option<i32>, Option<i32>)>,
    failed: bool,
    /// The task whose abort (with its code) or end before finalizing MPI ended the step:
    /// srun exits with the abort's code, or that task's own.
    ended_by: Option<(u32, Option<i32>)>,
    killed: bool,
    /// srun ended the step on a signal of its own (Ctrl-C twice, SIGTERM): `CANCELLED`.
    cancelled: bool,
    /// The highest resident set size of one task, over the parts' reports.
    pub(crate) max_rss_kib: Option<u64>,
    /// When a terminating step gets SIGKILL after its SIGTERM.
    kill_at: Option<Instant>,
    last_interrupt: Option<Instant>,
    /// srun's input, read once every part has connected.
    pub(crate) input: Option<(Box<dyn std::io::Read + Send>, mpsc::Sender<Event>)>,
}

impl Hub {
    pub(crate) fn new(starts: Vec<StepStart>, label: bool, kill_on_bad_exit: bool) -> Hub {
        let ntasks = starts.first().map_or(1, |s| s.ntasks);
        Hub {
            parts: starts.iter().map(|_| Part::default()).collect(),
            starts,
            part_pids: Vec::new(),
            label,
            label_width: (ntasks.saturating_sub(1)).to_string().len(),
            kill_on_bad_exit,
            quit_on_interrupt: false,
            pty: false,
            step_name: String::new(),
            files: (None, None),
            partial: HashMap::new(),
            fences: BTreeMap::new(),
            ended: BTreeMap::new(),
            failed: false,
            ended_by: None,
            killed: false,
            cancelled: false,
            max_rss_kib: None,
            kill_at: None,
            last_interrupt: None,
            input: None,
        }
    }

    fn send(&mut self, node: usize, msg: &SrunMessage) {
        if let Some(w) = self.parts[node].writer.as_mut() {
            let mut line = serde_json::to_vec(msg).expect("wire types serialize");
            line.push(b'\n');
            let _ = w.write_all(&line);
        }
    }

    fn broadcast(&mut self, msg: &SrunMessage) {
        for node in 0..self.parts.len() {
            self.send(node, msg);
        }
    }

    /// Ends every task now.
    fn kill_all(&mut self) {
        if !self.killed {
            self.killed = true;
            self.broadcast(&SrunMessage::Kill);
        }
    }

    /// Ends every task as Slurm ends a step: SIGTERM, then SIGKILL a moment later.
    fn terminate(&mut self) {
        if self.kill_at.is_none() && !self.killed {
            self.broadcast(&SrunMessage::Signal { signal: libc::SIGTERM });
            self.kill_at = Some(Instant::now() + KILL_WAIT);
        }
    }

    fn node_failed(&mut self, node: u32, why: &str) {
        let name = self.starts[node as usize].node_name.clone();
        gangway_api::errln!("srun: error: {name}: {why}");
        self.failed = true;
        self.parts[node as usize].done = true;
        self.kill_all();
    }

    /// Runs until every part is done and its process has exited; returns the exit code.
    pub(crate) fn serve(&mut self, rx: &mpsc::Receiver<Event>) -> u8 {
        let started = Instant::now();
        while !self.parts.iter().all(|p| p.done && p.exited) {
            if started.elapsed() > CONNECT_TIMEOUT {
                for n in 0..self.parts.len() {
                    if self.parts[n].writer.is_none() && !self.parts[n].done {
                        self.node_failed(n as u32, "the step's node part did not connect back in time");
                        // Its agent (or the part itself) goes too, or nothing would end it.
                        if let Some(pid) = self.part_pids.get(n) {
                            // SAFETY: kill(2) on our own child; it is reaped by its watcher.
                            unsafe { libc::kill(*pid, libc::SIGKILL) };
                        }
                    }
                }
            }
            if self.kill_at.is_some_and(|t| Instant::now() >= t) {
                self.kill_all();
            }
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(event) => self.handle(event),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        self.flush_partial();
        self.report_failures();
        let code_of = |(code, signal): &(Option<i32>, Option<i32>)| code.unwrap_or_else(|| 128 + signal.unwrap_or(0));
        let worst = match self.ended_by {
            Some((_, Some(code))) => code,
            Some((rank, None)) if self.ended.contains_key(&rank) => code_of(&self.ended[&rank]),
            _ => self.ended.values().map(code_of).max().unwrap_or(0),
        };
        let missing = self.ended.len() < self.starts.first().map_or(0, |s| s.ntasks as usize);
        let code = if self.failed && (worst == 0 || missing) { 1 } else { worst };
        code.clamp(0, 255) as u8
    }

    /// How the step ended, for its record: its state and the signal that ended a task, if any.
    pub(crate) fn step_state(&self, code: u8) -> (gangway_api::slurm::SlurmJobState, Option<i32>) {
        use gangway_api::slurm::SlurmJobState;
        let signal = self.ended.values().filter(|(c, _)| c.is_none()).filter_map(|(_, s)| *s).max();
        let state = match (self.cancelled, code) {
            (true, _) => SlurmJobState::Cancelled,
            (false, 0) => SlurmJobState::Completed,
            (false, _) => SlurmJobState::Failed,
        };
        (state, signal)
    }

    /// Whether connection `conn` is the one the hub took for `node`.
    fn current(&self, node: u32, conn: u64) -> bool {
        self.parts.get(node as usize).is_some_and(|p| p.conn == Some(conn))
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Hello(node, conn, writer) => {
                let Some(part) = self.parts.get_mut(node as usize).filter(|p| p.conn.is_none()) else { return };
                part.writer = Some(writer);
                part.conn = Some(conn);
                let start = SrunMessage::Start(Box::new(self.starts[node as usize].clone()));
                self.send(node as usize, &start);
                if self.killed {
                    self.send(node as usize, &SrunMessage::Kill);
                }
                if self.parts.iter().all(|p| p.writer.is_some()) {
                    if let Some((from, tx)) = self.input.take() {
                        read_input(from, tx);
                    }
                }
            }
            Event::Message(node, conn, m) if self.current(node, conn) => self.message(node, m),
            Event::Closed(node, conn) if self.current(node, conn) => {
                if !self.parts[node as usize].done {
                    self.node_failed(node, "lost the connection to the step's node part");
                }
            }
            Event::Message(..) | Event::Closed(..) => {}
            Event::PartExited(node, code) => {
                let Some(part) = self.parts.get_mut(node as usize) else { return };
                part.exited = true;
                if !part.done && part.writer.is_none() {
                    let why = format!("could not start the step's node part (exit code {})", code.unwrap_or(-1));
                    self.node_failed(node, &why);
                }
            }
            Event::Input(Some(data)) => {
                self.broadcast(&SrunMessage::Input { data: data.into() });
            }
            Event::Input(None) => self.broadcast(&SrunMessage::InputEnd),
            Event::Signal(libc::SIGINT) => self.interrupt(),
            // Not a signal for the tasks: with --pty their terminal takes the new size.
            Event::Signal(libc::SIGWINCH) => {
                if self.pty {
                    self.broadcast(&SrunMessage::Resize(crate::terminal::size()));
                }
            }
            Event::Signal(sig) => {
                self.cancelled |= matches!(sig, libc::SIGTERM | libc::SIGKILL | libc::SIGHUP);
                self.broadcast(&SrunMessage::Signal { signal: sig });
            }
        }
    }

    /// Ctrl-C, as Slurm's srun takes it: the first reports the tasks' state, a second within a
    /// second sends them SIGINT and ends the step (`-q`: the first does).
    fn interrupt(&mut self) {
        let now = Instant::now();
        let again = self.last_interrupt.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1));
        if again || self.quit_on_interrupt {
            gangway_api::errln!("srun: sending Ctrl-C to {}", self.step_name);
            self.broadcast(&SrunMessage::Signal { signal: libc::SIGINT });
            self.cancelled = true;
            self.terminate();
            return;
        }
        self.last_interrupt = Some(now);
        gangway_api::errln!("srun: interrupt (one more within 1 sec to abort)");
        let ntasks = self.starts.first().map_or(0, |s| s.ntasks);
        let running: Vec<u32> = (0..ntasks).filter(|r| !self.ended.contains_key(r)).collect();
        let done: Vec<u32> = (0..ntasks).filter(|r| self.ended.contains_key(r)).collect();
        for (what, ranks) in [("running", running), ("exited", done)] {
            if !ranks.is_empty() {
                let word = if ranks.len() == 1 { "task" } else { "tasks" };
                gangway_api::errln!("srun: {} {word} {}: {what}", self.step_name, ranges(&ranks));
            }
        }
    }

    fn message(&mut self, node: u32, m: PartMessage) {
        match m {
            PartMessage::Output { rank, stderr, data } => {
                self.output(rank, stderr, &data.into_bytes());
            }
            PartMessage::Fence { epoch, puts } => {
                let n = self.parts.len();
                let slots = self.fences.entry(epoch).or_insert_with(|| vec![None; n]);
                if let Some(slot) = slots.get_mut(node as usize) {
                    *slot = Some(puts);
                }
                if slots.iter().all(Option::is_some) {
                    let all = self.fences.remove(&epoch).unwrap_or_default().into_iter().flatten().flatten().collect();
                    self.broadcast(&SrunMessage::FenceDone { epoch, all });
                }
            }
            PartMessage::Abort { rank, code, message } => {
                gangway_api::errln!(
                    "srun: error: task {rank} aborted (PMI_Abort, code {code}): {}",
                    message.unwrap_or_default()
                );
                self.failed = true;
                self.ended.entry(rank).or_insert((Some(code.max(1)), None));
                self.ended_by.get_or_insert((rank, Some(code.max(1))));
                self.kill_all();
            }
            PartMessage::ModexRequest { id, rank } => {
                let holder = self.starts.iter().position(|s| s.ranks.contains(&rank));
                match holder {
                    Some(h) => self.send(h, &SrunMessage::ModexRequest { id, rank, from: node }),
                    None => self.send(node as usize, &SrunMessage::ModexData { id, data: None }),
                }
            }
            PartMessage::ModexData { id, to, data } => {
                self.send(to as usize, &SrunMessage::ModexData { id, data });
            }
            PartMessage::Lost { rank } => {
                // Once the step is ending, the others' ends are its doing, not news.
                if self.ended_by.is_none() {
                    gangway_api::errln!("srun: error: task {rank} ended without finalizing MPI: ending the step");
                }
                self.failed = true;
                self.ended_by.get_or_insert((rank, None));
                self.kill_all();
            }
            PartMessage::Exited { rank, code, signal } => {
                self.ended.insert(rank, (code, signal));
                if code != Some(0) && self.kill_on_bad_exit {
                    self.terminate();
                }
            }
            PartMessage::Failed { message } => self.node_failed(node, &message),
            PartMessage::Done { max_rss_kib } => {
                self.parts[node as usize].done = true;
                self.max_rss_kib = self.max_rss_kib.max(max_rss_kib);
            }
            PartMessage::Hello { .. } => {}
        }
    }

    fn output(&mut self, rank: u32, stderr: bool, data: &[u8]) {
        let text = if self.label {
            let buf = self.partial.entry((rank, stderr)).or_default();
            buf.extend_from_slice(data);
            let Some(end) = buf.iter().rposition(|b| *b == b'\n') else { return };
            let whole: Vec<u8> = buf.drain(..=end).collect();
            let mut text = Vec::with_capacity(whole.len() + 16);
            for line in whole.split_inclusive(|b| *b == b'\n') {
                text.extend_from_slice(format!("{rank:>w$}: ", w = self.label_width).as_bytes());
                text.extend_from_slice(line);
            }
            text
        } else {
            data.to_vec()
        };
        let file = if stderr { self.files.1.as_mut() } else { self.files.0.as_mut() };
        let _ = match (file, stderr) {
            (Some(f), _) => f.write_all(&text),
            (None, true) => std::io::stderr().write_all(&text),
            (None, false) => std::io::stdout().write_all(&text).and_then(|()| std::io::stdout().flush()),
        };
    }

    /// Output that did not end with a newline, labelled and ended.
    fn flush_partial(&mut self) {
        let rest: Vec<((u32, bool), Vec<u8>)> = self.partial.drain().filter(|(_, b)| !b.is_empty()).collect();
        for ((rank, stderr), mut data) in rest {
            data.push(b'\n');
            self.output(rank, stderr, &data);
        }
    }

    /// Slurm's end-of-step lines: `srun: error: node1: tasks 0-1: Exited with exit code 3`.
    fn report_failures(&self) {
        let mut by: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
        for (rank, (code, signal)) in &self.ended {
            let why = match (code, signal) {
                (Some(0), _) => continue,
                (Some(c), _) => format!("Exited with exit code {c}"),
                (None, Some(s)) => signal_name(*s),
                (None, None) => continue,
            };
            let node = self.starts.iter().find(|s| s.ranks.contains(rank)).map_or("", |s| s.node_name.as_str());
            by.entry((node.to_owned(), why)).or_default().push(*rank);
        }
        for ((node, why), ranks) in by {
            let (word, list) =
                if ranks.len() == 1 { ("task", ranks[0].to_string()) } else { ("tasks", ranges(&ranks)) };
            gangway_api::errln!("srun: error: {node}: {word} {list}: {why}");
        }
    }
}

/// What a signal is called in srun's report (`Killed`, `Terminated`, …).
fn signal_name(sig: i32) -> String {
    // SAFETY: strsignal returns a pointer to a static or thread-local string.
    let name = unsafe { libc::strsignal(sig) };
    if name.is_null() {
        return format!("Signal {sig}");
    }
    // SAFETY: a non-null strsignal result is a NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(name) }.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_lists_compress_as_srun_writes_them() {
        assert_eq!(ranges(&[0, 1, 2, 5]), "0-2,5");
        assert_eq!(ranges(&[3]), "3");
        assert_eq!(signal_name(libc::SIGKILL), "Killed");
    }

    #[test]
    fn labels_pad_to_the_widest_rank_and_wait_for_whole_lines() {
        let start = StepStart { ntasks: 12, ..StepStart::default() };
        let mut hub = Hub::new(vec![start], true, false);
        assert_eq!(hub.label_width, 2);
        hub.output(3, false, b"par");
        assert_eq!(hub.partial[&(3, false)], b"par");
        hub.output(3, false, b"tial\nnext");
        assert_eq!(hub.partial[&(3, false)], b"next");
    }
}
