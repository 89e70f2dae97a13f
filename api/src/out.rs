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
