//! Batch scripts: the checks sbatch makes before submitting one, and its `#SBATCH` lines, read
//! as sbatch's `_opt_batch_script` reads them.
//!
//! A directive is a line starting with exactly `#SBATCH`; the rest of the line splits into
//! words as a shell would split them, roughly: blanks separate, `'…'` and `"…"` group, `\`
//! takes the next character literally, and an unquoted `#` starts a comment. The words of all
//! directive lines form one command line, read by the same rules as sbatch's own. Reading stops
//! at the first line that is neither blank nor a comment, so directives after the first
//! command are ignored. Lines Slurm silently ignores but that look meant as directives
//! (indented, wrong case, after the first command) produce warnings.

use crate::error::{ScriptProblem, SlurmError};

/// The words of a script's `#SBATCH` lines, and what looked wrong on the way.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Directives {
    /// All words, in order, as one command line.
    pub args: Vec<String>,
    /// Lines that look like directives but are not read as such.
    pub warnings: Vec<String>,
}

/// The checks sbatch makes on a script before reading it.
pub fn check_script(text: &str) -> Result<(), SlurmError> {
    let problem = if text.is_empty() {
        ScriptProblem::Empty
    } else if text.chars().all(char::is_whitespace) {
        ScriptProblem::OnlyWhitespace
    } else if text.contains('\0') {
        ScriptProblem::NulByte
    } else if !text.starts_with("#!") {
        ScriptProblem::NoShebang
    } else if text.contains("\r\n") {
        ScriptProblem::DosLineBreaks
    } else {
        return Ok(());
    };
    Err(SlurmError::Script(problem))
}

