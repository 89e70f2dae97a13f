//! A small mutation fuzzer that runs on stable Rust, for the parsers that take outside input.
//!
//! Each target starts from seed inputs (real examples), mutates them (flip and set bytes,
//! insert words from the target's dictionary, delete, duplicate and splice ranges), and runs
//! the parser on each, catching panics. Inputs the parser accepts join the corpus (up to a
//! bound), so mutation goes on from structurally valid inputs: feedback without coverage
//! instrumentation. A panic fails the test, naming the input and saving it under
//! `target/fuzz-crashes/` to become a regression seed.
//!
//! `GANGWAY_FUZZ_SECS` sets each target's time (the suite's default is short);
//! `GANGWAY_FUZZ_SEED` replays a run (each run prints its seed).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// xorshift64*: small, fast and good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced: xorshift never leaves it).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// The most inputs a target's corpus keeps.
const MAX_CORPUS: usize = 512;
/// The longest input tried.
const MAX_LEN: usize = 4096;

/// What a run did.
#[derive(Debug)]
pub struct Report {
    /// Inputs run.
    pub runs: u64,
    /// Of those, accepted by the parser.
    pub accepted: u64,
    /// The corpus at the end.
    pub corpus: usize,
}

/// One mutation of `input`.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, dictionary: &[&[u8]], corpus: &[Vec<u8>]) {
    let pos = |rng: &mut Rng, v: &Vec<u8>| rng.below(v.len() + 1);
    match rng.below(8) {
        0 if !input.is_empty() => {
            let i = rng.below(input.len());
            input[i] ^= 1 << rng.below(8);
        }
        1 if !input.is_empty() => {
            let i = rng.below(input.len());
            // Interesting bytes: separators, digits, NUL, high bytes.
            const BYTES: &[u8] = b"\0\n\r\t ,:;=-_[]{}()%$*.+/\\'\"0123456789\xff\x80";
            input[i] = if rng.below(2) == 0 { BYTES[rng.below(BYTES.len())] } else { rng.next_u64() as u8 };
        }
        2 | 3 if !dictionary.is_empty() => {
            let word = dictionary[rng.below(dictionary.len())];
            let at = pos(rng, input);
            input.splice(at..at, word.iter().copied());
        }
        4 if !input.is_empty() => {
            let a = rng.below(input.len());
            let b = (a + 1 + rng.below(16)).min(input.len());
            input.drain(a..b);
        }
        5 if !input.is_empty() => {
            let a = rng.below(input.len());
            let b = (a + 1 + rng.below(32)).min(input.len());
            let piece: Vec<u8> = input[a..b].to_vec();
            let at = pos(rng, input);
            input.splice(at..at, piece);
        }
        6 if !corpus.is_empty() => {
            let other = &corpus[rng.below(corpus.len())];
            let cut = pos(rng, input);
            let from = rng.below(other.len() + 1);
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        _ => {
            let at = pos(rng, input);
            let n = 1 + rng.below(4);
            input.splice(at..at, (0..n).map(|_| rng.next_u64() as u8));
        }
    }
    input.truncate(MAX_LEN);
}

/// Fuzzes `target` (true: it accepted the input) for `GANGWAY_FUZZ_SECS` (else `default`)
/// from `seeds`, mutating with `dictionary`; panics naming the first input that made it panic.
pub fn fuzz(
    name: &str,
    seeds: &[&[u8]],
    dictionary: &[&[u8]],
    default: Duration,
    target: impl Fn(&[u8]) -> bool,
) -> Report {
    let secs = std::env::var("GANGWAY_FUZZ_SECS").ok().and_then(|s| s.parse::<f64>().ok());
    let budget = secs.map_or(default, Duration::from_secs_f64);
    let seed = std::env::var("GANGWAY_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("fuzz {name}: seed {seed} (GANGWAY_FUZZ_SEED replays it), {budget:?}");
    let mut rng = Rng::new(seed);
    let mut corpus: Vec<Vec<u8>> = seeds.iter().map(|s| s.to_vec()).collect();
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let run = |input: &[u8]| catch_unwind(AssertUnwindSafe(|| target(input)));
    // Panics are caught and reported once, with the input: not printed for every run.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut report = Report { runs: 0, accepted: 0, corpus: 0 };
    let deadline = Instant::now() + budget;
    let mut crash = None;
    // Every seed as it is, then mutations until the time is up.
    let mut pending: Vec<Vec<u8>> = corpus.clone();
    while crash.is_none() && (!pending.is_empty() || Instant::now() < deadline) {
        let input = pending.pop().unwrap_or_else(|| {
            let mut input = corpus[rng.below(corpus.len())].clone();
            for _ in 0..1 + rng.below(4) {
                mutate(&mut rng, &mut input, dictionary, &corpus);
            }
            input
        });
        report.runs += 1;
        match run(&input) {
            Ok(true) => {
                report.accepted += 1;
                if corpus.len() < MAX_CORPUS {
                    corpus.push(input);
                } else {
                    let i = rng.below(corpus.len());
                    corpus[i] = input;
                }
            }
            Ok(false) => {}
            Err(payload) => {
                let why = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                crash = Some((input, why));
            }
        }
    }
    std::panic::set_hook(hook);
    report.corpus = corpus.len();
    if let Some((input, why)) = crash {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-crashes");
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(format!("{name}-{seed}.bin"));
        let _ = std::fs::write(&file, &input);
        panic!(
            "fuzz {name}: the parser panicked ({why}) on {:?} (saved to {}; replay with GANGWAY_FUZZ_SEED={seed})",
            String::from_utf8_lossy(&input),
            file.display()
        );
    }
    eprintln!("fuzz {name}: {report:?}");
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_parser_is_caught_and_named() {
        let caught = std::panic::catch_unwind(|| {
            fuzz("demo", &[b"ab"], &[b"boom"], Duration::from_millis(500), |input| {
                if input.windows(4).any(|w| w == b"boom") {
                    panic!("found it");
                }
                true
            })
        });
        let msg = caught.unwrap_err().downcast::<String>().unwrap();
        assert!(msg.contains("fuzz demo: the parser panicked (found it)"), "{msg}");
    }

    #[test]
    fn seeds_run_first_and_accepted_inputs_grow_the_corpus() {
        let r = fuzz("grow", &[b"1", b"2"], &[b"3"], Duration::from_millis(50), |input| input.len() < 8);
        assert!(r.runs >= 2 && r.accepted >= 2 && r.corpus > 2, "{r:?}");
    }
}
