//! The dependency graph: transactions as nodes, edges labelled with a set
//! of kinds (one bit each), stored as compressed adjacency lists.

use serde::Serialize;

/// Edge kinds, one bit each, so a pair with several relations is one edge.
pub type Kinds = u8;
pub const WW: Kinds = 1;
pub const WR: Kinds = 2;
pub const RW: Kinds = 4;
pub const PROCESS: Kinds = 8;
pub const REALTIME: Kinds = 16;
/// Dependencies the data prove (Adya's write, read and anti-dependencies).
pub const DATA: Kinds = WW | WR | RW;
pub const ALL: Kinds = DATA | PROCESS | REALTIME;

/// One relation, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    Ww,
    Wr,
    Rw,
    Process,
    Realtime,
}

impl EdgeKind {
    pub fn bit(self) -> Kinds {
        match self {
            EdgeKind::Ww => WW,
            EdgeKind::Wr => WR,
            EdgeKind::Rw => RW,
            EdgeKind::Process => PROCESS,
            EdgeKind::Realtime => REALTIME,
        }
    }

    /// The kinds in `kinds`, weakest claim first: a ww edge says less about
    /// the isolation level than an rw edge, so a cycle is labelled with the
    /// kinds that make it the mildest anomaly it can be.
    pub fn preferred(kinds: Kinds) -> Option<EdgeKind> {
        [
            EdgeKind::Ww,
            EdgeKind::Wr,
            EdgeKind::Process,
            EdgeKind::Realtime,
            EdgeKind::Rw,
        ]
        .into_iter()
        .find(|k| kinds & k.bit() != 0)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::Ww => "ww",
            EdgeKind::Wr => "wr",
            EdgeKind::Rw => "rw",
            EdgeKind::Process => "process",
            EdgeKind::Realtime => "realtime",
        }
    }
}

/// Edges as they are found, before they are grouped by source.
#[derive(Debug, Default)]
pub struct EdgeList {
    from: Vec<u32>,
    to: Vec<u32>,
    kinds: Vec<Kinds>,
}

impl EdgeList {
    /// Adds `from -> to`; a self edge says nothing and is dropped.
    #[inline]
    pub fn add(&mut self, from: u32, to: u32, kinds: Kinds) {
        if from != to {
            self.from.push(from);
            self.to.push(to);
            self.kinds.push(kinds);
        }
    }

    pub fn len(&self) -> usize {
        self.from.len()
    }

    pub fn is_empty(&self) -> bool {
        self.from.is_empty()
    }

    /// Bytes held per edge, here and in the graph built from it.
    pub const BYTES_PER_EDGE: usize = 2 * 4 + 1 + 4 + 1;
}

/// Adjacency lists: the out-edges of `n` are `offsets[n]..offsets[n + 1]`.
#[derive(Debug)]
pub struct Graph {
    offsets: Vec<u32>,
    targets: Vec<u32>,
    kinds: Vec<Kinds>,
}

impl Graph {
    /// Groups `edges` by source (a counting sort: linear, no comparison).
    pub fn build(nodes: usize, edges: EdgeList) -> Graph {
        let mut offsets = vec![0u32; nodes + 1];
        for &f in &edges.from {
            offsets[f as usize + 1] += 1;
        }
        for i in 0..nodes {
            offsets[i + 1] += offsets[i];
        }
        let mut fill: Vec<u32> = offsets[..nodes].to_vec();
        let mut targets = vec![0u32; edges.len()];
        let mut kinds = vec![0 as Kinds; edges.len()];
        for ((&f, &t), &k) in edges.from.iter().zip(&edges.to).zip(&edges.kinds) {
            let slot = &mut fill[f as usize];
            targets[*slot as usize] = t;
            kinds[*slot as usize] = k;
            *slot += 1;
        }
        Graph {
            offsets,
            targets,
            kinds,
        }
    }

    pub fn nodes(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn edges(&self) -> usize {
        self.targets.len()
    }

    /// Out-edges of `n`: (target, kinds).
    #[inline]
    pub fn out(&self, n: u32) -> impl Iterator<Item = (u32, Kinds)> + '_ {
        let (a, b) = (
            self.offsets[n as usize] as usize,
            self.offsets[n as usize + 1] as usize,
        );
        self.targets[a..b]
            .iter()
            .copied()
            .zip(self.kinds[a..b].iter().copied())
    }

    /// Positions of the out-edges of `n`, for [`Graph::edge`].
    #[inline]
    pub fn edge_range(&self, n: u32) -> std::ops::Range<usize> {
        self.offsets[n as usize] as usize..self.offsets[n as usize + 1] as usize
    }

    /// The edge at position `i`: (target, kinds).
    #[inline]
    pub fn edge(&self, i: usize) -> (u32, Kinds) {
        (self.targets[i], self.kinds[i])
    }

    /// The union of the kinds of all edges `from -> to`.
    pub fn kinds_between(&self, from: u32, to: u32) -> Kinds {
        self.out(from)
            .filter(|&(t, _)| t == to)
            .fold(0, |acc, (_, k)| acc | k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_groups_by_source_and_drops_self_edges() {
        let mut e = EdgeList::default();
        e.add(2, 0, WW);
        e.add(0, 1, WR);
        e.add(1, 1, RW);
        e.add(0, 2, RW | REALTIME);
        let g = Graph::build(3, e);
        assert_eq!(g.edges(), 3);
        assert_eq!(
            g.out(0).collect::<Vec<_>>(),
            vec![(1, WR), (2, RW | REALTIME)]
        );
        assert_eq!(g.out(1).count(), 0);
        assert_eq!(g.kinds_between(2, 0), WW);
        assert_eq!(EdgeKind::preferred(RW | REALTIME), Some(EdgeKind::Realtime));
    }
}
