//! Raw argon2id as Roster's hash workers run it (one reused arena per thread), at the
//! shipped default cost, on the calling thread: per-hash times of `--hashes N` hashes
//! in `--rounds R` rounds. `benches/argon2.sh` pins it to one core and alternates it with
//! `@node-rs/argon2` (benches/argon2-node) on the same core.
//!
//! cargo bench --bench argon2 -- --hashes 40 --rounds 3

#![allow(clippy::expect_used)]

use std::time::Instant;

use roster::security::password::{Argon2Worker, HashParams, params};

fn main() {
    let mut hashes = 40usize;
    let mut rounds = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse().ok()).expect("a number");
        match a.as_str() {
            "--hashes" => hashes = value(),
            "--rounds" => rounds = value(),
            _ => {} // cargo bench passes --bench
        }
    }
    let cost = HashParams {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };
    let mut worker = Argon2Worker::new(params(cost).expect("default cost")).expect("arena");
    for round in 0..rounds {
        let mut ms: Vec<f64> = (0..hashes)
            .map(|_| {
                let t = Instant::now();
                worker.hash("correct horse battery staple").expect("hash");
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        let median = ms[ms.len() / 2];
        println!(
            "roster  round {round}: median {median:.2} ms, min {:.2}, max {:.2}, p90 {:.2} ({hashes} hashes, m=19456 t=2 p=1)",
            ms[0],
            ms[ms.len() - 1],
            ms[ms.len() * 9 / 10]
        );
    }
}
