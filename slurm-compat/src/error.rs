//! [`SlurmError`]: why a batch script and its options could not be resolved, worded as sbatch
//! words it.

use crate::array::ArrayError;
use crate::begin::BeginError;
use crate::dependency::DependencyError;
use crate::getopt::GetoptError;
use crate::time::TimeError;

/// Why a job could not be resolved. `Display` gives Slurm's message without the program name;
/// [`SlurmError::render`] gives the whole line(s) sbatch prints.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    /// An unknown option, a missing value, an ambiguous abbreviation.
    #[error(transparent)]
    Getopt(#[from] GetoptError),
    /// `--time=abc`, `--time-min=…`.
    #[error("Invalid --{option} specification")]
    Time {
        /// `time` or `time-min`.
        option: &'static str,
        /// What is wrong with it.
        #[source]
        source: TimeError,
    },
    /// `--begin=later`, `--deadline=…`.
    #[error("Invalid --{option} specification")]
    Begin {
        /// `begin` or `deadline`.
        option: &'static str,
        /// What is wrong with it.
        #[source]
        source: BeginError,
    },
    /// A count that is not a positive integer (`--ntasks=0`, `-c x`).
    #[error("Invalid numeric value \"{value}\" for --{option}.")]
    Number {
        /// The long option name.
        option: &'static str,
        /// The value as given.
        value: String,
    },
    /// `--nodes=0`, `--nodes=x`.
    #[error("\"{value}\" is not a valid node count")]
    NodeCount {
        /// The part that is not a count.
        value: String,
    },
    /// `--nodes=4-2`.
    #[error("Maximum node count {max} is less than minimum node count {min}")]
    NodeRange {
        /// The smaller maximum.
        max: u32,
        /// The larger minimum.
        min: u32,
    },
    /// `--mem=lots`.
    #[error("Invalid --{option} specification")]
    Memory {
        /// `mem`, `mem-per-cpu` or `mem-per-gpu`.
        option: &'static str,
        /// The value as given.
        value: String,
    },
    /// More than one of `--mem`, `--mem-per-cpu`, `--mem-per-gpu`.
    #[error("--mem, --mem-per-cpu, and --mem-per-gpu are mutually exclusive.")]
    MemoryConflict,
    /// `--exclusive` and `--oversubscribe` together.
    #[error("--exclusive and --oversubscribe options are mutually exclusive")]
    ExclusiveConflict,
    /// A malformed value of an option with a fixed vocabulary (`--signal`, `--exclusive`,
    /// `--mail-type`, `--export`, `--switches`, …).
    #[error("Invalid --{option} specification")]
    Spec {
        /// The long option name.
        option: &'static str,
        /// The value as given.
        value: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// `--hint=fast`.
    #[error("unrecognized --hint argument \"{value}\", see --hint=help")]
    Hint {
        /// The value as given.
        value: String,
    },
    /// A GPU request gangway cannot read or cannot honour (`--gres=gpu:x:y:z`, two types).
    #[error("Invalid generic resource (gres) specification")]
    Gres {
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `--array=5-1`.
    #[error("Batch job submission failed: Invalid job array specification")]
    Array(#[source] ArrayError),
    /// `--dependency=afterok:x`.
    #[error("Batch job submission failed: Job dependency problem")]
    Dependency(#[source] DependencyError),
    /// A word in a `#SBATCH` line that is not an option, such as `job` in `#SBATCH -J my job`.
    #[error("Invalid directive found in batch script: {0}")]
    InvalidDirective(String),
    /// An unterminated quote in a `#SBATCH` line.
    #[error("{file}: line {line}: Unmatched `{quote}` in [{text}]")]
    UnmatchedQuote {
        /// The script's name.
        file: String,
        /// 1-based line number.
        line: usize,
        /// `'` or `"`.
        quote: char,
        /// The line.
        text: String,
    },
    /// `#SBATCH hetjob`: heterogeneous jobs are not supported.
    #[error("heterogeneous jobs (#SBATCH {0}) are not supported by gangway")]
    HetJob(String),
    /// A script that sbatch refuses to submit.
    #[error("{0}")]
    Script(ScriptProblem),
    /// A script name and `--wrap` together.
    #[error("Script arguments not permitted with --wrap option")]
    WrapWithScript,
    /// Neither a script nor `--wrap`.
    #[error("no batch script given (name a script file or use --wrap)")]
    NoScript,
    /// The script file could not be read.
    #[error("Unable to open file {path}")]
    ReadScript {
        /// The path as given.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What sbatch finds wrong with a script before reading its directives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptProblem {
    /// Zero bytes.
    Empty,
    /// Nothing but blanks.
    OnlyWhitespace,
    /// The first line does not start with `#!`.
    NoShebang,
    /// `\r\n` line ends.
    DosLineBreaks,
    /// A NUL byte.
    NulByte,
}

impl std::fmt::Display for ScriptProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ScriptProblem::Empty => "Batch script is empty!",
            ScriptProblem::OnlyWhitespace => "Batch script contains only whitespace!",
            ScriptProblem::NoShebang => {
                "This does not look like a batch script.  The first line must start with #! followed by the path \
                 to an interpreter. For instance: #!/bin/sh"
            }
            ScriptProblem::DosLineBreaks => {
                "Batch script contains DOS line breaks (\\r\\n) instead of expected UNIX line breaks (\\n)."
            }
            ScriptProblem::NulByte => {
                "The Slurm controller does not allow scripts that contain a NULL character '\\0'."
            }
        })
    }
}

impl SlurmError {
    /// What the named Slurm command prints for this error, e.g.
    /// `sbatch: error: Invalid --time specification` or, for command-line errors,
    /// `sbatch: unrecognized option '--bogus'` and glibc's hint line.
    pub fn render(&self, prog: &str) -> String {
        match self {
            SlurmError::Getopt(e) => format!("{prog}: {e}\nTry \"{prog} --help\" for more information"),
            SlurmError::MemoryConflict | SlurmError::ExclusiveConflict | SlurmError::UnmatchedQuote { .. } => {
                format!("{prog}: fatal: {self}")
            }
            _ => format!("{prog}: error: {self}"),
        }
    }

    /// A sentence on what exactly is wrong, where Slurm's own message does not say (the
    /// migration report prints it under the Slurm line).
    pub fn detail(&self) -> Option<String> {
        match self {
            SlurmError::Time { source, .. } => Some(source.to_string()),
            SlurmError::Begin { source, .. } => Some(source.to_string()),
            SlurmError::Array(e) => Some(e.to_string()),
            SlurmError::Dependency(e) => Some(e.to_string()),
            SlurmError::Gres { value, reason } => Some(format!("`{value}`: {reason}")),
            SlurmError::Spec { value, expected, .. } => Some(format!("`{value}`: expected {expected}")),
            SlurmError::Memory { value, .. } => {
                Some(format!("`{value}`: expected a size in megabytes, or with a K, M, G or T suffix"))
            }
            SlurmError::ReadScript { source, .. } => Some(source.to_string()),
            _ => None,
        }
    }
}
