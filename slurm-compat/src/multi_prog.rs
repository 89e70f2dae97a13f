//! `srun --multi-prog FILE`: a program per task (MPMD). Each line of the file is a list of
//! task ranks (`0`, `1-3`, `4,6`, or `*` for every task no other line names), a program and
//! its arguments, in which `%t` is the task's rank and `%o` its offset among the line's ranks
//! (`0,2-3` gives 0, 1 and 2; on the `*` line, the rank); single quotes keep their contents as they are, double quotes
//! group words. Blank lines and `#` comments are skipped. Every task of the step needs a
//! line, and no task may have two.

/// The command of each of `ntasks` tasks, by rank, as `text` (the file `name`) gives them.
pub fn commands(name: &str, text: &str, ntasks: u32) -> Result<Vec<Vec<String>>, String> {
    let invalid = |why: String| format!("Configuration file {name} invalid, {why}");
    let mut by_rank: Vec<Option<Vec<String>>> = vec![None; ntasks as usize];
    let mut wildcard: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (ranks, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        if rest.trim().is_empty() {
            return Err(invalid(format!("line {n} names no program")));
        }
        if ranks == "*" {
            wildcard = Some((n, rest.to_owned()));
            continue;
        }
        let list = rank_list(ranks, ntasks).map_err(|e| invalid(format!("line {n}: {e}")))?;
        for (offset, rank) in list.into_iter().enumerate() {
            let slot = &mut by_rank[rank as usize];
            if slot.is_some() {
                return Err(invalid(format!("line {n}: task id {rank} already has a program")));
            }
            *slot = Some(words(rest, rank, offset).map_err(|e| invalid(format!("line {n}: {e}")))?);
        }
    }
    let mut out = Vec::with_capacity(by_rank.len());
    for (rank, slot) in by_rank.into_iter().enumerate() {
        let cmd = match (slot, &wildcard) {
            (Some(c), _) => c,
            // On the `*` line a task's offset is its rank, as in Slurm.
            (None, Some((n, rest))) => words(rest, rank as u32, rank).map_err(|e| invalid(format!("line {n}: {e}")))?,
            (None, None) => return Err(invalid(format!("no record for task id {rank}"))),
        };
        out.push(cmd);
    }
    Ok(out)
}

/// `0`, `1-3`, `0,2-3` in order, each below `ntasks`.
fn rank_list(s: &str, ntasks: u32) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    let malformed = || format!("`{s}` is not a list of task ranks");
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let num = |t: &str| t.parse::<u32>().ok().filter(|_| t.bytes().all(|c| c.is_ascii_digit()));
        let (a, b) = (num(a).ok_or_else(malformed)?, num(b).ok_or_else(malformed)?);
        if a > b {
            return Err(malformed());
        }
        if b >= ntasks {
            return Err(format!("task id {b} is not below the step's {ntasks} tasks"));
        }
        out.extend(a..=b);
    }
    Ok(out)
}

/// The words of `rest`, with `%t` and `%o` replaced outside single quotes.
fn words(rest: &str, rank: u32, offset: usize) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (q, '%') if q != Some('\'') && matches!(chars.peek(), Some('t' | 'o')) => {
                let which = chars.next();
                cur.push_str(&if which == Some('t') { rank.to_string() } else { offset.to_string() });
                in_word = true;
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("unterminated {q} quote"));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_manual_example_gives_each_task_its_program() {
        let conf = "# srun -n8 -l --multi-prog silly.conf\n4-6       hostname\n1,7       echo  task:%t\n0,2-3     echo  offset:%o\n";
        let c = commands("silly.conf", conf, 8).unwrap();
        assert_eq!(c[0], strs(&["echo", "offset:0"]));
        assert_eq!(c[1], strs(&["echo", "task:1"]));
        assert_eq!(c[2], strs(&["echo", "offset:1"]));
        assert_eq!(c[3], strs(&["echo", "offset:2"]));
        assert_eq!(c[5], strs(&["hostname"]));
        assert_eq!(c[7], strs(&["echo", "task:7"]));
    }

    #[test]
    fn a_wildcard_covers_the_rest_and_quotes_group_or_protect() {
        let conf = "0 sh -c \"echo rank %t\"\n* echo 'kept %t' %t/%o\n";
        let c = commands("m.conf", conf, 3).unwrap();
        assert_eq!(c[0], strs(&["sh", "-c", "echo rank 0"]));
        assert_eq!(c[1], strs(&["echo", "kept %t", "1/1"]));
        assert_eq!(c[2], strs(&["echo", "kept %t", "2/2"]));
    }

    #[test]
    fn bad_files_are_refused_by_line() {
        let bad = |conf: &str, n: u32, needle: &str| {
            let e = commands("m.conf", conf, n).unwrap_err();
            assert!(e.starts_with("Configuration file m.conf invalid") && e.contains(needle), "{conf:?}: {e}");
        };
        bad("0 true\n", 2, "no record for task id 1");
        bad("0-1 true\n1 false\n", 2, "line 2: task id 1 already has a program");
        bad("0-2 true\n", 2, "task id 2 is not below the step's 2 tasks");
        bad("0-4000000000 true\n", 2, "task id 4000000000 is not below");
        bad("1-0 true\n", 2, "`1-0` is not a list");
        bad("x true\n", 2, "`x` is not a list");
        bad("0\n", 1, "line 1 names no program");
        bad("0 echo 'open\n", 1, "unterminated ' quote");
    }
}
