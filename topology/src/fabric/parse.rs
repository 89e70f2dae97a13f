//! Reading `topology.conf`: one record per line, `Key=Value` pairs separated by blanks, keys in
//! any case, `#` to the end of the line is a comment (`\#` is a literal `#`), and a line ending
//! in `\` continues on the next. Errors carry the number of the line the record starts on.

use std::collections::HashMap;

use crate::hostlist::{expand_hostlist, HostlistError};

/// Why a `topology.conf` could not be read; every variant names the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FabricError {
    /// A word without `=`.
    #[error("line {line}: expected Key=Value, found `{token}`")]
    NotKeyValue {
        /// Line number (from 1).
        line: usize,
        /// The word.
        token: String,
    },
    /// A key that `topology.conf` does not have.
    #[error(
        "line {line}: unknown key `{key}` (expected SwitchName, Switches, Nodes, LinkSpeed, BlockName or BlockSizes)"
    )]
    UnknownKey {
        /// Line number (from 1).
        line: usize,
        /// The key as written.
        key: String,
    },
    /// A line that does not start with `SwitchName=`, `BlockName=` or `BlockSizes=`.
    #[error("line {line}: a line starts with SwitchName=, BlockName= or BlockSizes=, not `{key}=`")]
    NoRecordName {
        /// Line number (from 1).
        line: usize,
        /// The first key.
        key: String,
    },
    /// A known key on the wrong kind of line (`Switches=` on a `BlockName=` line).
    #[error("line {line}: `{key}=` does not belong on a {record} line")]
    MisplacedKey {
        /// Line number (from 1).
        line: usize,
        /// The key as written.
        key: String,
        /// `SwitchName`, `BlockName` or `BlockSizes`.
        record: &'static str,
    },
    /// The same key twice on one line.
    #[error("line {line}: `{key}=` given twice")]
    DuplicateKey {
        /// Line number (from 1).
        line: usize,
        /// The key as written the second time.
        key: String,
    },
    /// `Key=` with nothing after it.
    #[error("line {line}: `{key}=` has no value")]
    EmptyValue {
        /// Line number (from 1).
        line: usize,
        /// The key.
        key: String,
    },
    /// A `Nodes=` or `Switches=` value that is not a valid hostlist.
    #[error("line {line}: {key}=: {source}")]
    Hostlist {
        /// Line number (from 1).
        line: usize,
        /// `Nodes` or `Switches`.
        key: String,
        /// What is wrong with it.
        #[source]
        source: HostlistError,
    },
    /// `LinkSpeed=` that is not a whole number.
    #[error("line {line}: LinkSpeed `{value}` is not a whole number")]
    BadLinkSpeed {
        /// Line number (from 1).
        line: usize,
        /// The value.
        value: String,
    },
    /// `BlockSizes=` that is not a comma-separated list of positive whole numbers.
    #[error("line {line}: BlockSizes `{value}` is not a list of positive whole numbers")]
    BadBlockSizes {
        /// Line number (from 1).
        line: usize,
        /// The value.
        value: String,
    },
    /// `BlockSizes=` on two lines.
    #[error("line {line}: BlockSizes given twice (first on line {first_line})")]
    BlockSizesTwice {
        /// Line number (from 1).
        line: usize,
        /// Where it was first given.
        first_line: usize,
    },
    /// A switch with neither `Nodes=` nor `Switches=` (or with an empty list).
    #[error("line {line}: switch `{switch}` has neither Nodes= nor Switches=")]
    NoChildren {
        /// Line number (from 1).
        line: usize,
        /// The switch.
        switch: String,
    },
    /// A switch with both `Nodes=` and `Switches=`.
    #[error(
        "line {line}: switch `{switch}` has both Nodes= and Switches=; a switch is a leaf or above switches, not both"
    )]
    NodesAndSwitches {
        /// Line number (from 1).
        line: usize,
        /// The switch.
        switch: String,
    },
    /// Two `SwitchName=` lines with the same name.
    #[error("line {line}: switch `{switch}` defined twice (first on line {first_line})")]
    SwitchDefinedTwice {
        /// Line number (from 1) of the second definition.
        line: usize,
        /// The switch.
        switch: String,
        /// Line of the first definition.
        first_line: usize,
    },
    /// A node listed under two leaf switches.
    #[error("line {line}: node `{node}` is under two leaf switches: `{switch}` and `{other}` (line {other_line})")]
    NodeUnderTwoLeaves {
        /// Line number (from 1) of the second leaf.
        line: usize,
        /// The node.
        node: String,
        /// The second leaf.
        switch: String,
        /// The first leaf.
        other: String,
        /// Line of the first leaf.
        other_line: usize,
    },
    /// A switch or block listing the same node or switch twice.
    #[error("line {line}: `{name}` lists `{item}` twice")]
    ListedTwice {
        /// Line number (from 1).
        line: usize,
        /// The switch or block.
        name: String,
        /// The node or switch listed twice.
        item: String,
    },
    /// `Switches=` naming a switch no line defines.
    #[error("line {line}: switch `{switch}` references unknown switch `{child}`")]
    UnknownSwitch {
        /// Line number (from 1).
        line: usize,
        /// The referencing switch.
        switch: String,
        /// The unknown name.
        child: String,
    },
    /// A switch listed under two switches (the fabric must be a tree).
    #[error("line {line}: switch `{child}` is under two switches: `{switch}` and `{other}` (line {other_line})")]
    SwitchUnderTwoParents {
        /// Line number (from 1) of the second parent.
        line: usize,
        /// The switch listed twice.
        child: String,
        /// The second parent.
        switch: String,
        /// The first parent.
        other: String,
        /// Line of the first parent.
        other_line: usize,
    },
    /// Switches that are (directly or not) below themselves.
    #[error("line {line}: switches form a cycle: {cycle}")]
    Cycle {
        /// Line number (from 1) of the first switch of the cycle.
        line: usize,
        /// The cycle, `a -> b -> a`.
        cycle: String,
    },
    /// Two `BlockName=` lines with the same name.
    #[error("line {line}: block `{block}` defined twice (first on line {first_line})")]
    BlockDefinedTwice {
        /// Line number (from 1) of the second definition.
        line: usize,
        /// The block.
        block: String,
        /// Line of the first definition.
        first_line: usize,
    },
    /// A node in two blocks.
    #[error("line {line}: node `{node}` is in two blocks: `{block}` and `{other}` (line {other_line})")]
    NodeInTwoBlocks {
        /// Line number (from 1) of the second block.
        line: usize,
        /// The node.
        node: String,
        /// The second block.
        block: String,
        /// The first block.
        other: String,
        /// Line of the first block.
        other_line: usize,
    },
    /// A block node that no leaf switch lists, in a file that has switches.
    #[error("line {line}: node `{node}` of block `{block}` is under no leaf switch")]
    BlockNodeNotInTree {
        /// Line number (from 1).
        line: usize,
        /// The node.
        node: String,
        /// The block.
        block: String,
    },
    /// More nodes or switches than ids can number.
    #[error("line {line}: more than {max} nodes or switches")]
    TooLarge {
        /// Line number (from 1) where the limit was passed.
        line: usize,
        /// The limit.
        max: u32,
    },
}

