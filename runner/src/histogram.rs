//! A Prometheus-style histogram: fixed upper bounds, a count per bucket, the sum and the count
//! of what was observed. Not synchronised: the head's live in its state (under its lock), the
//! store's under a mutex of its own.

/// Seconds, from 10 µs to 10 s: scheduler passes, commits, and submit→start waits.
pub const SECONDS: [f64; 13] = [1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];
/// Counts (decisions in one pass).
pub const COUNTS: [f64; 8] = [0.0, 1.0, 2.0, 5.0, 10.0, 100.0, 1000.0, 10000.0];

/// Observations sorted into buckets.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative); the last is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (ascending).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram { bounds, counts: vec![0; bounds.len() + 1], sum: 0.0, count: 0 }
    }

    /// Counts one value.
    pub fn observe(&mut self, v: f64) {
        let i = self.bounds.iter().position(|b| v <= *b).unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    /// `(le, cumulative count)` per bucket, `+Inf` last (as `f64::INFINITY`), then the sum and
    /// the count.
    pub fn buckets(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let mut acc = 0;
        let les = self.bounds.iter().copied().chain([f64::INFINITY]);
        let cumulative = les
            .zip(&self.counts)
            .map(|(le, n)| {
                acc += n;
                (le, acc)
            })
            .collect();
        (cumulative, self.sum, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inclusive_of_their_bound() {
        let mut h = Histogram::new(&COUNTS);
        for v in [0.0, 1.0, 1.5, 20000.0] {
            h.observe(v);
        }
        let (b, sum, count) = h.buckets();
        assert_eq!(b[0], (0.0, 1));
        assert_eq!(b[1], (1.0, 2));
        assert_eq!(b[2], (2.0, 3));
        assert_eq!(b.last(), Some(&(f64::INFINITY, 4)));
        assert_eq!((sum, count), (20002.5, 4));
    }
}
