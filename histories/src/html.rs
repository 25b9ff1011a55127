//! A self-contained HTML timeline of a checked history: one lane per
//! process, one bar per operation, the failing partition's longest
//! linearizable prefix (numbered in linearization order) and the ops that
//! cannot be placed marked, and a lane of fault events. Inline CSS, SVG and
//! a few lines of JS; no external resources, so it can be attached to a CI
//! run or mailed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;

use crate::checker::{CheckResult, Verdict};
use crate::history::{Operation, Status};
use crate::nemesis::NemesisEvent;
use crate::report::{describe_op, verdict_line};

/// Above this many ops only the failing partition (or the first ops) is
/// drawn: a browser chokes on hundreds of thousands of SVG elements.
const MAX_OPS_DRAWN: usize = 10_000;
const LANE_PX: f64 = 20.0;
const BAR_PX: f64 = 14.0;
const LEFT_PX: f64 = 90.0;
const TOP_PX: f64 = 24.0;

pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The x axis: real time when every op has timestamps, else event position.
struct Axis {
    timed: bool,
    min: f64,
    max: f64,
    width_px: f64,
}

impl Axis {
    fn new(ops: &[&Operation], nemesis: &[NemesisEvent]) -> Axis {
        let timed = !ops.is_empty()
            && ops
                .iter()
                .all(|o| o.call_time_ns.is_some() && (o.ret.is_none() || o.ret_time_ns.is_some()));
        let mut min = f64::MAX;
        let mut max = f64::MIN;
        for o in ops {
            let (a, b) = if timed {
                (
                    o.call_time_ns.unwrap_or(0) as f64,
                    o.ret_time_ns.map(|t| t as f64),
                )
            } else {
                (o.call as f64, o.ret.map(|r| r as f64))
            };
            min = min.min(a);
            max = max.max(b.unwrap_or(a));
        }
        for n in nemesis {
            min = min.min(n.start_ns as f64);
            max = max.max(n.end_ns.unwrap_or(n.start_ns) as f64);
        }
        if min > max {
            (min, max) = (0.0, 1.0);
        }
        max += ((max - min) * 0.02).max(1.0);
        let width_px = (ops.len() as f64 * 8.0).clamp(900.0, 24_000.0);
        Axis {
            timed,
            min,
            max,
            width_px,
        }
    }

    fn px(&self, x: f64) -> f64 {
        LEFT_PX + (x - self.min) / (self.max - self.min) * self.width_px
    }

    fn span(&self, op: &Operation) -> (f64, Option<f64>) {
        if self.timed {
            (
                op.call_time_ns.unwrap_or(0) as f64,
                op.ret_time_ns.map(|t| t as f64),
            )
        } else {
            (op.call as f64, op.ret.map(|r| r as f64))
        }
    }
}

/// How the check marked each op.
struct Marks {
    failing: bool,
    /// Op id → 1-based position in the longest linearizable prefix.
    order: HashMap<usize, usize>,
    stuck: HashSet<usize>,
    in_failing: HashSet<usize>,
}

impl Marks {
    fn new(result: &CheckResult) -> Marks {
        let failing = result.failing_partition();
        Marks {
            failing: failing.is_some(),
            order: failing.map_or_else(HashMap::new, |p| {
                p.longest_prefix
                    .iter()
                    .enumerate()
                    .map(|(k, &i)| (i, k + 1))
                    .collect()
            }),
            stuck: failing.map_or_else(HashSet::new, |p| p.unplaceable.iter().copied().collect()),
            in_failing: failing.map_or_else(HashSet::new, |p| p.ops.iter().copied().collect()),
        }
    }

    /// CSS classes and tooltip of an op's bar.
    fn class_and_tip(&self, op: &Operation) -> (String, String) {
        let mut class = String::from(match op.status {
            Status::Ok => "op ok",
            Status::Fail => "op fail",
            Status::Info => "op info",
        });
        let mut tip = describe_op(op);
        if self.failing {
            class.push_str(if self.in_failing.contains(&op.id) {
                " part"
            } else {
                " other"
            });
        }
        if let Some(k) = self.order.get(&op.id) {
            class.push_str(" prefix");
            let _ = write!(tip, " [linearized #{k}]");
        }
        if self.stuck.contains(&op.id) {
            class.push_str(" stuck");
            tip.push_str(" [cannot be placed]");
        }
        (class, tip)
    }
}