/// A `SwitchName=` line, names unresolved.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawSwitch {
    pub name: String,
    pub line: usize,
    pub nodes: Vec<String>,
    pub children: Vec<String>,
    pub link_speed: Option<u64>,
}

/// A `BlockName=` line.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawBlock {
    pub name: String,
    pub line: usize,
    pub nodes: Vec<String>,
}

/// A whole file, checked line by line but not yet as a tree.
#[derive(Debug, Clone, Default)]
pub(crate) struct Raw {
    pub switches: Vec<RawSwitch>,
    pub blocks: Vec<RawBlock>,
    pub block_sizes: Vec<u32>,
}

pub(crate) fn parse(text: &str) -> Result<Raw, FabricError> {
    let mut raw = Raw::default();
    let mut switch_lines: HashMap<String, usize> = HashMap::new();
    let mut block_lines: HashMap<String, usize> = HashMap::new();
    let mut block_sizes_line = None;
    for (line, body) in logical_lines(text) {
        let mut pairs = Vec::new();
        for token in body.split_whitespace() {
            let Some((key, value)) = token.split_once('=') else {
                return Err(FabricError::NotKeyValue { line, token: token.to_string() });
            };
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
            let known = Key::from_name(key).ok_or_else(|| FabricError::UnknownKey { line, key: key.to_string() })?;
            if value.is_empty() {
                return Err(FabricError::EmptyValue { line, key: key.to_string() });
            }
            if pairs.iter().any(|(k, _, _)| *k == known) {
                return Err(FabricError::DuplicateKey { line, key: key.to_string() });
            }
            pairs.push((known, key, value));
        }
        let Some(&(first, first_key, name)) = pairs.first() else { continue };
        let record = match first {
            Key::SwitchName => "SwitchName",
            Key::BlockName => "BlockName",
            Key::BlockSizes => "BlockSizes",
            _ => return Err(FabricError::NoRecordName { line, key: first_key.to_string() }),
        };
        for &(key, written, _) in &pairs[1..] {
            let allowed = match first {
                Key::SwitchName => matches!(key, Key::Nodes | Key::Switches | Key::LinkSpeed),
                Key::BlockName => key == Key::Nodes,
                _ => false,
            };
            if !allowed {
                return Err(FabricError::MisplacedKey { line, key: written.to_string(), record });
            }
        }
        let value_of = |wanted: Key| pairs.iter().find(|(k, _, _)| *k == wanted).map(|&(_, w, v)| (w, v));
        let hosts = |wanted: Key| -> Result<Vec<String>, FabricError> {
            match value_of(wanted) {
                Some((written, v)) => expand_hostlist(v).map_err(|source| FabricError::Hostlist {
                    line,
                    key: written.to_string(),
                    source,
                }),
                None => Ok(Vec::new()),
            }
        };
        match first {
            Key::SwitchName => {
                if let Some(&first_line) = switch_lines.get(name) {
                    return Err(FabricError::SwitchDefinedTwice { line, switch: name.to_string(), first_line });
                }
                let nodes = hosts(Key::Nodes)?;
                let children = hosts(Key::Switches)?;
                if !nodes.is_empty() && !children.is_empty() {
                    return Err(FabricError::NodesAndSwitches { line, switch: name.to_string() });
                }
                if nodes.is_empty() && children.is_empty() {
                    return Err(FabricError::NoChildren { line, switch: name.to_string() });
                }
                let link_speed = match value_of(Key::LinkSpeed) {
                    Some((_, v)) => {
                        Some(v.parse().map_err(|_| FabricError::BadLinkSpeed { line, value: v.to_string() })?)
                    }
                    None => None,
                };
                switch_lines.insert(name.to_string(), line);
                raw.switches.push(RawSwitch { name: name.to_string(), line, nodes, children, link_speed });
            }
            Key::BlockName => {
                if let Some(&first_line) = block_lines.get(name) {
                    return Err(FabricError::BlockDefinedTwice { line, block: name.to_string(), first_line });
                }
                block_lines.insert(name.to_string(), line);
                raw.blocks.push(RawBlock { name: name.to_string(), line, nodes: hosts(Key::Nodes)? });
            }
            _ => {
                if let Some(first_line) = block_sizes_line {
                    return Err(FabricError::BlockSizesTwice { line, first_line });
                }
                block_sizes_line = Some(line);
                raw.block_sizes = parse_block_sizes(name)
                    .ok_or_else(|| FabricError::BadBlockSizes { line, value: name.to_string() })?;
            }
        }
    }
    Ok(raw)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    SwitchName,
    Switches,
    Nodes,
    LinkSpeed,
    BlockName,
    BlockSizes,
}

