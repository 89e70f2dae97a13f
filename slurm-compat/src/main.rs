//! `gangway-slurm`: one binary for every Slurm command. It acts as the command it is called as
//! (`sbatch`, `srun`, … through the links `install-shims` makes), or as
//! `gangway-slurm <command> …`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use gangway_slurm::{resolve, resolve_command_line, scontrol, SlurmError};

/// The Slurm commands this binary stands in for.
const COMMANDS: [&str; 10] =
    ["sbatch", "srun", "salloc", "squeue", "scancel", "sinfo", "scontrol", "sacct", "sprio", "sshare"];

const USAGE: &str = "\
usage: gangway-slurm <command> [ARGS...]
  parse SCRIPT [SBATCH-OPTIONS...]   print, as JSON, the job a batch script asks for
  parse [SBATCH-OPTIONS...] [SCRIPT [ARGS...]]   the same, from a whole sbatch command line
  install-shims DIR                  make sbatch, srun, ... links to this binary in DIR
  scontrol show hostnames|hostlist|hostlistsorted [LIST]
  sbatch|srun|salloc|squeue|scancel|sinfo|scontrol|sacct|sprio|sshare ...   (called by those names too)
";

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os().map(|a: OsString| a.to_string_lossy().into_owned()).collect();
    let called_as = argv.first().map(|a| a.rsplit('/').next().unwrap_or(a).to_string()).unwrap_or_default();
    let (command, args) = if COMMANDS.contains(&called_as.as_str()) {
        (called_as.as_str(), argv.get(1..).unwrap_or_default())
    } else {
        match argv.get(1) {
            Some(c) => (c.as_str(), argv.get(2..).unwrap_or_default()),
            None => {
                gangway_api::err!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    };
    match command {
        "parse" => parse(args),
        "install-shims" => install_shims(args),
        "scontrol" => scontrol_command(args),
        "sbatch" => gangway_slurm::submit::main(args),
        "srun" => gangway_slurm::step::main(args),
        "salloc" => gangway_slurm::salloc::main(args),
        "salloc-holder" => gangway_slurm::salloc_holder::main(),
        "scancel" => gangway_slurm::cancel::main(args),
        "squeue" => gangway_slurm::query::squeue_main(args),
        "sinfo" => gangway_slurm::query::sinfo_main(args),
        "sacct" => gangway_slurm::query::sacct_main(args),
        "sprio" => gangway_slurm::query::sprio_main(args),
        "sshare" => gangway_slurm::query::sshare_main(args),
        "help" | "--help" | "-h" => {
            gangway_api::out!("{USAGE}");
            ExitCode::SUCCESS
        }
        c if COMMANDS.contains(&c) => not_implemented(c),
        other => {
            gangway_api::errln!("gangway-slurm: unknown command `{other}`");
            gangway_api::err!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn not_implemented(command: &str) -> ExitCode {
    gangway_api::errln!("gangway-slurm: {command} is not implemented yet");
    ExitCode::from(2)
}

/// `parse SCRIPT [OPTIONS…]`, or `parse [OPTIONS…] [SCRIPT [ARGS…]]` when the first word is an
/// option.
fn parse(args: &[String]) -> ExitCode {
    let resolved = match args.first() {
        None => {
            gangway_api::errln!("gangway-slurm: parse needs a batch script (or --wrap)");
            return ExitCode::from(2);
        }
        Some(first) if first.starts_with('-') && first != "-" => {
            resolve_command_line(args, |path| std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()))
        }
        Some(script) => resolve(script, &args[1..]),
    };
    match resolved {
        Ok(job) => match serde_json::to_string_pretty(&job) {
            Ok(json) => {
                gangway_api::outln!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                gangway_api::errln!("gangway-slurm: writing JSON: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

fn report(e: &SlurmError) {
    gangway_api::errln!("{}", e.render("sbatch"));
    if let Some(detail) = e.detail() {
        gangway_api::errln!("  ({detail})");
    }
}

/// `install-shims DIR`: links named after every Slurm command, pointing at this binary.
fn install_shims(args: &[String]) -> ExitCode {
    let usage = "usage: gangway-slurm install-shims DIR (links named sbatch, srun, squeue, ... to this binary)";
    match args {
        [h] if h == "-h" || h == "--help" => {
            gangway_api::outln!("{usage}");
            return ExitCode::SUCCESS;
        }
        // An option is never a directory to make.
        [d] if d.starts_with('-') => {
            gangway_api::errln!("gangway-slurm install-shims: unknown option {d}\n{usage}");
            return ExitCode::from(2);
        }
        _ => {}
    }
    let [dir] = args else {
        gangway_api::errln!("{usage}");
        return ExitCode::from(2);
    };
    match make_shims(Path::new(dir)) {
        Ok(target) => {
            for c in COMMANDS {
                gangway_api::outln!("{dir}/{c} -> {}", target.display());
            }
            ExitCode::SUCCESS
        }
        Err(msg) => {
            gangway_api::errln!("gangway-slurm: install-shims: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn make_shims(dir: &Path) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this binary: {e}"))?;
    let target = exe.canonicalize().unwrap_or(exe);
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    for command in COMMANDS {
        let link = dir.join(command);
        match std::fs::symlink_metadata(&link) {
            Ok(meta) if meta.file_type().is_symlink() => {
                std::fs::remove_file(&link).map_err(|e| format!("replacing {}: {e}", link.display()))?;
            }
            Ok(_) => return Err(format!("{} exists and is not a link; not replacing it", link.display())),
            Err(_) => {}
        }
        std::os::unix::fs::symlink(&target, &link).map_err(|e| format!("linking {}: {e}", link.display()))?;
    }
    Ok(target)
}

/// `scontrol show hostnames|hostlist|hostlistsorted [LIST]`; the rest needs the cluster.
/// Slurm 22.05's scontrol commands.
const SCONTROL_KEYWORDS: [&str; 40] = [
    "abort",
    "cancel_reboot",
    "cluster",
    "completing",
    "create",
    "delete",
    "details",
    "errnumstr",
    "fsdampeningfactor",
    "getaddrs",
    "help",
    "hold",
    "listpids",
    "notify",
    "oneliner",
    "pidinfo",
    "ping",
    "power",
    "quit",
    "reboot",
    "reboot_nodes",
    "reconfigure",
    "release",
    "requeue",
    "requeuehold",
    "resume",
    "schedloglevel",
    "setdebug",
    "setdebugflags",
    "show",
    "shutdown",
    "suspend",
    "takeover",
    "token",
    "top",
    "uhold",
    "update",
    "verbose",
    "version",
    "write",
];

fn scontrol_command(args: &[String]) -> ExitCode {
    if args.first().is_some_and(|w| gangway_slurm::control::handles(w)) {
        return gangway_slurm::control::main(args);
    }
    if let Some(code) = gangway_slurm::query::scontrol_show(args) {
        return code;
    }
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    // What Slurm's scontrol does not know is refused in its words (exit 1); what it knows
    // and gangway does not do says so.
    if let Some(word) = words.first().filter(|w| !SCONTROL_KEYWORDS.contains(&w.to_ascii_lowercase().as_str())) {
        gangway_api::errln!("invalid keyword: {word}");
        return ExitCode::FAILURE;
    }
    const ENTITIES: [&str; 16] = [
        "aliases",
        "assoc_mgr",
        "bbstat",
        "burstbuffer",
        "config",
        "daemons",
        "dwstat",
        "federation",
        "frontend",
        "hostlist",
        "hostlistsorted",
        "hostnames",
        "job",
        "node",
        "partition",
        "reservation",
    ];
    if let ["show", what, ..] = words.as_slice() {
        let known = ENTITIES.contains(what) || ["licenses", "slurmd", "step", "topology"].contains(what);
        if !known {
            gangway_api::errln!("invalid entity:{what} for keyword:show ");
            return ExitCode::FAILURE;
        }
    }
    let (what, list) = match words.as_slice() {
        ["show", what, list] => (*what, list.to_string()),
        ["show", what] if what.starts_with("hostlist") || *what == "hostnames" => {
            match std::env::var("SLURM_JOB_NODELIST") {
                Ok(list) => (*what, list),
                Err(_) => {
                    gangway_api::errln!("scontrol: error: {what}: no list given and SLURM_JOB_NODELIST is not set");
                    return ExitCode::FAILURE;
                }
            }
        }
        _ => return not_implemented("scontrol"),
    };
    let out = match what {
        "hostnames" => scontrol::show_hostnames(&list),
        "hostlist" => scontrol::show_hostlist(&list, false),
        "hostlistsorted" => scontrol::show_hostlist(&list, true),
        _ => return not_implemented("scontrol"),
    };
    match out {
        Ok(text) => {
            gangway_api::out!("{text}");
            ExitCode::SUCCESS
        }
        Err(text) => {
            gangway_api::err!("{text}");
            ExitCode::FAILURE
        }
    }
}
