//! Session reads at scale: SESSIONS sessions in the embedded store (the default), then
//! LOOKUPS reads of random sessions among them, one at a time, timed each: the store's
//! own read (`SessionStore::get`), and a cache miss as a request meets it
//! (`Sessions::load`: read, open the sealed record, parse it). Prints p50, p99 and the
//! maximum of each. The target: p99 of a read at most 1 ms at 1,000,000 sessions.
//!
//!   cargo bench --bench store_lookup [-- SESSIONS [LOOKUPS]]   (1000000, 100000)
//!
//! Filling the store commits every session to disk as the gateway does (about half a
//! millisecond each here), so a million take minutes. Run by `cargo test`, it only checks
//! itself on 1,000 sessions.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokengate::crypto::KeyRing;
use tokengate::session::embedded::EmbeddedStore;
use tokengate::session::{SessionStore, Sessions, StoreKey};

#[path = "records.rs"]
mod records;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    let numbers: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sessions = numbers
        .first()
        .copied()
        .unwrap_or(if full { 1_000_000 } else { 1_000 });
    let lookups = numbers
        .get(1)
        .copied()
        .unwrap_or(if full { 100_000 } else { 1_000 });
    let dir = std::env::temp_dir().join(format!("tokengate-lookup-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(&dir, sessions, lookups));
    let _ = std::fs::remove_dir_all(&dir);
    ExitCode::SUCCESS
}

async fn run(dir: &std::path::Path, count: usize, lookups: usize) {
    let store: Arc<dyn SessionStore> = Arc::new(EmbeddedStore::open(dir).expect("store opens"));
    let keys = Arc::new(KeyRing::new(&[[7u8; 32]]).expect("one key"));
    // No decrypted-session cache: every read below is a miss, as for a session this
    // instance has not seen yet.
    let sessions = Sessions::new(
        store.clone(),
        keys,
        Duration::from_secs(8 * 3600),
        Duration::from_secs(7 * 86400),
        0,
    );
    let started = Instant::now();
    let mut ids: Vec<StoreKey> = Vec::with_capacity(count);
    for i in 0..count {
        let (id, _) = sessions.create(records::record(i)).await.expect("create");
        ids.push(id.store_key());
        if (i + 1) % 100_000 == 0 {
            eprintln!(
                "{} sessions stored, {:.0} s",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let file = std::fs::metadata(dir.join("sessions.redb")).map_or(0, |m| m.len());
    println!(
        "{count} sessions stored in {:.1} s; store file {:.0} MiB",
        started.elapsed().as_secs_f64(),
        file as f64 / (1024.0 * 1024.0)
    );

    // A fixed sequence of random picks (xorshift), the same on every run.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut pick = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ids[(x % ids.len() as u64) as usize]
    };
    let mut store_reads = Vec::with_capacity(lookups);
    let mut session_loads = Vec::with_capacity(lookups);
    for _ in 0..lookups {
        let key = pick();
        let t = Instant::now();
        let found = store.get(&key).await.expect("get");
        store_reads.push(t.elapsed());
        assert!(found.is_some(), "a stored session is found");
        let key = pick();
        let t = Instant::now();
        let live = sessions.load(key).await.expect("load");
        session_loads.push(t.elapsed());
        assert!(live.is_some(), "a stored session opens");
    }
    report("store read (SessionStore::get)", &mut store_reads);
    report(
        "cache miss (Sessions::load: read, open, parse)",
        &mut session_loads,
    );
}

fn report(what: &str, times: &mut [Duration]) {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{what}: {} reads, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        times.len(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
}
