use std::time::Instant;
use d_engine_histories::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = &args[1];
    let secs: u64 = args.get(2).map_or(20, |s| s.parse().unwrap());
    let only: Option<String> = args.get(3).cloned();
    let bytes = std::fs::read(format!("/work/shared/fixtures/porcupine-kv/{name}.txt")).unwrap();
    let ops = pair(&import::read(Format::PorcupineKv, &bytes).unwrap()).unwrap();
    for k in 0..10 {
        let key = k.to_string();
        if only.as_ref().is_some_and(|o| *o != key) { continue; }
        let sub: Vec<Operation> = ops.iter().filter(|o| o.key.as_deref() == Some(&key)).cloned().collect();
        let opts = CheckOptions { threads: 1, timeout: Some(std::time::Duration::from_secs(secs)), ..Default::default() };
        let t = Instant::now();
        let r = check(&KvModel, &sub, &opts).unwrap();
        println!("key {key}: {} ops {:?} {:?} explored {}", sub.len(), t.elapsed(), r.verdict, r.partitions[0].explored);
    }
}
