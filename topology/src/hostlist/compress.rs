//! Host names to a hostlist expression, as Slurm's `hostlist_ranged_string` writes it.
//!
//! A name splits into a prefix and its trailing decimal digits (`node007` is `node` + 7 with
//! width 3); consecutive numbers with the same prefix and compatible widths merge into ranges,
//! and ranges with the same prefix share one bracket. The sorted form sorts the ranges (natural
//! order of prefixes, then numbers), splits overlaps and merges again, as `hostlist_sort` does.

use std::cmp::Ordering;

/// Compresses host names into a hostlist expression after sorting them, like
/// `scontrol show hostlistsorted` (`n3,n1,n2,n1` → `n[1,1-3]`).
pub fn compress_hostlist(hosts: &[String]) -> String {
    let mut ranges = push_all(hosts);
    if ranges.len() > 1 {
        sort_ranges(&mut ranges);
        coalesce(&mut ranges);
    }
    ranged_string(&ranges)
}

/// Compresses host names into a hostlist expression in their given order, like
/// `scontrol show hostlist` (`n3,n1,n2,n1` → `n[3,1-2,1]`).
pub fn compress_hostlist_unsorted(hosts: &[String]) -> String {
    ranged_string(&push_all(hosts))
}

/// Slurm's `hostrange`: `prefix` followed by `lo..=hi` printed with `width` digits, or a single
/// name without a number (`single`, in which case `prefix` is the whole name).
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostRange {
    prefix: String,
    lo: u64,
    hi: u64,
    width: usize,
    single: bool,
}

impl HostRange {
    fn from_name(name: &str) -> HostRange {
        let digits = name.bytes().rev().take_while(u8::is_ascii_digit).count();
        let (prefix, suffix) = name.split_at(name.len() - digits);
        // A number too large for u64 is kept as part of the name (Slurm's strtoul would clamp it).
        match suffix.parse::<u64>() {
            Ok(n) if digits > 0 => HostRange { prefix: prefix.to_string(), lo: n, hi: n, width: digits, single: false },
            _ => HostRange { prefix: name.to_string(), lo: 0, hi: 0, width: 0, single: true },
        }
    }

    fn count(&self) -> u64 {
        if self.single {
            1
        } else {
            self.hi - self.lo + 1
        }
    }

    /// Whether `next` continues this range: same prefix, the next number, compatible widths.
    /// Returns the width the merged range is printed with.
    fn joins(&self, next: &HostRange) -> Option<usize> {
        if next.lo.checked_sub(1) != Some(self.hi) || prefix_cmp(self, next) != Ordering::Equal {
            return None;
        }
        combined_width(self.lo, self.width, next.lo, next.width)
    }
}

fn push_all(hosts: &[String]) -> Vec<HostRange> {
    let mut ranges: Vec<HostRange> = Vec::new();
    for host in hosts {
        let hr = HostRange::from_name(host);
        if let Some(tail) = ranges.last_mut() {
            if let Some(width) = tail.joins(&hr) {
                tail.hi = hr.hi;
                tail.width = width;
                continue;
            }
        }
        ranges.push(hr);
    }
    ranges
}