/// Collects the `#SBATCH` words of a script; `file` names it in error messages.
pub fn directives(file: &str, text: &str) -> Result<Directives, SlurmError> {
    let mut out = Directives::default();
    let mut first_command: Option<usize> = None;
    let mut warned_foreign = false;
    for (index, line) in text.split('\n').enumerate() {
        let lineno = index + 1;
        if let Some(rest) = line.strip_prefix("#SBATCH") {
            match first_command {
                None => split_words(file, lineno, line, rest, &mut out.args)?,
                Some(cmd) => out.warnings.push(format!(
                    "line {lineno}: #SBATCH after the first command (line {cmd}) is ignored, as Slurm ignores it"
                )),
            }
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        if !trimmed.starts_with('#') {
            first_command.get_or_insert(lineno);
            continue;
        }
        if first_command.is_some() {
            continue;
        }
        if trimmed.len() != line.len() && trimmed.starts_with("#SBATCH") {
            out.warnings.push(format!(
                "line {lineno}: indented #SBATCH is ignored; Slurm reads directives only at the start of a line"
            ));
        } else if line.get(..7).is_some_and(|w| w.eq_ignore_ascii_case("#SBATCH")) {
            let word = &line[..7];
            out.warnings.push(format!("line {lineno}: `{word}` is not `#SBATCH`; Slurm ignores this line"));
        } else if (line.starts_with("#PBS") || line.starts_with("#BSUB")) && !warned_foreign {
            warned_foreign = true;
            out.warnings.push(format!("line {lineno}: #PBS and #BSUB directives are not translated; they are ignored"));
        }
    }
    if let Some(word) = out.args.iter().find(|w| w.eq_ignore_ascii_case("hetjob") || w.eq_ignore_ascii_case("packjob"))
    {
        return Err(SlurmError::HetJob(word.clone()));
    }
    Ok(out)
}

/// Splits the text after `#SBATCH` into words (Slurm's `_get_argument`, applied until the line
/// is used up).
fn split_words(file: &str, lineno: usize, line: &str, rest: &str, out: &mut Vec<String>) -> Result<(), SlurmError> {
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '#') => break,
            (None, c) if c.is_ascii_whitespace() || c == '\x0b' => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(SlurmError::UnmatchedQuote {
            file: file.to_string(),
            line: lineno,
            quote: q,
            text: line.to_string(),
        });
    }
    if in_word {
        out.push(word);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(script: &str) -> Vec<String> {
        directives("t.sh", script).unwrap_or_else(|e| panic!("{script:?}: {e}")).args
    }

    fn check(script: &str, expected: &[&str]) {
        assert_eq!(words(script), expected, "script {script:?}");
    }

    #[test]
    fn reads_directives_until_the_first_command() {
        check("#!/bin/bash\n#SBATCH -N 2\n#SBATCH --time=10\necho hi\n#SBATCH -n 4\n", &["-N", "2", "--time=10"]);
        check("#!/bin/sh\n\n# a comment\n   # indented comment\n#SBATCH -J x\n", &["-J", "x"]);
        check("#!/bin/sh\n#SBATCH--time=5\n", &["--time=5"]);
        check("#!/bin/sh\n#SBATCH\t-N\t3\n", &["-N", "3"]);
        check("#!/bin/sh\nset -e\n#SBATCH -N 2\n", &[]);
        check("#!/bin/sh\n  echo\n#SBATCH -N 2\n", &[]);
    }

    #[test]
    fn words_like_a_shell() {
        check("#!/bin/sh\n#SBATCH --job-name=\"my job\"\n", &["--job-name=my job"]);
        check("#!/bin/sh\n#SBATCH -J 'a b' -o \"x y\"\n", &["-J", "a b", "-o", "x y"]);
        check("#!/bin/sh\n#SBATCH -J a\\ b\n", &["-J", "a b"]);
        check("#!/bin/sh\n#SBATCH -J \"say \\\"hi\\\"\"\n", &["-J", "say \"hi\""]);
        check("#!/bin/sh\n#SBATCH -N 2 # two nodes\n", &["-N", "2"]);
        check("#!/bin/sh\n#SBATCH -J a#b\n", &["-J", "a"]);
        check("#!/bin/sh\n#SBATCH -J 'a#b'\n", &["-J", "a#b"]);
        check("#!/bin/sh\n#SBATCH -J ''\n", &["-J", ""]);
        check("#!/bin/sh\n#SBATCH\n#SBATCH   \n", &[]);
    }

    #[test]
    fn unmatched_quote() {
        let err = directives("job.sh", "#!/bin/sh\n#SBATCH -J 'oops\n").unwrap_err();
        assert_eq!(err.to_string(), "job.sh: line 2: Unmatched `'` in [#SBATCH -J 'oops]");
    }

    #[test]
    fn hetjob_is_refused() {
        assert!(matches!(
            directives("j", "#!/bin/sh\n#SBATCH -N1\n#SBATCH hetjob\n#SBATCH -N2\n"),
            Err(SlurmError::HetJob(_))
        ));
    }

    #[test]
    fn warns_about_lookalikes() {
        let d = directives(
            "j",
            "#!/bin/sh\n  #SBATCH -N 2\n#sbatch -n 3\n##SBATCH -n 5\n#PBS -l nodes=1\necho\n#SBATCH -t 5\n",
        )
        .unwrap();
        assert!(d.args.is_empty());
        assert_eq!(d.warnings.len(), 4, "{:?}", d.warnings);
        assert!(d.warnings[0].contains("line 2: indented"));
        assert!(d.warnings[1].contains("line 3: `#sbatch`"));
        assert!(d.warnings[2].contains("line 5: #PBS"));
        assert!(d.warnings[3].contains("line 7: #SBATCH after the first command (line 6)"));
    }

    #[test]
    fn script_checks() {
        let problem = |text: &str| match check_script(text) {
            Err(SlurmError::Script(p)) => Some(p),
            Ok(()) => None,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(problem(""), Some(ScriptProblem::Empty));
        assert_eq!(problem(" \n\t"), Some(ScriptProblem::OnlyWhitespace));
        assert_eq!(problem("echo hi\n"), Some(ScriptProblem::NoShebang));
        assert_eq!(problem("#!/bin/sh\r\necho\r\n"), Some(ScriptProblem::DosLineBreaks));
        assert_eq!(problem("#!/bin/sh\n\0"), Some(ScriptProblem::NulByte));
        assert_eq!(problem("#!/bin/sh\necho\n"), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "(#SBATCH|#!|#| |\t|\n|'|\"|\\\\|[a-z=-]){0,60}") {
            let _ = check_script(&text);
            let _ = directives("p.sh", &text);
        }
    }
}
