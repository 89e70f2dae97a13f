//! `gangway-supervise FD NAME`: one task process's supervisor, started by `gangway-node`
//! (see `supervise.rs`). A binary of its own because it starts once per task: without the
//! launcher's libraries (PMIx, hwloc, TLS) it is ready several times sooner.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(gangway_launcher::supervise::main(&args));
}
