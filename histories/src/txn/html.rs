//! The HTML section of a transactional check: per anomaly, the cycle's
//! transactions (with their micro-ops), a drawing of the cycle, and its
//! edges with their reasons.

use std::fmt::Write;

use crate::html::esc;
use crate::txn::{Consistency, ModelVerdict, TxnHistory, TxnResult, verdict_line};

/// A section for a report page.
pub fn section(h: &TxnHistory, result: &TxnResult, models: &[Consistency]) -> String {
    let mut out = String::from("<section class=\"txn\"><h2>Transactional anomalies</h2><ul>");
    for &m in models {
        let class = match result.verdict(m) {
            ModelVerdict::Valid => "good",
            ModelVerdict::Invalid => "bad",
            ModelVerdict::Unknown => "unknown",
        };
        let _ = write!(
            out,
            "<li class=\"verdict {class}\">{}</li>",
            esc(&verdict_line("history", result, m))
        );
    }
    out.push_str("</ul>");
    for a in &result.anomalies {
        let _ = write!(
            out,
            "<h3>{}</h3><p>{}</p>",
            esc(a.kind.as_str()),
            esc(&a.explanation)
        );
        out.push_str("<table><tr><th>txn</th><th>process</th><th>line</th><th>micro-ops</th></tr>");
        for &t in &a.txns {
            let txn = &h.txns[t];
            let _ = write!(
                out,
                "<tr><td>T{t}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                txn.process,
                txn.call_line,
                esc(&h.mops_text(t))
            );
        }
        out.push_str("</table>");
        out.push_str(&super::svg::cycle(a));
        if !a.steps.is_empty() {
            out.push_str("<ol class=\"edges\">");
            for s in &a.steps {
                let _ = write!(
                    out,
                    "<li>T{} &rarr; T{} <b>{}</b>: {}</li>",
                    s.from,
                    s.to,
                    s.kind.as_str(),
                    esc(&s.why)
                );
            }
            out.push_str("</ol>");
        }
    }
    out.push_str("</section>");
    out
}

/// A whole self-contained page with only the transactional section.
pub fn render(title: &str, h: &TxnHistory, result: &TxnResult, models: &[Consistency]) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 16px; color: #222; }}
.verdict {{ padding: 4px 8px; border-radius: 4px; list-style: none; margin: 2px 0; }}
.good {{ background: #e3f4e1; }} .bad {{ background: #fbe3e1; }} .unknown {{ background: #fff3d6; }}
table {{ border-collapse: collapse; margin: 6px 0; }} td, th {{ border: 1px solid #ddd; padding: 2px 6px; text-align: left; }}
</style></head><body><h1>{title}</h1>
{}
</body></html>
"#,
        section(h, result, models),
        title = esc(title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::{TxnOptions, Workload, check_ops};
    use crate::{import, pair};

    #[test]
    fn lists_the_cycle_transactions_and_edges() {
        let text = b"{:process 0, :type :invoke, :f :txn, :value [[:r 1 nil] [:append 2 1]]}
{:process 1, :type :invoke, :f :txn, :value [[:r 2 nil] [:append 1 1]]}
{:process 0, :type :ok, :f :txn, :value [[:r 1 nil] [:append 2 1]]}
{:process 1, :type :ok, :f :txn, :value [[:r 2 nil] [:append 1 1]]}
{:process 0, :type :invoke, :f :txn, :value [[:r 1 nil] [:r 2 nil]]}
{:process 0, :type :ok, :f :txn, :value [[:r 1 [1]] [:r 2 [1]]]}";
        let ops = pair(&import::read(import::Format::JepsenEdn, text).unwrap()).unwrap();
        let (h, result) =
            check_ops(&ops, Some(Workload::ListAppend), &TxnOptions::default()).unwrap();
        let page = render("t<1>", &h, &result, &[Consistency::Serializable]);
        assert!(page.contains("<h3>G2-item</h3>"));
        assert!(page.contains("<td><code>[[:r 1 nil] [:append 2 1]]</code></td>"));
        assert_eq!(page.matches("<b>rw</b>").count(), 2);
        assert_eq!(
            page.matches("<svg class=\"cycle\"").count(),
            1,
            "the cycle is drawn"
        );
        assert!(page.contains("class=\"verdict bad\""));
        assert!(page.contains("t&lt;1&gt;") && !page.contains("t<1>"));
    }
}
