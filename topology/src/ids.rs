//! Lists of small ids (CPUs, NUMA nodes, GPUs, ranks, array indices) as Linux cpusets and
//! Slurm's bitmaps write them: `0-3,8,10-11`.

/// `ids` (in any order, repeats ignored) as ranges: `[0, 1, 2, 3, 8]` → `0-3,8`; none → ``.
pub fn compress_ids(ids: &[u32]) -> String {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { v[i].to_string() } else { format!("{}-{}", v[i], v[j]) });
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::compress_ids;

    #[test]
    fn ranges_of_ids() {
        for (ids, want) in [
            (&[0, 1, 2, 3, 8, 10, 11][..], "0-3,8,10-11"),
            (&[7, 5, 5, 6, 1], "1,5-7"),
            (&[5], "5"),
            (&[], ""),
            (&[u32::MAX - 1, u32::MAX], "4294967294-4294967295"),
        ] {
            assert_eq!(compress_ids(ids), want, "{ids:?}");
        }
    }
}
