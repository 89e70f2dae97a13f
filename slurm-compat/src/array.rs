//! Job array specifications (`--array`), as slurmctld's `_valid_array_inx` reads them.
//!
//! A comma-separated list of `N`, `N-M` and `N-M:STEP` (each optionally in brackets, as
//! `[1-3]`), then an optional `%LIMIT` on how many tasks run at once: `1,3,5-9:2%2`. Empty
//! elements are skipped (`1,,2`), duplicates collapse, and every index must be below
//! `MaxArraySize` (1001 by default, so 0..=1000). [`ArraySpec`]'s `Display` writes the canonical
//! form back (`1-3,7,9%2`).

use std::fmt;

use serde::Serialize;

/// Slurm's default `MaxArraySize`: indices run from 0 to 1000 (the head enforces it too).
pub use gangway_api::slurm::MAX_ARRAY_SIZE;
/// The largest `MaxArraySize` Slurm allows a site to configure.
pub const MAX_ARRAY_SIZE_LIMIT: u32 = 4_000_001;

/// A job array: which task indices exist, and how many may run at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArraySpec {
    /// The task indices, ascending, without duplicates.
    pub indices: Vec<u32>,
    /// The `%LIMIT`, if given.
    pub max_running: Option<u32>,
}

/// Why an `--array` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArrayError {
    /// An element that is not `N`, `N-M` or `N-M:STEP`.
    #[error("invalid array element `{element}`: expected N, N-M or N-M:STEP")]
    Element {
        /// The element as written.
        element: String,
    },
    /// `N-M` with `M < N`.
    #[error("array range `{element}` goes backwards")]
    Backwards {
        /// The element as written.
        element: String,
    },
    /// A step of zero.
    #[error("array step in `{element}` must be at least 1")]
    Step {
        /// The element as written.
        element: String,
    },
    /// An index at or above `MaxArraySize`.
    #[error("array index {index} is above the largest allowed, {largest} (MaxArraySize - 1)")]
    TooLarge {
        /// The offending index.
        index: u64,
        /// The largest index allowed.
        largest: u32,
    },
    /// `%` not followed by a positive number.
    #[error("invalid array task limit `%{limit}`: expected a positive number")]
    Limit {
        /// What followed the `%`.
        limit: String,
    },
    /// No index at all (`""`, `","`).
    #[error("array specification `{spec}` names no task")]
    Empty {
        /// The specification as written.
        spec: String,
    },
}

/// Parses an `--array` value under Slurm's default `MaxArraySize`.
pub fn parse_array(spec: &str) -> Result<ArraySpec, ArrayError> {
    parse_array_with_max(spec, MAX_ARRAY_SIZE)
}

/// Parses an `--array` value; every index must be below `max_array_size` (itself capped at
/// [`MAX_ARRAY_SIZE_LIMIT`], as in Slurm).
pub fn parse_array_with_max(spec: &str, max_array_size: u32) -> Result<ArraySpec, ArrayError> {
    let max_array_size = max_array_size.min(MAX_ARRAY_SIZE_LIMIT);
    let (list, max_running) = match spec.split_once('%') {
        Some((list, limit)) => match limit.parse::<u32>() {
            Ok(n) if n > 0 && limit.bytes().all(|b| b.is_ascii_digit()) => (list, Some(n)),
            _ => return Err(ArrayError::Limit { limit: limit.to_string() }),
        },
        None => (spec, None),
    };
    // A bitmap, as Slurm keeps it: bounded by MaxArraySize whatever the spec repeats.
    let mut present: Vec<bool> = Vec::new();
    for element in list.split(',').filter(|e| !e.is_empty()) {
        let (first, last, step) = parse_element(element, max_array_size)?;
        if present.len() <= last as usize {
            present.resize(last as usize + 1, false);
        }
        if step == 1 {
            present[first as usize..=last as usize].fill(true);
        } else {
            for index in (first..=last).step_by(step as usize) {
                present[index as usize] = true;
            }
        }
    }
    let indices: Vec<u32> = (0u32..).zip(&present).filter(|(_, &p)| p).map(|(i, _)| i).collect();
    if indices.is_empty() {
        return Err(ArrayError::Empty { spec: spec.to_string() });
    }
    Ok(ArraySpec { indices, max_running })
}

/// `first`, `last` (inclusive) and `step` of one element, all checked.
fn parse_element(element: &str, max_array_size: u32) -> Result<(u32, u32, u32), ArrayError> {
    let bad = || ArrayError::Element { element: element.to_string() };
    // Slurm strips one `[` before the first number and one `]` after each number.
    let body = element.strip_prefix('[').unwrap_or(element);
    let (range, step) = match body.split_once(':') {
        Some((range, step)) => (range, Some(unbracket(step))),
        None => (body, None),
    };
    let (first, last) = match range.split_once('-') {
        Some((first, last)) => (number(unbracket(first)).ok_or_else(bad)?, number(unbracket(last)).ok_or_else(bad)?),
        None if step.is_some() => return Err(bad()),
        None => {
            let n = number(unbracket(range)).ok_or_else(bad)?;
            (n, n)
        }
    };
    let step = match step {
        Some(s) => number(s).ok_or_else(bad)?,
        None => 1,
    };
    if step == 0 {
        return Err(ArrayError::Step { element: element.to_string() });
    }
    if last < first {
        return Err(ArrayError::Backwards { element: element.to_string() });
    }
    if last >= u64::from(max_array_size) {
        return Err(ArrayError::TooLarge { index: last, largest: max_array_size.saturating_sub(1) });
    }
    let step = u32::try_from(step).unwrap_or(u32::MAX);
    Ok((first as u32, last as u32, step))
}

fn unbracket(s: &str) -> &str {
    s.strip_suffix(']').unwrap_or(s)
}

