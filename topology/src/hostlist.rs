//! Slurm hostlist expressions: `node[01-04,07]`, `rack[0-1]_blade[0-2]`, `a1,b[3-4]`.
//!
//! The behaviour is Slurm's (`src/common/hostlist.c`, checked against `scontrol` 22.05 output in
//! `shared/reference/slurm-22.05/hostlist-examples.txt`), quirks included:
//! - names are separated by `,`, space or tab, except inside brackets;
//! - only `,` or the end of the name may follow the *last* `]` of a name, so `gpu[1-3]-ib` is
//!   invalid, while `rack[0-1]_blade[0-2]` (text between bracket groups) is fine;
//! - several bracket groups expand as a product: the last group varies fastest, then the groups
//!   before it from right to left (Slurm recurses from the right);
//! - a range keeps the zero padding of its lower bound (`c[008-010]`, `n[8-10]`);
//! - duplicates are kept, in both directions.
//!
//! Compressing follows `hostlist_ranged_string`: [`compress_hostlist`] sorts first, like
//! `scontrol show hostlistsorted`, and [`compress_hostlist_unsorted`] keeps the input order, like
//! `scontrol show hostlist`.
//!
//! Where we differ on purpose, it is to reject what Slurm silently turns into odd names:
//! - an unterminated `[` is an error (Slurm appends a `]` and takes `node[1]` as a host name);
//! - a bad range in an earlier bracket group is an error (Slurm drops those hosts silently);
//! - range bounds are plain decimal digits (Slurm's `strtoul` also takes leading blanks and `+`);
//! - the whole expansion is capped at [`MAX_HOSTS`] (Slurm caps each range and each product at
//!   that size but not their sum), so that one expression cannot make us allocate without bound.

mod compress;

pub use compress::{compress_hostlist, compress_hostlist_unsorted};

/// The most hosts one expression may expand to.
pub const MAX_HOSTS: usize = 65_536;

/// Why a hostlist expression could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostlistError {
    /// A `[` with no `]` after it.
    #[error("unterminated '[' in `{token}`")]
    UnterminatedBracket {
        /// The name (one comma-separated part of the expression) in which it was found.
        token: String,
    },
    /// Text after the last `]` of a name, such as `gpu[1-3]-ib`.
    #[error("text after ']' in `{token}`: only ',' or the end of the name may follow the last ']'")]
    TextAfterBracket {
        /// The offending name.
        token: String,
    },
    /// A bracket element that is not `N` or `N-M`.
    #[error("invalid range `{range}` in `{token}`: expected N or N-M in decimal digits")]
    InvalidRange {
        /// The element as written.
        range: String,
        /// The name it is part of.
        token: String,
    },
    /// `N-M` with `M < N`.
    #[error("range {range} goes backwards")]
    RangeBackwards {
        /// The element as written (`5-1`).
        range: String,
    },
    /// The expression names more than [`MAX_HOSTS`] hosts.
    #[error("more than {max} hosts", max = MAX_HOSTS)]
    TooManyHosts,
}

/// Expands a hostlist expression into host names, in Slurm's order, duplicates kept.
pub fn expand_hostlist(expr: &str) -> Result<Vec<String>, HostlistError> {
    let mut out = Vec::new();
    let mut tokens = Tokens::new(expr);
    while let Some(token) = tokens.next_token() {
        expand_token(token, &mut out)?;
    }
    Ok(out)
}

fn is_separator(b: u8) -> bool {
    matches!(b, b'\t' | b',' | b' ')
}

/// Slurm's `_next_tok`: a name runs to the next separator, except that a separator inside
/// brackets does not end it.
struct Tokens<'a> {
    text: &'a str,
    pos: usize,
    // Positions of the next '[' and ']' at or after each byte, so that skipping over bracket
    // pairs stays linear however many brackets the expression holds.
    next_open: Vec<usize>,
    next_close: Vec<usize>,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        let n = bytes.len();
        let mut next_open = vec![n; n + 1];
        let mut next_close = vec![n; n + 1];
        for i in (0..n).rev() {
            next_open[i] = if bytes[i] == b'[' { i } else { next_open[i + 1] };
            next_close[i] = if bytes[i] == b']' { i } else { next_close[i + 1] };
        }
        Tokens { text, pos: 0, next_open, next_close }
    }

    fn next_token(&mut self) -> Option<&'a str> {
        let bytes = self.text.as_bytes();
        let n = bytes.len();
        while self.pos < n && is_separator(bytes[self.pos]) {
            self.pos += 1;
        }
        if self.pos >= n {
            return None;
        }
        let start = self.pos;
        let mut parse = start;
        let mut end = start;
        'token: loop {
            while end < n && !is_separator(bytes[end]) {
                end += 1;
            }
            loop {
                let open = self.next_open[parse];
                if open >= n || open > end {
                    break 'token;
                }
                let close = self.next_close[parse];
                if close >= n || close < open {
                    break 'token;
                }
                if close < end {
                    parse = close + 1;
                } else {
                    // The separator was inside brackets: the name goes on past the ']'.
                    end = close;
                    continue 'token;
                }
            }
        }
        self.pos = end;
        // Separators are ASCII, so `start..end` lies on character boundaries.
        self.text.get(start..end)
    }
}

