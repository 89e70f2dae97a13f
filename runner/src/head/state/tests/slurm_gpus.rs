//! A multi-node Slurm job with GPUs: every node's start names that node's own GPUs.

use gangway_api::messages::HeadMessage;
use gangway_api::*;

use super::{slurm_request, Sim};

/// Node `name` joins pool `default` with these (index, model) GPUs.
fn gpu_node(sim: &mut Sim, name: &str, gpus: &[(u32, &str)]) {
    let mut resources = NodeResources { cpus: 4, cores: 4, memory_bytes: 1 << 30, ..Default::default() };
    for (index, model) in gpus {
        resources.gpus.push(gangway_topology::Gpu {
            index: *index,
            name: (*model).into(),
            uuid: format!("GPU-{name}-{index}"),
            pci_bus_id: String::new(),
        });
    }
    sim.join(name, "default", resources);
}

#[test]
fn each_node_of_a_gpu_gang_names_its_own_gpus() {
    let mut sim = Sim::new();
    let pool = PoolAddParameter {
        id: "default".into(),
        task_slots_per_node: Some(4),
        enable_inter_node_communication: true,
        ..Default::default()
    };
    sim.apply(|st, fx| st.add_pool(pool, fx)).unwrap();
    // node2's H100s are numbered after an A100 of its own.
    gpu_node(&mut sim, "node1", &[(0, "NVIDIA H100"), (1, "NVIDIA H100")]);
    gpu_node(&mut sim, "node2", &[(0, "NVIDIA A100"), (1, "NVIDIA H100"), (2, "NVIDIA H100")]);
    let mut req = slurm_request("default", r#","gpusPerTask":1,"gpuType":"h100""#);
    (req.nodes, req.ntasks) = (2, 2);
    sim.apply(|st, fx| st.slurm_submit(req, "127.0.0.1:1", fx)).unwrap();
    for (node, want) in [("node1", "0"), ("node2", "1")] {
        let rx = &mut sim.conns.get_mut(node).unwrap().0;
        let start = std::iter::from_fn(|| rx.try_recv().ok())
            .find_map(|m| match m {
                HeadMessage::StartTask(s) => Some(s),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{node} got no start"));
        let var = |k: &str| start.env.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(var("CUDA_VISIBLE_DEVICES").as_deref(), Some(want), "{node}");
        assert_eq!(var("SLURM_GPUS_ON_NODE").as_deref(), Some("1"), "{node}");
        assert_eq!(start.env.iter().filter(|(n, _)| n == "CUDA_VISIBLE_DEVICES").count(), 1, "{node}: set once");
    }
}
