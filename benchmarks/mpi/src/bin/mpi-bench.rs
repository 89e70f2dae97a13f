//! `mpi-bench [--iterations N]`: ping-pong latency and bandwidth between ranks 0 and 1, then
//! allreduce time over all ranks, for messages of 1 B to 4 MiB in powers of 4. Rank 0 prints one
//! JSON line per measurement.

use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use serde_json::json;
use std::process::ExitCode;

/// Message sizes in bytes: 1, 4, 16, …, 4 MiB.
fn sizes() -> impl Iterator<Item = usize> {
    (0..=11).map(|k| 1usize << (2 * k))
}

const USAGE: &str = "usage: mpi-bench [--iterations N]   (N ≥ 1, default 100)";

fn main() -> ExitCode {
    let iterations = match parse_iterations(std::env::args().skip(1)) {
        Ok(Some(n)) => n,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("mpi-bench: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Some(universe) = mpi::initialize() else {
        eprintln!("mpi-bench: MPI_Init failed");
        return ExitCode::FAILURE;
    };
    let world = universe.world();
    // Warm-up rounds before each timed run: first-touch of buffers, connection set-up.
    let warmup = (iterations / 10).max(1);
    if world.size() < 2 {
        if world.rank() == 0 {
            println!("{}", json!({ "test": "pingpong", "skipped": "needs at least 2 ranks" }));
        }
    } else {
        for bytes in sizes() {
            ping_pong(&world, bytes, warmup);
            let seconds = ping_pong(&world, bytes, iterations);
            if world.rank() == 0 {
                let one_way = seconds / (2.0 * iterations as f64);
                println!(
                    "{}",
                    json!({
                        "test": "pingpong",
                        "bytes": bytes,
                        "iterations": iterations,
                        "latency_us": one_way * 1e6,
                        "bandwidth_mb_s": bytes as f64 / one_way / 1e6,
                    })
                );
            }
        }
    }
    for bytes in sizes() {
        all_reduce(&world, bytes, warmup);
        let seconds = all_reduce(&world, bytes, iterations);
        // The slowest rank's time is the collective's time.
        let mut slowest = 0.0f64;
        world.all_reduce_into(&seconds, &mut slowest, SystemOperation::max());
        if world.rank() == 0 {
            println!(
                "{}",
                json!({
                    "test": "allreduce",
                    "bytes": bytes,
                    "ranks": world.size(),
                    "iterations": iterations,
                    "time_us": slowest / iterations as f64 * 1e6,
                })
            );
        }
    }
    ExitCode::SUCCESS
}

/// The iteration count from the command line; `None` when help was asked for.
fn parse_iterations(mut args: impl Iterator<Item = String>) -> Result<Option<usize>, String> {
    let mut iterations = 100;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--iterations" | "-n" => {
                let value = args.next().ok_or("--iterations needs a value")?;
                iterations = match value.parse() {
                    Ok(n) if n >= 1 => n,
                    _ => return Err(format!("--iterations: {value:?} is not a whole number ≥ 1")),
                };
            }
            "--help" | "-h" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(iterations))
}

/// Ranks 0 and 1 bounce a `bytes`-long message `rounds` times; returns rank 0's elapsed seconds
/// (other ranks wait at the barrier and return 0).
fn ping_pong(world: &SimpleCommunicator, bytes: usize, rounds: usize) -> f64 {
    let mut buf = vec![0u8; bytes];
    world.barrier();
    let start = mpi::time();
    match world.rank() {
        0 => {
            let peer = world.process_at_rank(1);
            for _ in 0..rounds {
                peer.send(&buf[..]);
                peer.receive_into(&mut buf[..]);
            }
        }
        1 => {
            let peer = world.process_at_rank(0);
            for _ in 0..rounds {
                peer.receive_into(&mut buf[..]);
                peer.send(&buf[..]);
            }
        }
        _ => {}
    }
    let elapsed = mpi::time() - start;
    world.barrier();
    if world.rank() == 0 {
        elapsed
    } else {
        0.0
    }
}

/// `rounds` allreduces (sum) of a `bytes`-long buffer; returns this rank's elapsed seconds.
fn all_reduce(world: &SimpleCommunicator, bytes: usize, rounds: usize) -> f64 {
    let send = vec![1u8; bytes];
    let mut recv = vec![0u8; bytes];
    world.barrier();
    let start = mpi::time();
    for _ in 0..rounds {
        world.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum());
    }
    mpi::time() - start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<usize>, String> {
        parse_iterations(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        assert_eq!(parse(&[]), Ok(Some(100)));
        assert_eq!(parse(&["--iterations", "7"]), Ok(Some(7)));
        assert_eq!(parse(&["--help"]), Ok(None));
        assert!(parse(&["--iterations", "0"]).is_err());
        assert!(parse(&["--iterations"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }

    #[test]
    fn sizes_are_powers_of_four_up_to_4_mib() {
        let all: Vec<usize> = sizes().collect();
        assert_eq!(all.first(), Some(&1));
        assert_eq!(all.last(), Some(&(4 << 20)));
        assert!(all.windows(2).all(|w| w[1] == 4 * w[0]));
    }
}
