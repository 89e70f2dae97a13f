//! Splitting a task's command line into arguments, without a shell.
//!
//! Azure Batch does not run command lines under a shell; it splits them into words. Quotes
//! group words (`'a b'`, `"a b"`), a backslash escapes the next character outside single
//! quotes, and nothing is expanded: `$HOME`, `*` and `|` reach the program as written. A user
//! who wants a shell asks for one: `/bin/sh -c '…'`.

/// Splits `line` into arguments; an error names the unterminated quote or trailing backslash.
pub fn split_command_line(line: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    args.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated single quote in command line: {line}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') if matches!(chars.peek(), Some('"' | '\\' | '$' | '`')) => {
                            cur.extend(chars.next());
                        }
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated double quote in command line: {line}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err(format!("command line ends with a lone backslash: {line}")),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        args.push(cur);
    }
    if args.is_empty() {
        return Err("the command line is empty".into());
    }
    Ok(args)
}

/// Quotes `args` so that [`split_command_line`] gives them back.
pub fn join_command_line<S: AsRef<str>>(args: &[S]) -> String {
    args.iter()
        .map(|a| {
            let a = a.as_ref();
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
                a.to_owned()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str, expected: &[&str]) {
        assert_eq!(split_command_line(line).unwrap(), expected, "{line}");
    }

    #[test]
    fn splitting() {
        check("/bin/true", &["/bin/true"]);
        check("  echo   a  b ", &["echo", "a", "b"]);
        check("/bin/sh -c 'echo $HOME | wc'", &["/bin/sh", "-c", "echo $HOME | wc"]);
        check(r#"echo "a \"b\" c" d\ e"#, &["echo", r#"a "b" c"#, "d e"]);
        check("echo ''", &["echo", ""]);
        check("echo a'b'\"c\"", &["echo", "abc"]);
        for bad in ["", "   ", "echo 'x", "echo \"x", "echo \\"] {
            assert!(split_command_line(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn joining_round_trips() {
        for args in [vec!["echo", "a b", "it's", "", "$HOME", "x=1"], vec!["/bin/true"]] {
            assert_eq!(split_command_line(&join_command_line(&args)).unwrap(), args);
        }
    }
}
