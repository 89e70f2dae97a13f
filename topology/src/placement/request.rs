//! What a caller asks of [`plan_ranks`](super::plan_ranks), and its `key=value,…` text form
//! (`gangway topo --plan ranks=8,gpus-per-rank=1`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The keys [`PlacementRequest::parse`] accepts, for error messages.
const KEYS: &str = "ranks, cpus-per-rank, gpus-per-rank, bind, gpu-bind, reserve-cores-per-socket, reserve-from, omp";

/// How each rank's CPUs are bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuBind {
    /// Whole cores (all their PUs); SMT siblings are split only when ranks outnumber cores.
    #[default]
    Cores,
    /// Individual PUs (hardware threads); `cpus-per-rank` counts PUs.
    Threads,
    /// Every usable PU of the rank's NUMA domain(s), shared with the other ranks there.
    Numa,
    /// No binding: every PU of the node; GPUs and NICs are still chosen.
    None,
}

/// How GPUs are made visible to each rank (`CUDA_VISIBLE_DEVICES`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuBind {
    /// Only the rank's own GPUs are visible (strict).
    #[default]
    Closest,
    /// All the plan's GPUs are visible, the rank's own first, so CUDA IPC between ranks works.
    Shared,
    /// `CUDA_VISIBLE_DEVICES` is left alone; the plan still names each rank's GPUs.
    None,
}

/// Which end of each package `reserve_cores_per_socket` takes its cores from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReserveFrom {
    /// The highest-numbered cores of each package.
    #[default]
    Last,
    /// The lowest-numbered cores (core 0 is where many kernels route interrupts).
    First,
}

/// What to place on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementRequest {
    /// Ranks on this node.
    pub ranks: u32,
    /// Cores per rank (PUs with `cpu_bind = threads`); `None` splits all usable CPUs evenly.
    #[serde(default)]
    pub cpus_per_rank: Option<u32>,
    /// GPUs per rank; 0 for none.
    #[serde(default)]
    pub gpus_per_rank: u32,
    /// CPU binding.
    #[serde(default)]
    pub cpu_bind: CpuBind,
    /// GPU visibility.
    #[serde(default)]
    pub gpu_bind: GpuBind,
    /// Cores of each package kept free for system daemons.
    #[serde(default)]
    pub reserve_cores_per_socket: u32,
    /// Which cores of a package are kept free.
    #[serde(default)]
    pub reserve_from: ReserveFrom,
    /// Whether to set `OMP_NUM_THREADS`, `OMP_PLACES` and `OMP_PROC_BIND`.
    #[serde(default = "default_omp")]
    pub omp: bool,
}

fn default_omp() -> bool {
    true
}

/// Why a `key=value,…` placement request could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestParseError {
    /// An item without `=`.
    #[error("`{item}` is not key=value (accepted keys: {keys})", keys = KEYS)]
    NotKeyValue {
        /// The item as written.
        item: String,
    },
    /// A key this parser does not know.
    #[error("unknown key `{key}` (accepted: {keys})", keys = KEYS)]
    UnknownKey {
        /// The key as written.
        key: String,
    },
    /// The same key twice.
    #[error("`{key}` is given twice")]
    DuplicateKey {
        /// The key.
        key: &'static str,
    },
    /// A value the key does not accept.
    #[error("bad value `{value}` for `{key}` (accepted: {accepted})")]
    BadValue {
        /// The key.
        key: &'static str,
        /// The value as written.
        value: String,
        /// What the key accepts.
        accepted: &'static str,
    },
    /// No `ranks=`.
    #[error("`ranks` is required (e.g. ranks=8)")]
    MissingRanks,
}

impl PlacementRequest {
    /// `ranks` ranks with every other setting at its default (cores, closest, no reservation).
    pub fn new(ranks: u32) -> Self {
        PlacementRequest {
            ranks,
            cpus_per_rank: None,
            gpus_per_rank: 0,
            cpu_bind: CpuBind::Cores,
            gpu_bind: GpuBind::Closest,
            reserve_cores_per_socket: 0,
            reserve_from: ReserveFrom::Last,
            omp: true,
        }
    }

