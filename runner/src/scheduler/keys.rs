//! Maps keyed by the scheduler's own numbers (node, task and pool keys, and shapes made of
//! them): they are integers handed out by the head, not chosen by users, so they hash through
//! one multiply instead of SipHash, which is most of a lookup's cost on the scheduler's hot
//! path.

use std::hash::{BuildHasherDefault, Hasher};

/// A hasher that passes an integer key through (mixed once, so sequential keys spread).
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A `HashMap` keyed by scheduler numbers.
pub type KeyMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<KeyHasher>>;
