//! `mpi-probe`: every rank reports where it runs and what binding the kernel applied; rank 0
//! gathers the reports over MPI and prints one JSON line per rank, in rank order, then
//! `{"allreduce_sum": N}` with the allreduce of rank+1 (N = size·(size+1)/2 when MPI works).

use gangway_mpi_programs::{allowed_cpus, cpu_list_string, current_cpu_and_node, host_name, mem_policy};
use mpi::datatype::PartitionMut;
use mpi::traits::*;
use mpi::Count;
use serde_json::{json, Value};
use std::process::ExitCode;

/// Environment variables a launcher sets for a rank; reported as strings, or null when unset.
const REPORTED_ENV: [&str; 5] =
    ["CUDA_VISIBLE_DEVICES", "UCX_NET_DEVICES", "GANGWAY_RANK", "GANGWAY_LOCAL_RANK", "PMI_RANK"];

fn main() -> ExitCode {
    let Some(universe) = mpi::initialize() else {
        eprintln!("mpi-probe: MPI_Init failed");
        return ExitCode::FAILURE;
    };
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    // The local rank from MPI itself (ranks sharing memory with this one), not from a launcher's
    // variables: that is what the tests compare the launcher's GANGWAY_LOCAL_RANK against.
    let node_comm = world.split_shared(rank);
    let report = rank_report(rank, size, node_comm.rank(), node_comm.size()).to_string();

    let root = world.process_at_rank(0);
    let bytes = report.as_bytes();
    let len = bytes.len() as Count;
    if rank == 0 {
        let mut lens = vec![0 as Count; size as usize];
        root.gather_into_root(&len, &mut lens[..]);
        let displs: Vec<Count> = lens
            .iter()
            .scan(0, |offset, &n| {
                let at = *offset;
                *offset += n;
                Some(at)
            })
            .collect();
        let mut all = vec![0u8; lens.iter().map(|&n| n as usize).sum()];
        {
            let mut partition = PartitionMut::new(&mut all[..], &lens[..], &displs[..]);
            root.gather_varcount_into_root(bytes, &mut partition);
        }
        for (&at, &n) in displs.iter().zip(&lens) {
            println!("{}", String::from_utf8_lossy(&all[at as usize..(at + n) as usize]));
        }
    } else {
        root.gather_into(&len);
        root.gather_varcount_into(bytes);
    }

    let mut sum: i64 = 0;
    world.all_reduce_into(&(i64::from(rank) + 1), &mut sum, mpi::collective::SystemOperation::sum());
    if rank == 0 {
        println!("{}", json!({ "allreduce_sum": sum }));
    }
    ExitCode::SUCCESS
}

/// This rank's report; a kernel call that fails is reported as `{"error": …}` in its field.
fn rank_report(rank: i32, size: i32, local_rank: i32, local_size: i32) -> Value {
    let cpus = allowed_cpus();
    let (cpu, numa_node) = match current_cpu_and_node() {
        Ok((cpu, node)) => (json!(cpu), json!(node)),
        Err(e) => (json!({ "error": e.to_string() }), Value::Null),
    };
    let env: serde_json::Map<String, Value> = REPORTED_ENV
        .iter()
        .map(|&name| (name.to_string(), std::env::var(name).map_or(Value::Null, Value::from)))
        .collect();
    json!({
        "host": host_name(),
        "rank": rank,
        "size": size,
        "local_rank": local_rank,
        "local_size": local_size,
        "pid": std::process::id(),
        "cpus": match &cpus { Ok(c) => json!(c), Err(e) => json!({ "error": e.to_string() }) },
        "cpu_list": cpus.as_ref().map(|c| cpu_list_string(c)).unwrap_or_default(),
        "cpu": cpu,
        "numa_node": numa_node,
        "mempolicy": match mem_policy() {
            Ok(p) => json!({ "mode": p.mode, "flags": p.flags, "nodes": p.nodes }),
            Err(e) => json!({ "error": e.to_string() }),
        },
        "env": env,
    })
}
