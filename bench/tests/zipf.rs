//! The Zipf sampler against the exact distribution.

use d_engine_bench::rng::Rng;
use d_engine_bench::zipf::Zipf;

fn exact(n: u64, s: f64) -> Vec<f64> {
    let w: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-s)).collect();
    let total: f64 = w.iter().sum();
    w.into_iter().map(|x| x / total).collect()
}

/// Chi-square of observed rank counts against the exact probabilities, over the first
/// `head` ranks plus one bucket for the tail.
fn chi_square(n: u64, s: f64, draws: u64, head: usize, seed: u64) -> (f64, usize) {
    let z = Zipf::new(n, s);
    let mut rng = Rng::new(seed);
    let mut counts = vec![0u64; head + 1];
    for _ in 0..draws {
        let k = z.sample(&mut rng);
        assert!((1..=n).contains(&k), "rank {k} outside 1..={n}");
        let i = ((k - 1) as usize).min(head);
        counts[i] += 1;
    }
    let p = exact(n, s);
    let mut expected: Vec<f64> = p[..head.min(p.len())]
        .iter()
        .map(|x| x * draws as f64)
        .collect();
    let tail: f64 = p[head.min(p.len())..].iter().sum::<f64>() * draws as f64;
    expected.push(tail);
    let mut chi = 0.0;
    let mut dof = 0;
    for (o, e) in counts.iter().zip(&expected) {
        if *e > 5.0 {
            chi += (*o as f64 - e).powi(2) / e;
            dof += 1;
        }
    }
    (chi, dof - 1)
}

#[test]
fn matches_the_exact_distribution_for_several_exponents() {
    // 99.9% quantile of chi-square with k degrees of freedom is below k + 4.5*sqrt(2k)
    // for the k used here; a sampler off by a few percent on one rank fails.
    for (n, s) in [
        (1000u64, 0.99),
        (1000, 1.0),
        (50, 1.5),
        (100_000, 0.5),
        (10, 2.0),
    ] {
        let (chi, dof) = chi_square(n, s, 400_000, 40, 42);
        let bound = dof as f64 + 4.5 * (2.0 * dof as f64).sqrt();
        assert!(
            chi < bound,
            "n={n} s={s}: chi2={chi:.1} with {dof} dof (bound {bound:.1})"
        );
    }
}

#[test]
fn the_most_popular_rank_has_the_right_share() {
    let (n, s) = (1000u64, 0.99);
    let z = Zipf::new(n, s);
    let mut rng = Rng::new(7);
    let draws = 200_000;
    let ones = (0..draws).filter(|_| z.sample(&mut rng) == 1).count() as f64;
    let p1 = exact(n, s)[0];
    let got = ones / draws as f64;
    assert!(
        (got - p1).abs() / p1 < 0.03,
        "P(1) = {got:.4}, expected {p1:.4}"
    );
}

#[test]
fn a_single_element_and_a_huge_key_space_work() {
    let mut rng = Rng::new(1);
    let one = Zipf::new(1, 0.99);
    assert!((0..100).all(|_| one.sample(&mut rng) == 1));
    let huge = Zipf::new(u64::MAX / 4, 0.99);
    for _ in 0..10_000 {
        let k = huge.sample(&mut rng);
        assert!((1..=u64::MAX / 4).contains(&k));
    }
}
