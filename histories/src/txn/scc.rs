//! Strongly connected components (Tarjan), iterative so a long chain of
//! transactions cannot overflow the stack.

use crate::txn::graph::{Graph, Kinds};

/// Components with more than one node: each is a set of transactions that
/// lie on a common cycle of edges with kinds in `mask`.
pub struct Components {
    /// Component number of each node (`u32::MAX` for nodes outside every
    /// listed component).
    pub of: Vec<u32>,
    pub members: Vec<Vec<u32>>,
}

const UNSEEN: u32 = u32::MAX;

/// Tarjan's algorithm over the edges whose kinds meet `mask`. `stop` is
/// polled now and then; when it returns true the search ends with `None`.
pub fn components(
    graph: &Graph,
    mask: Kinds,
    stop: &mut dyn FnMut() -> bool,
) -> Option<Components> {
    let n = graph.nodes();
    let mut t = Tarjan {
        index: vec![UNSEEN; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        calls: Vec::new(),
        next: 0,
        out: Components {
            of: vec![UNSEEN; n],
            members: Vec::new(),
        },
    };
    for root in 0..n as u32 {
        if t.index[root as usize] != UNSEEN {
            continue;
        }
        if root % 4096 == 0 && stop() {
            return None;
        }
        t.enter(graph, root);
        while let Some(&(v, at)) = t.calls.last() {
            let end = graph.edge_range(v).end;
            match (at..end).find(|&i| graph.edge(i).1 & mask != 0) {
                Some(i) => {
                    t.calls.last_mut().expect("a call is open").1 = i + 1;
                    let w = graph.edge(i).0 as usize;
                    if t.index[w] == UNSEEN {
                        t.enter(graph, w as u32);
                    } else if t.on_stack[w] {
                        t.low[v as usize] = t.low[v as usize].min(t.index[w]);
                    }
                }
                None => t.leave(v),
            }
        }
    }
    Some(t.out)
}

/// The state of the iterative search.
struct Tarjan {
    index: Vec<u32>,
    low: Vec<u32>,
    on_stack: Vec<bool>,
    stack: Vec<u32>,
    /// The explicit call stack: (node, position of its next edge).
    calls: Vec<(u32, usize)>,
    next: u32,
    out: Components,
}

impl Tarjan {
    fn enter(&mut self, graph: &Graph, v: u32) {
        self.index[v as usize] = self.next;
        self.low[v as usize] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v as usize] = true;
        self.calls.push((v, graph.edge_range(v).start));
    }

    fn leave(&mut self, v: u32) {
        self.calls.pop();
        if let Some(&(parent, _)) = self.calls.last() {
            self.low[parent as usize] = self.low[parent as usize].min(self.low[v as usize]);
        }
        if self.low[v as usize] != self.index[v as usize] {
            return;
        }
        let mut members = Vec::new();
        loop {
            let w = self.stack.pop().expect("the root is on the stack");
            self.on_stack[w as usize] = false;
            members.push(w);
            if w == v {
                break;
            }
        }
        if members.len() > 1 {
            let id = self.out.members.len() as u32;
            for &m in &members {
                self.out.of[m as usize] = id;
            }
            members.sort_unstable();
            self.out.members.push(members);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::graph::{EdgeList, RW, WW};

    #[test]
    fn finds_cycles_only_through_masked_edges() {
        let mut e = EdgeList::default();
        e.add(0, 1, WW);
        e.add(1, 2, WW);
        e.add(2, 0, RW);
        e.add(3, 4, WW);
        let g = Graph::build(5, e);
        let all = components(&g, WW | RW, &mut || false).unwrap();
        assert_eq!(all.members, vec![vec![0, 1, 2]]);
        assert_eq!(all.of[3], UNSEEN);
        let ww = components(&g, WW, &mut || false).unwrap();
        assert!(ww.members.is_empty());
    }

    #[test]
    fn a_long_chain_does_not_overflow() {
        let n = 200_000u32;
        let mut e = EdgeList::default();
        for i in 0..n {
            e.add(i, (i + 1) % n, WW);
        }
        let g = Graph::build(n as usize, e);
        let c = components(&g, WW, &mut || false).unwrap();
        assert_eq!(c.members.len(), 1);
        assert_eq!(c.members[0].len(), n as usize);
    }
}