/// One bracket element: `lo-hi` printed with at least `width` digits.
#[derive(Debug, Clone, Copy)]
struct Range {
    lo: u64,
    hi: u64,
    width: usize,
}

fn expand_token(token: &str, out: &mut Vec<String>) -> Result<(), HostlistError> {
    let Some(open) = token.rfind('[') else {
        push_host(token.to_string(), out)?;
        return Ok(());
    };
    let prefix = &token[..open];
    let rest = &token[open + 1..];
    let Some(close) = rest.find(']') else {
        return Err(HostlistError::UnterminatedBracket { token: token.to_string() });
    };
    let after = &rest[close + 1..];
    if !(after.is_empty() || after.starts_with(',')) {
        return Err(HostlistError::TextAfterBracket { token: token.to_string() });
    }
    let ranges = parse_range_list(&rest[..close], token)?;
    push_range_list(prefix, &ranges, token, out)
}

/// Slurm's `_push_range_list`: bracket groups inside `prefix` are expanded right to left.
fn push_range_list(prefix: &str, ranges: &[Range], token: &str, out: &mut Vec<String>) -> Result<(), HostlistError> {
    if let Some(open) = prefix.rfind('[') {
        let Some(close) = prefix[open + 1..].rfind(']').map(|c| open + 1 + c) else {
            return Err(HostlistError::UnterminatedBracket { token: token.to_string() });
        };
        let head = &prefix[..open];
        let tail = &prefix[close + 1..];
        let recurse = head.contains('[');
        for group in parse_range_list(&prefix[open + 1..close], token)? {
            for j in group.lo..=group.hi {
                let new_prefix = format!("{head}{j:0w$}{tail}", w = group.width);
                if recurse {
                    push_range_list(&new_prefix, ranges, token, out)?;
                } else {
                    for r in ranges {
                        push_range(&new_prefix, r, out)?;
                    }
                }
            }
        }
        return Ok(());
    }
    for r in ranges {
        push_range(prefix, r, out)?;
    }
    Ok(())
}

fn push_range(prefix: &str, r: &Range, out: &mut Vec<String>) -> Result<(), HostlistError> {
    let count = r.hi.saturating_sub(r.lo).saturating_add(1);
    if count > (MAX_HOSTS - out.len()) as u64 {
        return Err(HostlistError::TooManyHosts);
    }
    out.extend((r.lo..=r.hi).map(|n| format!("{prefix}{n:0w$}", w = r.width)));
    Ok(())
}

fn push_host(name: String, out: &mut Vec<String>) -> Result<(), HostlistError> {
    if out.len() >= MAX_HOSTS {
        return Err(HostlistError::TooManyHosts);
    }
    out.push(name);
    Ok(())
}

/// Slurm's `_parse_range_list`: comma-separated `N` and `N-M` elements.
fn parse_range_list(list: &str, token: &str) -> Result<Vec<Range>, HostlistError> {
    let mut ranges = Vec::new();
    let mut hosts: u64 = 0;
    for element in list.split(',') {
        let r = parse_single_range(element, token)?;
        hosts = hosts.saturating_add(r.hi - r.lo + 1);
        if hosts > MAX_HOSTS as u64 {
            return Err(HostlistError::TooManyHosts);
        }
        ranges.push(r);
    }
    Ok(ranges)
}

/// Slurm's `_parse_single_range`: the width is the length of the lower bound as written, and
/// `N-` means `N`.
fn parse_single_range(element: &str, token: &str) -> Result<Range, HostlistError> {
    let invalid = || HostlistError::InvalidRange { range: element.to_string(), token: token.to_string() };
    let (lo_text, hi_text) = match element.split_once('-') {
        Some((lo, hi)) => (lo, Some(hi)),
        None => (element, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(lo_text) {
        return Err(invalid());
    }
    let lo: u64 = lo_text.parse().map_err(|_| invalid())?;
    let hi = match hi_text {
        Some(h) if !h.is_empty() => {
            if !digits(h) {
                return Err(invalid());
            }
            h.parse().map_err(|_| invalid())?
        }
        _ => lo,
    };
    if lo > hi {
        return Err(HostlistError::RangeBackwards { range: element.to_string() });
    }
    if hi - lo >= MAX_HOSTS as u64 {
        return Err(HostlistError::TooManyHosts);
    }
    Ok(Range { lo, hi, width: lo_text.len() })
}

#[cfg(test)]
mod tests;