fn digit_count(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// Zeros needed to print `n` with `width` digits.
fn zero_padding(n: u64, width: usize) -> usize {
    width.saturating_sub(digit_count(n))
}

/// Slurm's `_width_equiv`: two widths are compatible if printing either number with the other's
/// width changes the zero padding of at most one of them; the merged range takes the width that
/// prints both unchanged.
fn combined_width(n: u64, wn: usize, m: u64, wm: usize) -> Option<usize> {
    if wn == wm {
        return Some(wn);
    }
    let n_changes = zero_padding(n, wn) != zero_padding(n, wm);
    let m_changes = zero_padding(m, wm) != zero_padding(m, wn);
    match (n_changes, m_changes) {
        (true, true) => None,
        (true, false) => Some(wn),
        (false, _) => Some(wm),
    }
}

/// Slurm's `hostrange_prefix_cmp`: natural order of prefixes, then names without a number first.
fn prefix_cmp(a: &HostRange, b: &HostRange) -> Ordering {
    natural_cmp(a.prefix.as_bytes(), b.prefix.as_bytes()).then((b.single as u8).cmp(&(a.single as u8)))
}

/// Slurm's `hostrange_cmp`: prefix, then the first number if the widths are compatible, else
/// the width.
fn range_cmp(a: &HostRange, b: &HostRange) -> Ordering {
    prefix_cmp(a, b).then_with(|| match combined_width(a.lo, a.width, b.lo, b.width) {
        Some(_) => a.lo.cmp(&b.lo),
        None => a.width.cmp(&b.width),
    })
}

/// Ranges that would share one bracket: same prefix, both with numbers.
fn within_range(a: &HostRange, b: &HostRange) -> bool {
    prefix_cmp(a, b) == Ordering::Equal && !a.single && !b.single
}

/// A stable top-down merge sort, as glibc's `qsort` does it. Slurm's comparison is not a strict
/// total order in corner cases (natural order with leading zeros, width compatibility), and the
/// standard library's sorts may panic on such comparisons; this one only ever reorders.
fn sort_ranges(ranges: &mut Vec<HostRange>) {
    fn msort(idx: &mut [usize], tmp: &mut Vec<usize>, ranges: &[HostRange]) {
        let n = idx.len();
        if n <= 1 {
            return;
        }
        let (left, right) = idx.split_at_mut(n / 2);
        msort(left, tmp, ranges);
        msort(right, tmp, ranges);
        tmp.clear();
        let (mut i, mut j) = (0, 0);
        while i < left.len() && j < right.len() {
            if range_cmp(&ranges[left[i]], &ranges[right[j]]) != Ordering::Greater {
                tmp.push(left[i]);
                i += 1;
            } else {
                tmp.push(right[j]);
                j += 1;
            }
        }
        tmp.extend_from_slice(&left[i..]);
        tmp.extend_from_slice(&right[j..]);
        idx.copy_from_slice(tmp);
    }
    let mut idx: Vec<usize> = (0..ranges.len()).collect();
    let mut tmp = Vec::with_capacity(ranges.len());
    msort(&mut idx, &mut tmp, ranges);
    let mut slots: Vec<Option<HostRange>> = std::mem::take(ranges).into_iter().map(Some).collect();
    ranges.extend(idx.into_iter().filter_map(|i| slots[i].take()));
}

/// Slurm's `hostrange_intersect`, for sorted neighbours.
fn intersect(a: &HostRange, b: &HostRange) -> Option<HostRange> {
    if a.single || b.single || a.hi <= b.lo || prefix_cmp(a, b) != Ordering::Equal {
        return None;
    }
    combined_width(a.lo, a.width, b.lo, b.width)?;
    Some(HostRange { lo: b.lo, hi: b.hi.min(a.hi), ..a.clone() })
}

/// Slurm's `hostlist_coalesce` then `hostlist_collapse`: overlapping neighbours are split so
/// that each duplicated number stands alone, then consecutive ranges merge.
fn coalesce(ranges: &mut Vec<HostRange>) {
    let mut i = ranges.len() - 1;
    while i > 0 {
        if let Some(common) = intersect(&ranges[i - 1], &ranges[i]) {
            let mut j = i;
            if common.hi < ranges[i - 1].hi {
                ranges[i].hi = ranges[i - 1].hi;
            }
            ranges[i - 1].hi = common.lo;
            ranges[i].lo = common.hi;
            let prev_hi = ranges[i - 1].hi;
            let next_lo = ranges[i].lo;
            if ranges[i - 1].hi < ranges[i - 1].lo {
                // Unreachable for sorted input; Slurm's code would free the wrong range here.
                ranges.remove(i - 1);
                j -= 1;
            }
            for n in common.lo..=common.hi {
                let single = HostRange { lo: n, hi: n, ..common.clone() };
                if n > prev_hi {
                    ranges.insert(j, single.clone());
                    j += 1;
                }
                if n < next_lo {
                    ranges.insert(j, single);
                    j += 1;
                }
            }
            i = ranges.len();
        }
        i -= 1;
    }
    for i in (1..ranges.len()).rev() {
        if let Some(width) = ranges[i - 1].joins(&ranges[i]) {
            ranges[i - 1].hi = ranges[i].hi;
            ranges[i - 1].width = width;
            ranges.remove(i);
        }
    }
}

/// Slurm's `hostlist_ranged_string` for one-dimensional names.
fn ranged_string(ranges: &[HostRange]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < ranges.len() {
        if i > 0 {
            out.push(',');
        }
        let first = &ranges[i];
        let bracket = first.count() > 1 || ranges.get(i + 1).is_some_and(|next| within_range(first, next));
        out.push_str(&first.prefix);
        if bracket {
            out.push('[');
        }
        let start = i;
        loop {
            if i > start {
                out.push(',');
            }
            let r = &ranges[i];
            if !r.single {
                out.push_str(&format!("{:0w$}", r.lo, w = r.width));
                if r.lo < r.hi {
                    out.push_str(&format!("-{:0w$}", r.hi, w = r.width));
                }
            }
            i += 1;
            if !(i < ranges.len() && within_range(&ranges[i], &ranges[i - 1])) {
                break;
            }
        }
        if bracket {
            out.push(']');
        }
    }
    out
}

/// Slurm's `strnatcmp` (Martin Pool's natural order): runs of digits compare by value, except
/// that a run starting with `0` compares digit by digit; blanks are skipped.
fn natural_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    let (mut ai, mut bi) = (0, 0);
    loop {
        while at(a, ai).is_ascii_whitespace() {
            ai += 1;
        }
        while at(b, bi).is_ascii_whitespace() {
            bi += 1;
        }
        let (ca, cb) = (at(a, ai), at(b, bi));
        if ca.is_ascii_digit() && cb.is_ascii_digit() {
            let result = if ca == b'0' || cb == b'0' {
                compare_left(&a[ai..], &b[bi..])
            } else {
                compare_right(&a[ai..], &b[bi..])
            };
            if result != Ordering::Equal {
                return result;
            }
        }
        if ca == 0 && cb == 0 {
            return Ordering::Equal;
        }
        match ca.cmp(&cb) {
            Ordering::Equal => {}
            other => return other,
        }
        ai += 1;
        bi += 1;
    }
}