/// Decimal digits only; `None` for anything else or an overflow.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl ArraySpec {
    /// The smallest index (`SLURM_ARRAY_TASK_MIN`).
    pub fn min(&self) -> u32 {
        self.indices.first().copied().unwrap_or(0)
    }

    /// The largest index (`SLURM_ARRAY_TASK_MAX`).
    pub fn max(&self) -> u32 {
        self.indices.last().copied().unwrap_or(0)
    }

    /// The common difference of the indices, 1 when they are not evenly spaced
    /// (`SLURM_ARRAY_TASK_STEP`).
    pub fn step(&self) -> u32 {
        let mut steps = self.indices.windows(2).map(|w| w[1] - w[0]);
        match steps.next() {
            Some(first) if steps.all(|s| s == first) => first,
            _ => 1,
        }
    }
}

impl fmt::Display for ArraySpec {
    /// The canonical form: runs of consecutive indices as `N-M`, others alone, then `%LIMIT`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut i = 0;
        while i < self.indices.len() {
            let mut j = i;
            while j + 1 < self.indices.len() && self.indices[j + 1] == self.indices[j] + 1 {
                j += 1;
            }
            if i > 0 {
                f.write_str(",")?;
            }
            if j > i {
                write!(f, "{}-{}", self.indices[i], self.indices[j])?;
            } else {
                write!(f, "{}", self.indices[i])?;
            }
            i = j + 1;
        }
        if let Some(limit) = self.max_running {
            write!(f, "%{limit}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, indices: &[u32], max_running: Option<u32>) {
        let got = parse_array(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(got, ArraySpec { indices: indices.to_vec(), max_running }, "input {input:?}");
    }

    fn check_err(input: &str) {
        assert!(parse_array(input).is_err(), "{input:?} should be rejected, got {:?}", parse_array(input));
    }

    #[test]
    fn lists_ranges_steps_limits() {
        check("1-3", &[1, 2, 3], None);
        check("5", &[5], None);
        check("0", &[0], None);
        check("1,3,5", &[1, 3, 5], None);
        check("1-10:2", &[1, 3, 5, 7, 9], None);
        check("0-15:4", &[0, 4, 8, 12], None);
        check("0-15%4", &(0..=15).collect::<Vec<_>>(), Some(4));
        check("1-3,7,10-12:2%1", &[1, 2, 3, 7, 10, 12], Some(1));
        check("3,1,2,2", &[1, 2, 3], None); // sorted, duplicates collapse
        check("1,,2,", &[1, 2], None); // empty elements skipped, as strtok does
        check("[1-3]", &[1, 2, 3], None);
        check("[1-5]:2", &[1, 3, 5], None);
        check("0-1000", &(0..=1000).collect::<Vec<_>>(), None);
        check("7-7", &[7], None);
        check("1-2:100", &[1], None);
    }

    #[test]
    fn malformed() {
        for bad in [
            "5-1",
            "1-1001",
            "1001",
            "-1",
            "a",
            "1-",
            "-5",
            "1-3:0",
            "1-3:",
            "5:2",
            "1-3%0",
            "1-3%",
            "1-3%x",
            "1-3%-1",
            "",
            ",",
            "%2",
            "1 2",
            " 1",
            "1.5",
            "1-3:2:1",
            "99999999999999999999",
            "1-2-3",
        ] {
            check_err(bad);
        }
    }

    #[test]
    fn errors_say_why() {
        assert_eq!(parse_array("5-1").unwrap_err(), ArrayError::Backwards { element: "5-1".into() });
        assert_eq!(parse_array("0-1001").unwrap_err(), ArrayError::TooLarge { index: 1001, largest: 1000 });
        assert_eq!(parse_array("1-3%0").unwrap_err(), ArrayError::Limit { limit: "0".into() });
    }

    #[test]
    fn site_max_array_size() {
        let spec = parse_array_with_max("1000-1439%100", 10_001).unwrap();
        assert_eq!((spec.indices.len(), spec.max_running), (440, Some(100)));
        assert!(parse_array("1000-1439%100").is_err());
        assert!(parse_array_with_max("0", 0).is_err());
    }

    #[test]
    fn canonical_form_and_summary() {
        let spec = parse_array("1-10:3,11,12%2").unwrap();
        assert_eq!(spec.to_string(), "1,4,7,10-12%2");
        assert_eq!((spec.min(), spec.max(), spec.step()), (1, 12, 1));
        let spec = parse_array("1-3").unwrap();
        assert_eq!((spec.min(), spec.max(), spec.step()), (1, 3, 1));
        assert_eq!(parse_array("0-20:5").unwrap().step(), 5);
        assert_eq!(parse_array("4").unwrap().step(), 1);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics(s in ".{0,32}") {
            let _ = parse_array(&s);
        }

        #[test]
        fn never_panics_on_near_misses(s in "[0-9,:%\\-\\[\\]]{0,24}") {
            let _ = parse_array(&s);
        }

        #[test]
        fn canonical_form_round_trips(set in proptest::collection::btree_set(0u32..MAX_ARRAY_SIZE, 1..64), limit in proptest::option::of(1u32..100)) {
            let spec = ArraySpec { indices: set.into_iter().collect(), max_running: limit };
            prop_assert_eq!(parse_array(&spec.to_string()), Ok(spec));
        }

        #[test]
        fn ranges_match_arithmetic(first in 0u32..1000, len in 0u32..200, step in 1u32..50) {
            let last = (first + len).min(MAX_ARRAY_SIZE - 1);
            let spec = parse_array(&format!("{first}-{last}:{step}")).unwrap();
            let want: Vec<u32> = (first..=last).step_by(step as usize).collect();
            prop_assert_eq!(spec.indices, want);
        }
    }
}
