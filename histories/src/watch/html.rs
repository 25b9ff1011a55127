//! The HTML page of a watch check: the verdict, the violations counted by
//! guarantee, and each kept violation with the record line that shows it.

use std::fmt::Write;

use crate::html::esc;
use crate::txn::ModelVerdict;
use crate::watch::WatchReport;

/// A whole self-contained page.
pub fn render(report: &WatchReport) -> String {
    let class = match report.verdict {
        ModelVerdict::Valid => "good",
        ModelVerdict::Invalid => "bad",
        ModelVerdict::Unknown => "unknown",
    };
    let mut body = format!(
        "<p class=\"verdict {class}\">{}</p>",
        esc(&report.verdict_line())
    );
    if !report.by_guarantee.is_empty() {
        body.push_str("<table><tr><th>guarantee</th><th>violations</th></tr>");
        for (g, n) in &report.by_guarantee {
            let _ = write!(body, "<tr><td>{}</td><td>{n}</td></tr>", esc(g));
        }
        body.push_str("</table>");
    }
    if !report.violations.is_empty() {
        body.push_str(
            "<table><tr><th>guarantee</th><th>class</th><th>watcher</th><th>revision</th>\
<th>key</th><th>line</th><th>what happened</th></tr>",
        );
        for v in &report.violations {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                v.guarantee.as_str(),
                v.class,
                v.watcher,
                v.revision,
                esc(&v.key),
                v.line,
                esc(&v.message)
            );
        }
        body.push_str("</table>");
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 16px; color: #222; }}
.verdict {{ padding: 4px 8px; border-radius: 4px; }}
.good {{ background: #e3f4e1; }} .bad {{ background: #fbe3e1; }} .unknown {{ background: #fff3d6; }}
table {{ border-collapse: collapse; margin: 8px 0; }} td, th {{ border: 1px solid #ddd; padding: 2px 6px; text-align: left; }}
</style></head><body><h1>{title}</h1>
{body}
</body></html>
"#,
        title = esc(&format!("watch check: {}", report.file)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::{WatchOptions, check_bytes};

    #[test]
    fn a_missed_event_is_listed_with_its_line() {
        let text = br#"{"kind":"write","process":1,"type":"invoke","ops":[{"op":"put","key":"w/<a>","value":"1"}],"time_ns":1}
{"kind":"write","process":1,"type":"ok","ops":[{"op":"put","key":"w/<a>","value":"1"}],"revision":2,"time_ns":2}
{"kind":"watch","watcher":1,"prefix":"w/","start_revision":1,"time_ns":3}
{"kind":"progress","watcher":1,"revision":2,"time_ns":4}"#;
        let report = check_bytes("watch.jsonl", text, &WatchOptions::default()).unwrap();
        let page = render(&report);
        assert!(page.contains("class=\"verdict bad\""));
        assert!(page.contains("<td>reliable</td><td>1</td>"), "{page}");
        assert!(page.contains("<code>w/&lt;a&gt;</code>"), "keys escaped");
    }
}