/// Renders the timeline page.
pub fn render(
    title: &str,
    ops: &[Operation],
    nemesis: &[NemesisEvent],
    result: &CheckResult,
) -> String {
    let failing = result.failing_partition();
    let marks = Marks::new(result);
    let (drawn, note) = select_ops(ops, failing.map(|p| p.ops.as_slice()));
    let svg = timeline_svg(&drawn, nemesis, &marks);
    let mut details = String::new();
    if let Some(p) = failing {
        let _ = write!(
            details,
            "<h2>Longest linearizable prefix ({} of {} ops)</h2><ol>",
            p.longest_prefix.len(),
            p.ops.len()
        );
        for &i in &p.longest_prefix {
            let _ = write!(details, "<li>{}</li>", esc(&describe_op(&ops[i])));
        }
        details.push_str("</ol><h2>Cannot be placed after it</h2><ul>");
        for &i in &p.unplaceable {
            let _ = write!(
                details,
                "<li class=\"stucktext\">{}</li>",
                esc(&describe_op(&ops[i]))
            );
        }
        details.push_str("</ul>");
    }
    let verdict_class = match result.verdict {
        Verdict::Linearizable => "good",
        Verdict::Illegal => "bad",
        Verdict::Unknown => "unknown",
    };
    let toggle = if failing.is_some() {
        r#"<label><input type="checkbox" id="focus"> show only the failing partition</label>"#
    } else {
        ""
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 16px; color: #222; }}
.verdict {{ padding: 8px 12px; border-radius: 4px; display: inline-block; }}
.good {{ background: #e3f4e1; }} .bad {{ background: #fbe3e1; }} .unknown {{ background: #fff3d6; }}
.scroll {{ overflow-x: auto; border: 1px solid #ddd; margin: 12px 0; }}
svg text {{ font: 11px system-ui, sans-serif; }}
.lane, .axis {{ fill: #555; }}
.op rect {{ fill: #8fb3d9; stroke: #5b86b3; }}
.op.fail rect {{ fill: #eee; stroke: #bbb; stroke-dasharray: 3 2; }}
.op.info rect {{ fill: #f7c77b; stroke: #d49a3a; }}
.open {{ stroke: #d49a3a; stroke-dasharray: 4 3; }}
.op.other {{ opacity: 0.25; }}
.op.prefix rect {{ fill: #66bb6a; stroke: #2e7d32; }}
.op.stuck rect {{ fill: #ef5350; stroke: #b71c1c; stroke-width: 2; }}
.rank {{ fill: #fff; }}
.fault {{ fill: #b39ddb; stroke: #7e57c2; }}
body.focus .op.other {{ display: none; }}
.stucktext {{ color: #b71c1c; }}
.legend span {{ display: inline-block; padding: 1px 6px; margin-right: 6px; border-radius: 2px; }}
</style></head><body>
<h1>{title}</h1>
<p class="verdict {verdict_class}">{verdict}</p>
<p class="legend"><span style="background:#8fb3d9">ok</span><span style="background:#eee">fail</span><span style="background:#f7c77b">unknown outcome</span><span style="background:#66bb6a">linearized prefix (#order)</span><span style="background:#ef5350">cannot be placed</span><span style="background:#b39ddb">fault</span> {toggle}</p>
<p>{note}</p>
<div class="scroll">{svg}</div>
{details}
<script>
var f = document.getElementById("focus");
if (f) f.addEventListener("change", function () {{ document.body.classList.toggle("focus", f.checked); }});
</script>
</body></html>
"#,
        title = esc(title),
        verdict = esc(&verdict_line(title, ops, result)),
        note = esc(&note),
    )
}

/// The SVG: a fault lane (if any faults), then one lane per process.
fn timeline_svg(drawn: &[&Operation], nemesis: &[NemesisEvent], marks: &Marks) -> String {
    let axis = Axis::new(drawn, nemesis);
    let lanes: BTreeMap<u64, usize> = {
        let mut procs: Vec<u64> = drawn.iter().map(|o| o.process).collect();
        procs.sort_unstable();
        procs.dedup();
        procs.into_iter().enumerate().map(|(i, p)| (p, i)).collect()
    };
    let fault_lane = usize::from(!nemesis.is_empty());
    let height = TOP_PX + (lanes.len() + fault_lane) as f64 * LANE_PX + 10.0;
    let width = LEFT_PX + axis.width_px + 20.0;
    let end_px = LEFT_PX + axis.width_px;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}">"#
    );
    let x_label = if axis.timed {
        "x: time"
    } else {
        "x: event order"
    };
    let _ = write!(svg, r#"<text x="4" y="14" class="axis">{x_label}</text>"#);
    if fault_lane == 1 {
        let _ = write!(
            svg,
            r#"<text x="4" y="{:.0}" class="lane">faults</text>"#,
            TOP_PX + BAR_PX - 2.0
        );
        for n in nemesis {
            let x0 = axis.px(n.start_ns as f64);
            let x1 = n.end_ns.map_or(end_px, |e| axis.px(e as f64)).max(x0 + 3.0);
            let tip = format!(
                "{} {} {}",
                n.kind,
                n.targets.join(" "),
                n.detail.as_deref().unwrap_or("")
            );
            let _ = write!(
                svg,
                r#"<rect class="fault" x="{x0:.1}" y="{TOP_PX:.1}" width="{:.1}" height="{BAR_PX}"><title>{}</title></rect>"#,
                x1 - x0,
                esc(tip.trim())
            );
        }
    }
    for (p, lane) in &lanes {
        let y = TOP_PX + (lane + fault_lane) as f64 * LANE_PX;
        let _ = write!(
            svg,
            r#"<text x="4" y="{:.0}" class="lane">process {p}</text>"#,
            y + BAR_PX - 2.0
        );
    }
    for op in drawn {
        let y = TOP_PX + (lanes[&op.process] + fault_lane) as f64 * LANE_PX;
        let (a, b) = axis.span(op);
        let x0 = axis.px(a);
        let x1 = b.map_or(end_px, |b| axis.px(b)).max(x0 + 2.0);
        let (class, tip) = marks.class_and_tip(op);
        let _ = write!(svg, r#"<g class="{class}"><title>{}</title>"#, esc(&tip));
        let _ = write!(
            svg,
            r#"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{BAR_PX}" rx="2"/>"#,
            x1 - x0
        );
        if op.status == Status::Info {
            // Unknown outcome: the op may take effect any time until the end.
            let mid = y + BAR_PX / 2.0;
            let _ = write!(
                svg,
                r#"<line class="open" x1="{x1:.1}" y1="{mid:.1}" x2="{end_px:.1}" y2="{mid:.1}"/>"#
            );
        }
        if let Some(k) = marks.order.get(&op.id).filter(|_| x1 - x0 > 16.0) {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" class="rank">{k}</text>"#,
                x0 + 2.0,
                y + BAR_PX - 3.0
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    svg
}

/// The ops to draw, and a note when not all of them are.
fn select_ops<'a>(ops: &'a [Operation], failing: Option<&[usize]>) -> (Vec<&'a Operation>, String) {
    if ops.len() <= MAX_OPS_DRAWN {
        return (ops.iter().collect(), String::new());
    }
    if let Some(part) = failing {
        let drawn: Vec<&Operation> = part.iter().take(MAX_OPS_DRAWN).map(|&i| &ops[i]).collect();
        let note = format!(
            "{} operations; showing the {} of the failing partition.",
            ops.len(),
            drawn.len()
        );
        return (drawn, note);
    }
    let note = format!(
        "{} operations; showing the first {MAX_OPS_DRAWN}.",
        ops.len()
    );
    (ops.iter().take(MAX_OPS_DRAWN).collect(), note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CheckOptions, KvModel, check, import, pair};

    #[test]
    fn marks_prefix_stuck_ops_and_faults() {
        let text = "{:process 0, :type :invoke, :f :put, :key \"k\", :value \"a\"}\n\
                    {:process 0, :type :ok, :f :put, :key \"k\", :value \"a\"}\n\
                    {:process :nemesis, :type :info, :f :kill, :value [\"n1\"]}\n\
                    {:process 1, :type :invoke, :f :get, :key \"k\", :value nil}\n\
                    {:process 1, :type :ok, :f :get, :key \"k\", :value \"<b>\"}\n";
        let h = import::read(import::Format::JepsenEdn, text.as_bytes()).unwrap();
        let ops = pair(&h).unwrap();
        let result = check(&KvModel, &ops, &CheckOptions::default()).unwrap();
        let page = render("t<1>", &ops, &h.nemesis, &result);
        assert!(page.contains("op ok part prefix"));
        assert!(page.contains("stuck"));
        assert!(page.contains(r#"class="fault""#));
        assert!(page.contains("&lt;b&gt;") && !page.contains("<b>"));
        assert!(
            !page.contains("http://")
                || page
                    .matches("http://")
                    .all(|_| page.contains("xmlns=\"http://www.w3.org/2000/svg\""))
        );
    }
}
