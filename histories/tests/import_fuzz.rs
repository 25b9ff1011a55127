//! The importers against arbitrary input and against themselves: random
//! bytes and damaged copies of every fixture never make a reader panic
//! (errors are fine), and random histories written as JSON lines and as
//! Jepsen EDN (a vector, a list, one map per line, with `;` comments) read
//! back as the same events and the same operations.

use std::path::PathBuf;

use d_engine_histories::format::{Event, EventType};
use d_engine_histories::synth::Rng;
use d_engine_histories::{Format, History, Operation, Value, import, pair};

const FORMATS: [Format; 4] = [
    Format::Jsonl,
    Format::JepsenEdn,
    Format::JepsenLog,
    Format::PorcupineKv,
];

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/import");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x != "md"))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    assert!(out.len() >= 5, "{out:?}");
    out
}

/// Every reader, and pairing whatever it read; only a panic fails.
fn read_all(name: &str, bytes: &[u8]) {
    let _ = Format::detect(name, bytes);
    for format in FORMATS {
        if let Ok(history) = import::read(format, bytes) {
            let _ = pair(&history);
        }
    }
}

/// One random change: a bit flipped, a cut, a byte of syntax put in, or a
/// slice repeated.
fn damage(bytes: &mut Vec<u8>, rng: &mut Rng) {
    if bytes.is_empty() {
        bytes.push(b'{');
        return;
    }
    let i = rng.below(bytes.len() as u64) as usize;
    match rng.below(4) {
        0 => bytes[i] ^= 1 << rng.below(8),
        1 => bytes.truncate(i),
        2 => {
            let syntax = b"{}[]()#_;:\"\\, \n\t-0123456789nil";
            bytes.insert(i, syntax[rng.below(syntax.len() as u64) as usize]);
        }
        _ => {
            let end = (i + 1 + rng.below(40) as usize).min(bytes.len());
            let slice = bytes[i..end].to_vec();
            bytes.splice(i..i, slice);
        }
    }
}

#[test]
fn random_and_damaged_input_never_panics() {
    let mut rng = Rng::new(2026);
    for _ in 0..300 {
        let n = rng.below(400) as usize;
        let bytes: Vec<u8> = (0..n).map(|_| rng.below(256) as u8).collect();
        read_all("random", &bytes);
    }
    for (name, original) in fixtures() {
        read_all(&name, &original);
        for _ in 0..300 {
            let mut bytes = original.clone();
            for _ in 0..1 + rng.below(3) {
                damage(&mut bytes, &mut rng);
            }
            read_all(&name, &bytes);
        }
    }
}

fn random_string(rng: &mut Rng) -> String {
    const PARTS: [&str; 8] = ["k", "x 1", "ü", "a\"b", "back\\slash", "tab\t", "", "3"];
    (0..1 + rng.below(2))
        .map(|_| PARTS[rng.below(PARTS.len() as u64) as usize])
        .collect()
}

fn random_value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth == 0 { 6 } else { 5 }) {
        0 => Value::Nil,
        1 => Value::Bool(rng.chance(50)),
        2 => Value::Int(rng.below(2001) as i64 - 1000),
        3 | 4 => Value::Str(random_string(rng)),
        _ => Value::List((0..rng.below(4)).map(|_| random_value(rng, 1)).collect()),
    }
}

/// A history of invocations, each completed (or not) by its process later.
fn random_history(rng: &mut Rng) -> Vec<Event> {
    const FS: [&str; 5] = ["read", "write", "cas", "put", "get"];
    let mut events = Vec::new();
    let mut open: Vec<Option<Event>> = vec![None; 4];
    for _ in 0..rng.below(40) {
        let p = rng.below(4) as usize;
        let mut e = match open[p].take() {
            Some(mut call) => {
                call.kind = match rng.below(4) {
                    0 => EventType::Fail,
                    1 => EventType::Info,
                    _ => EventType::Ok,
                };
                call.value = random_value(rng, 0);
                if call.kind != EventType::Ok {
                    call.error = Some(random_string(rng));
                }
                call
            }
            None => {
                let key = rng.chance(50).then(|| random_string(rng));
                let f = FS[rng.below(FS.len() as u64) as usize];
                let call = Event::new(
                    p as u64,
                    EventType::Invoke,
                    f,
                    key.as_deref(),
                    random_value(rng, 0),
                );
                open[p] = Some(call.clone());
                call
            }
        };
        e.index = events.len() as u64;
        e.time_ns = Some(10 * e.index + rng.below(10));
        events.push(e);
    }
    events
}

fn edn_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn edn_value(v: &Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Str(s) => edn_string(s),
        Value::List(items) => {
            let items: Vec<String> = items.iter().map(edn_value).collect();
            format!("[{}]", items.join(" "))
        }
    }
}

fn edn_map(e: &Event) -> String {
    let mut fields = vec![
        format!(":index {}", e.index),
        format!(":time {}", e.time_ns.unwrap_or(0)),
        format!(":process {}", e.process),
        format!(":type :{}", e.kind.as_str()),
        format!(":f :{}", e.f),
        format!(":value {}", edn_value(&e.value)),
    ];
    if let Some(k) = &e.key {
        fields.push(format!(":key {}", edn_string(k)));
    }
    if let Some(err) = &e.error {
        fields.push(format!(":error {}", edn_string(err)));
    }
    format!("{{{}}}", fields.join(", "))
}

/// The three EDN layouts, with comments between, after and inside.
fn edn(events: &[Event], layout: u64, rng: &mut Rng) -> String {
    let mut out = String::from("; a generated history\n");
    let (open, close) = match layout {
        0 => ("[", "]"),
        1 => ("(", ")"),
        _ => ("", ""),
    };
    out.push_str(open);
    for e in events {
        if rng.chance(20) {
            out.push_str("; between ops\n");
        }
        out.push_str(&edn_map(e));
        if rng.chance(20) {
            out.push_str(" ; after an op");
        }
        out.push('\n');
    }
    out.push_str(close);
    out.push_str("\n; the end\n");
    out
}

fn jsonl(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect()
}

/// Operations without their source lines, which differ by layout.
fn unlined(mut ops: Vec<Operation>) -> Vec<Operation> {
    for op in &mut ops {
        op.call_line = 0;
        op.ret_line = None;
    }
    ops
}

fn same(label: &str, text: &str, format: Format, events: &[Event]) {
    let history: History =
        import::read(format, text.as_bytes()).unwrap_or_else(|e| panic!("{label}: {e}\n{text}"));
    assert_eq!(history.events, events, "{label}\n{text}");
    let mut original = History::default();
    for (i, e) in events.iter().enumerate() {
        original.push(e.clone(), i + 1);
    }
    match (pair(&history), pair(&original)) {
        (Ok(a), Ok(b)) => assert_eq!(unlined(a), unlined(b), "{label}\n{text}"),
        (a, b) => assert_eq!(a.is_ok(), b.is_ok(), "{label}\n{text}"),
    }
}

#[test]
fn random_histories_round_trip_through_jsonl_and_edn() {
    let mut rng = Rng::new(7);
    for round in 0..400 {
        let events = random_history(&mut rng);
        same(
            &format!("jsonl {round}"),
            &jsonl(&events),
            Format::Jsonl,
            &events,
        );
        for layout in 0..3 {
            let text = edn(&events, layout, &mut rng);
            same(
                &format!("edn {layout} {round}"),
                &text,
                Format::JepsenEdn,
                &events,
            );
        }
    }
}
