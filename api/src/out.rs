//! Writing to standard output and error without panicking. `println!` and `eprintln!` panic
//! when the write fails (a full disk under a redirected log, `/dev/full`, a closed pipe as in
//! `squeue | head -1`); these macros drop what cannot be written and count it instead, so
//! a full disk never kills a head, a launcher or a helper.
//!
//! `outln!`/`out!` write to standard output, `errln!`/`err!` to standard error, with
//! `format!`'s arguments.

use std::sync::atomic::{AtomicU64, Ordering};

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// How many writes were dropped since the process started.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Writes `args` to standard error (`err`) or output; a failure is counted, not raised.
#[doc(hidden)]
pub fn write(args: std::fmt::Arguments<'_>, err: bool) {
    use std::io::Write;
    let written = if err { std::io::stderr().lock().write_fmt(args) } else { std::io::stdout().lock().write_fmt(args) };
    if written.is_err() {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// `println!` that never panics.
#[macro_export]
macro_rules! outln {
    () => { $crate::out::write(format_args!("\n"), false) };
    ($($arg:tt)*) => { $crate::out::write(format_args!("{}\n", format_args!($($arg)*)), false) };
}

/// `print!` that never panics.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::write(format_args!($($arg)*), false) };
}

/// `eprintln!` that never panics.
#[macro_export]
macro_rules! errln {
    () => { $crate::out::write(format_args!("\n"), true) };
    ($($arg:tt)*) => { $crate::out::write(format_args!("{}\n", format_args!($($arg)*)), true) };
}

/// `eprint!` that never panics.
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => { $crate::out::write(format_args!($($arg)*), true) };
}

/// A status line for a long wait, kept up to date on standard error when that is a terminal
/// (and silent otherwise): `show` redraws it at most once a second, `clear` erases it.
#[derive(Debug)]
pub struct Progress {
    terminal: bool,
    started: std::time::Instant,
    drawn: Option<std::time::Instant>,
}

impl Default for Progress {
    fn default() -> Progress {
        Progress::new()
    }
}

impl Progress {
    /// A status line on standard error, if it is a terminal.
    pub fn new() -> Progress {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        Progress { terminal, started: std::time::Instant::now(), drawn: None }
    }

    /// Seconds since the wait began.
    pub fn elapsed_s(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Redraws the line with `text` (after a second's wait, then at most once a second).
    pub fn show(&mut self, text: &str) {
        let now = std::time::Instant::now();
        let due = match self.drawn {
            None => now.duration_since(self.started) >= std::time::Duration::from_secs(1),
            Some(last) => now.duration_since(last) >= std::time::Duration::from_secs(1),
        };
        if self.terminal && due {
            write(format_args!("\r{text}\x1b[K"), true);
            self.drawn = Some(now);
        }
    }

    /// Erases the line, if one was drawn.
    pub fn clear(&mut self) {
        if self.drawn.take().is_some() {
            write(format_args!("\r\x1b[K"), true);
        }
    }
}
