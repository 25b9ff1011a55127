use std::time::Instant;
use d_engine_histories::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = &args[1];
    let single = args.get(2).is_some_and(|a| a == "single");
    let threads: usize = args.get(3).map_or(0, |t| t.parse().unwrap());
    let bytes = std::fs::read(format!("/work/shared/fixtures/porcupine-kv/{name}.txt")).unwrap();
    let ops = pair(&import::read(Format::PorcupineKv, &bytes).unwrap()).unwrap();
    let opts = CheckOptions { single_partition: single, threads, ..Default::default() };
    let mut times = vec![];
    let mut r = None;
    for _ in 0..30 { let t = Instant::now(); r = Some(check(&KvModel, &ops, &opts).unwrap()); times.push(t.elapsed()); }
    times.sort();
    let r = r.unwrap();
    println!("{name} single={single} threads={threads}: median {:?} min {:?} verdict {:?} explored {:?}", times[times.len()/2], times[0], r.verdict, r.partitions.iter().map(|p| (p.ops.len(), p.explored, p.verdict)).collect::<Vec<_>>());
}
