//! `gangway topo`: a node's topology as a tree, a per-rank placement plan, or the gang a
//! request would take on a fabric.

use std::path::Path;

use anyhow::{bail, Context};
use gangway_topology::model::NodeTopology;
use gangway_topology::placement::{plan_ranks, PlacementRequest};

use super::table::render;

/// Where the topology comes from.
pub enum Source<'a> {
    /// This machine (hwloc, NVML, sysfs).
    Local,
    /// An hwloc XML file.
    Xml(&'a Path),
    /// An hwloc synthetic description.
    Synthetic(&'a str),
}

/// Loads the topology from `source`.
pub fn load(source: Source<'_>) -> anyhow::Result<NodeTopology> {
    Ok(match source {
        Source::Local => gangway_topology::hwloc::discover_local().context("discovering this machine's topology")?,
        Source::Xml(p) => gangway_topology::hwloc::from_xml_file(p)?,
        Source::Synthetic(s) => gangway_topology::hwloc::from_synthetic(s)?,
    })
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// `0,1,2,3,8` → `0-3,8`.
pub use gangway_topology::ids::compress_ids as compact;

/// The tree: packages → NUMA nodes → cores, with GPUs and NICs under their NUMA node.
pub fn tree(t: &NodeTopology) -> String {
    let mut s = format!(
        "Machine: {} packages, {} NUMA nodes, {} cores, {} PUs, {} GPUs, {} NICs, {} ({})\n",
        t.packages.len(),
        t.numa_nodes.len(),
        t.cores.len(),
        t.pu_count(),
        t.gpus.len(),
        t.nics.len(),
        gib(t.memory_bytes),
        t.source
    );
    let devices_of = |numa: Option<u32>, s: &mut String, indent: &str| {
        for g in t.gpus.iter().filter(|g| g.numa == numa) {
            let mem = g.memory_bytes.map(gib).unwrap_or_else(|| "memory unknown".into());
            let uuid = g.uuid.as_deref().unwrap_or("-");
            let sw = g.pcie_switch.as_deref().map(|b| format!(" via switch {b}")).unwrap_or_default();
            s.push_str(&format!("{indent}GPU {} {} {} ({mem}) pci {}{sw}\n", g.index, g.name, uuid, g.pci_bus_id));
        }
        for n in t.nics.iter().filter(|n| n.numa == numa) {
            let ports: Vec<String> = n
                .ports
                .iter()
                .map(|p| {
                    format!(
                        "{}:{:?}{}",
                        p.number,
                        p.link_layer,
                        p.state.as_deref().map(|s| format!(" {s}")).unwrap_or_default()
                    )
                })
                .collect();
            let pci = n.pci_bus_id.as_deref().unwrap_or("-");
            let sw = n.pcie_switch.as_deref().map(|b| format!(" via switch {b}")).unwrap_or_default();
            s.push_str(&format!("{indent}NIC {} ports [{}] pci {pci}{sw}\n", n.name, ports.join(", ")));
        }
    };
    for p in &t.packages {
        s.push_str(&format!("  Package {}\n", p.index));
        for numa in t.numa_nodes.iter().filter(|n| n.package == p.index) {
            let pus: Vec<u32> = numa.cores.iter().flat_map(|c| t.cores[*c as usize].pus.clone()).collect();
            s.push_str(&format!(
                "    NUMA {} (os {}, {}): cores {} PUs {}\n",
                numa.index,
                numa.os_index,
                gib(numa.memory_bytes),
                compact(&numa.cores),
                compact(&pus)
            ));
            for c in numa.cores.iter().filter_map(|c| t.cores.get(*c as usize)) {
                s.push_str(&format!("      Core {}: PUs {}\n", c.index, compact(&c.pus)));
            }
            devices_of(Some(numa.index), &mut s, "      ");
        }
    }
    let mut unplaced = String::new();
    devices_of(None, &mut unplaced, "    ");
    if !unplaced.is_empty() {
        s.push_str("  Devices without NUMA locality\n");
        s.push_str(&unplaced);
    }
    s
}

/// `--plan SPEC`: the per-rank table, or JSON.
pub fn plan(t: &NodeTopology, spec: &str, json: bool) -> anyhow::Result<String> {
    let req = PlacementRequest::parse(spec).map_err(|e| anyhow::anyhow!("--plan {spec}: {e}"))?;
    let p = plan_ranks(t, &req).map_err(|e| anyhow::anyhow!("cannot place {spec} on this node: {e}"))?;
    if json {
        return Ok(serde_json::to_string_pretty(&p)? + "\n");
    }
    let rows: Vec<Vec<String>> = p
        .ranks
        .iter()
        .map(|r| {
            vec![
                r.rank.to_string(),
                compact(&r.cpus),
                compact(&r.numa_nodes),
                if r.gpus.is_empty() { "-".into() } else { compact(&r.gpus) },
                if r.nics.is_empty() { "-".into() } else { r.nics.join(",") },
                r.env.get("CUDA_VISIBLE_DEVICES").cloned().unwrap_or_else(|| "-".into()),
                r.env.get("UCX_NET_DEVICES").cloned().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    Ok(render(&["RANK", "CPUS", "NUMA", "GPUS", "NICS", "CUDA_VISIBLE_DEVICES", "UCX_NET_DEVICES"], &rows))
}

/// Refuses option combinations that make no sense together.
pub fn check_sources(xml: bool, synthetic: bool, fabric: bool, plan: bool, gang: bool) -> anyhow::Result<()> {
    if xml && synthetic {
        bail!("--xml and --synthetic both name a topology; give one");
    }
    if gang && !fabric {
        bail!("--gang needs --fabric topology.conf");
    }
    if fabric && plan {
        bail!("--plan places ranks on one node; --fabric/--gang pick nodes: run them separately");
    }
    Ok(())
}

/// `--fabric topology.conf [--gang nodes=N[,max-leaves=K]]`: the switch tree, or the gang a
/// request would take on the empty fabric.
pub fn fabric(path: &Path, gang: Option<&str>, json: bool) -> anyhow::Result<String> {
    use gangway_topology::fabric::Fabric;
    use gangway_topology::gang::{explain_unsatisfiable, select_gang, FreeIndex, GangRequest, NodeSpec};
    use gangway_topology::hostlist::compress_hostlist;

    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let f = Fabric::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let Some(spec) = gang else {
        let mut s = format!("{} nodes, {} switches, {} levels\n", f.node_count(), f.switch_count(), f.levels());
        for sw in f.switches() {
            let names: Vec<String> = sw.nodes().filter_map(|n| f.node_name(n).map(str::to_owned)).collect();
            let below = if !sw.is_leaf() {
                let kids: Vec<String> =
                    sw.children().iter().filter_map(|c| f.switch(*c).map(|x| x.name().to_owned())).collect();
                format!("switches {}", kids.join(","))
            } else {
                format!("nodes {}", compress_hostlist(&names))
            };
            s.push_str(&format!(
                "{:indent$}{} (level {}): {below}\n",
                "",
                sw.name(),
                sw.level(),
                indent = 2 * sw.depth() as usize
            ));
        }
        return Ok(s);
    };
    let mut req = GangRequest::default();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .with_context(|| format!("--gang: '{item}' is not KEY=VALUE (nodes=N, max-leaves=K)"))?;
        let n: u32 = v.parse().with_context(|| format!("--gang: {k}={v} is not a number"))?;
        match k {
            "nodes" => req.nodes = n,
            "max-leaves" | "switches" => req.max_leaves = Some(n),
            other => bail!("--gang: unknown key '{other}' (accepted: nodes, max-leaves)"),
        }
    }
    if req.nodes == 0 {
        bail!("--gang needs nodes=N with N at least 1");
    }
    req.per_node.exclusive = true;
    let free = FreeIndex::uniform(&f, &NodeSpec::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(g) = select_gang(&f, &free, &req) else {
        bail!("no gang fits: {}", explain_unsatisfiable(&f, &free, &req));
    };
    let names: Vec<String> = g.nodes().iter().filter_map(|n| f.node_name(*n).map(str::to_owned)).collect();
    let top = g.top_switch().and_then(|s| f.switch(s)).map(|s| s.name().to_owned()).unwrap_or_else(|| "-".into());
    if json {
        let v = serde_json::json!({"nodes": names, "hostlist": compress_hostlist(&names), "leaves": g.leaf_count(), "top_switch": top});
        return Ok(format!("{v}\n"));
    }
    Ok(format!(
        "{} nodes: {}\nleaf switches: {}, lowest common switch: {top}\n",
        names.len(),
        compress_hostlist(&names),
        g.leaf_count()
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn compact_lists() {
        assert_eq!(super::compact(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(super::compact(&[5]), "5");
        assert_eq!(super::compact(&[]), "");
    }
}