/// Right-aligned numbers: the longer run wins, else the first differing digit.
fn compare_right(a: &[u8], b: &[u8]) -> Ordering {
    let mut bias = Ordering::Equal;
    for i in 0..=a.len().max(b.len()) {
        let (ca, cb) = (a.get(i).copied().unwrap_or(0), b.get(i).copied().unwrap_or(0));
        match (ca.is_ascii_digit(), cb.is_ascii_digit()) {
            (false, false) => return bias,
            (false, true) => return Ordering::Less,
            (true, false) => return Ordering::Greater,
            (true, true) => {
                if bias == Ordering::Equal {
                    bias = ca.cmp(&cb);
                }
            }
        }
    }
    bias
}

/// Left-aligned (fractional) numbers: the first differing digit wins.
fn compare_left(a: &[u8], b: &[u8]) -> Ordering {
    for i in 0..=a.len().max(b.len()) {
        let (ca, cb) = (a.get(i).copied().unwrap_or(0), b.get(i).copied().unwrap_or(0));
        match (ca.is_ascii_digit(), cb.is_ascii_digit()) {
            (false, false) => return Ordering::Equal,
            (false, true) => return Ordering::Less,
            (true, false) => return Ordering::Greater,
            (true, true) if ca != cb => return ca.cmp(&cb),
            (true, true) => {}
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_compares_numbers_by_value() {
        assert_eq!(natural_cmp(b"rack9_", b"rack10_"), Ordering::Less);
        assert_eq!(natural_cmp(b"a", b"a"), Ordering::Equal);
        assert_eq!(natural_cmp(b"a01", b"a1"), Ordering::Less);
        assert_eq!(natural_cmp(b"b", b"a"), Ordering::Greater);
    }

    #[test]
    fn widths_combine_as_slurm_does() {
        // 9 and 10 print the same whatever the width: compatible.
        assert_eq!(combined_width(9, 1, 10, 2), Some(1));
        // 09 and 9 differ in padding: never merged.
        assert_eq!(combined_width(9, 2, 9, 1), None);
        assert_eq!(combined_width(99, 2, 100, 3), Some(2));
        assert_eq!(combined_width(1, 1, 2, 2), None);
    }
}