    /// Reads `ranks=8,gpus-per-rank=1,cpus-per-rank=4,bind=cores,gpu-bind=closest`.
    pub fn parse(s: &str) -> Result<Self, RequestParseError> {
        let mut req = PlacementRequest::new(0);
        let mut seen: Vec<&'static str> = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let Some((key, value)) = item.split_once('=') else {
                return Err(RequestParseError::NotKeyValue { item: item.to_string() });
            };
            let (key, value) = (key.trim(), value.trim());
            let key: &'static str = match key {
                "ranks" => "ranks",
                "cpus-per-rank" => "cpus-per-rank",
                "gpus-per-rank" => "gpus-per-rank",
                "bind" => "bind",
                "gpu-bind" => "gpu-bind",
                "reserve-cores-per-socket" => "reserve-cores-per-socket",
                "reserve-from" => "reserve-from",
                "omp" => "omp",
                other => return Err(RequestParseError::UnknownKey { key: other.to_string() }),
            };
            if seen.contains(&key) {
                return Err(RequestParseError::DuplicateKey { key });
            }
            seen.push(key);
            let bad = |accepted| RequestParseError::BadValue { key, value: value.to_string(), accepted };
            match key {
                "ranks" => req.ranks = value.parse().ok().filter(|&n| n > 0).ok_or_else(|| bad("an integer ≥ 1"))?,
                "cpus-per-rank" => {
                    req.cpus_per_rank = match value {
                        "all" => None,
                        v => Some(v.parse().ok().filter(|&n| n > 0).ok_or_else(|| bad("an integer ≥ 1, or all"))?),
                    }
                }
                "gpus-per-rank" => req.gpus_per_rank = value.parse().map_err(|_| bad("an integer ≥ 0"))?,
                "bind" => req.cpu_bind = value.parse().map_err(|_| bad("cores, threads, numa, none"))?,
                "gpu-bind" => req.gpu_bind = value.parse().map_err(|_| bad("closest, shared, none"))?,
                "reserve-cores-per-socket" => {
                    req.reserve_cores_per_socket = value.parse().map_err(|_| bad("an integer ≥ 0"))?
                }
                "reserve-from" => req.reserve_from = value.parse().map_err(|_| bad("last, first"))?,
                _ => {
                    req.omp = match value {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad("true, false")),
                    }
                }
            }
        }
        if req.ranks == 0 {
            return Err(RequestParseError::MissingRanks);
        }
        Ok(req)
    }
}

impl FromStr for PlacementRequest {
    type Err = RequestParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PlacementRequest::parse(s)
    }
}

/// Every key, so that parsing the text gives the same request back.
impl fmt::Display for PlacementRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ranks={},cpus-per-rank=", self.ranks)?;
        match self.cpus_per_rank {
            Some(n) => write!(f, "{n}")?,
            None => f.write_str("all")?,
        }
        write!(
            f,
            ",gpus-per-rank={},bind={},gpu-bind={},reserve-cores-per-socket={},reserve-from={},omp={}",
            self.gpus_per_rank,
            self.cpu_bind,
            self.gpu_bind,
            self.reserve_cores_per_socket,
            self.reserve_from,
            self.omp
        )
    }
}

/// Implements `Display` and `FromStr` for a keyword enum; `FromStr`'s error is the bad word.
macro_rules! keywords {
    ($ty:ty { $($variant:ident = $word:literal),+ $(,)? }) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $(<$ty>::$variant => $word),+ })
            }
        }

        impl FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok(<$ty>::$variant),)+
                    other => Err(other.to_string()),
                }
            }
        }
    };
}

keywords!(CpuBind { Cores = "cores", Threads = "threads", Numa = "numa", None = "none" });
keywords!(GpuBind { Closest = "closest", Shared = "shared", None = "none" });
keywords!(ReserveFrom { Last = "last", First = "first" });