impl Key {
    fn from_name(name: &str) -> Option<Key> {
        // Slurm's configuration keys are case-insensitive.
        Some(match name.to_ascii_lowercase().as_str() {
            "switchname" => Key::SwitchName,
            "switches" => Key::Switches,
            "nodes" => Key::Nodes,
            "linkspeed" => Key::LinkSpeed,
            "blockname" => Key::BlockName,
            "blocksizes" => Key::BlockSizes,
            _ => return None,
        })
    }
}

fn parse_block_sizes(value: &str) -> Option<Vec<u32>> {
    value.split(',').map(|s| s.trim().parse::<u32>().ok().filter(|&n| n > 0)).collect()
}

/// Lines without comments, continuation lines joined, each with the number of its first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, physical) in text.lines().enumerate() {
        let content = strip_comment(physical);
        let trimmed = content.trim_end();
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (trimmed, false),
        };
        match pending.as_mut() {
            Some((_, acc)) => {
                acc.push(' ');
                acc.push_str(body);
            }
            None => pending = Some((i + 1, body.to_string())),
        }
        if !continues {
            out.extend(pending.take());
        }
    }
    out.extend(pending);
    out
}

fn strip_comment(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'#') => {
                out.push('#');
                chars.next();
            }
            '#' => break,
            c => out.push(c),
        }
    }
    out
}
