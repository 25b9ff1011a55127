//! A drawing of one anomaly's cycle: its transactions on a circle, in cycle
//! order, and an arrow per edge, coloured by kind and labelled; hovering an
//! arrow shows why the edge is there (the keys and values behind it).

use std::fmt::Write;

use crate::html::esc;
use crate::txn::anomaly::Anomaly;
use crate::txn::graph::EdgeKind;

/// Side of the square drawing, px.
const SIZE: f64 = 360.0;
/// Radius of a transaction's circle, px.
const NODE_R: f64 = 22.0;

fn colour(kind: EdgeKind) -> &'static str {
    match kind {
        EdgeKind::Ww => "#1f77b4",
        EdgeKind::Wr => "#2ca02c",
        EdgeKind::Rw => "#d62728",
        EdgeKind::Process => "#7f7f7f",
        EdgeKind::Realtime => "#9467bd",
    }
}

/// Where transaction `i` of `n` sits.
fn position(i: usize, n: usize) -> (f64, f64) {
    let centre = SIZE / 2.0;
    let radius = if n <= 1 {
        0.0
    } else {
        SIZE / 2.0 - NODE_R - 40.0
    };
    let angle = std::f64::consts::TAU * i as f64 / n.max(1) as f64 - std::f64::consts::FRAC_PI_2;
    (centre + radius * angle.cos(), centre + radius * angle.sin())
}

/// The cycle of `a` as an inline SVG; empty for an anomaly without a cycle.
pub fn cycle(a: &Anomaly) -> String {
    if a.steps.is_empty() {
        return String::new();
    }
    let n = a.txns.len();
    let at = |t: usize| {
        let i = a.txns.iter().position(|&x| x == t).unwrap_or(0);
        position(i, n)
    };
    let mut out = format!(
        "<svg class=\"cycle\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{SIZE}\" height=\"{SIZE}\" viewBox=\"0 0 {SIZE} {SIZE}\">\
<defs>{}</defs>",
        markers()
    );
    for s in &a.steps {
        arrow(&mut out, at(s.from), at(s.to), s.kind, &s.why);
    }
    for (i, &t) in a.txns.iter().enumerate() {
        let (x, y) = position(i, n);
        let _ = write!(
            out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{NODE_R}\" fill=\"#fff\" stroke=\"#333\"/>\
<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\">T{t}</text>",
            y + 4.0
        );
    }
    out.push_str("</svg>");
    out
}

fn markers() -> String {
    [
        EdgeKind::Ww,
        EdgeKind::Wr,
        EdgeKind::Rw,
        EdgeKind::Process,
        EdgeKind::Realtime,
    ]
    .iter()
    .map(|&k| {
        format!(
            "<marker id=\"arrow-{}\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{}\"/></marker>",
            k.as_str(),
            colour(k)
        )
    })
    .collect()
}

/// An arrow from one circle's edge to the other's, bent a little so that
/// two edges between the same pair (both ways) do not overlap.
fn arrow(out: &mut String, from: (f64, f64), to: (f64, f64), kind: EdgeKind, why: &str) {
    let (dx, dy) = (to.0 - from.0, to.1 - from.1);
    let len = (dx * dx + dy * dy).sqrt().max(1e-6);
    let (ux, uy) = (dx / len, dy / len);
    let start = (from.0 + ux * NODE_R, from.1 + uy * NODE_R);
    let end = (to.0 - ux * NODE_R, to.1 - uy * NODE_R);
    // The control point sits off the chord, to the left of the direction.
    let bend = 0.18 * len;
    let ctrl = (
        (start.0 + end.0) / 2.0 + uy * bend,
        (start.1 + end.1) / 2.0 - ux * bend,
    );
    let c = colour(kind);
    let name = kind.as_str();
    let _ = write!(
        out,
        "<g><title>{}</title><path d=\"M{:.1},{:.1} Q{:.1},{:.1} {:.1},{:.1}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" marker-end=\"url(#arrow-{name})\"/>\
<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"{c}\">{name}</text></g>",
        esc(why),
        start.0,
        start.1,
        ctrl.0,
        ctrl.1,
        end.0,
        end.1,
        ctrl.0,
        ctrl.1,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::anomaly::{AnomalyKind, CycleStep};

    fn step(from: usize, to: usize, kind: EdgeKind) -> CycleStep {
        CycleStep {
            from,
            to,
            kind,
            why: format!("T{from} <then> T{to}"),
        }
    }

    #[test]
    fn draws_each_transaction_and_each_edge_with_its_reason() {
        let a = Anomaly {
            kind: AnomalyKind::GSingle,
            txns: vec![4, 9],
            steps: vec![step(4, 9, EdgeKind::Rw), step(9, 4, EdgeKind::Wr)],
            explanation: String::new(),
        };
        let svg = cycle(&a);
        assert_eq!(svg.matches("<circle").count(), 2);
        assert_eq!(svg.matches(" Q").count(), 2, "two curved arrows");
        assert!(svg.contains(">T4</text>") && svg.contains(">T9</text>"));
        assert!(svg.contains("url(#arrow-rw)") && svg.contains("url(#arrow-wr)"));
        assert!(
            svg.contains("<title>T4 &lt;then&gt; T9</title>"),
            "reasons escaped"
        );
    }

    #[test]
    fn nothing_to_draw_without_a_cycle() {
        let a = Anomaly {
            kind: AnomalyKind::G1a,
            txns: vec![1],
            steps: Vec::new(),
            explanation: String::new(),
        };
        assert_eq!(cycle(&a), "");
    }
}
