//! Memory per session: the resident memory a process gains by holding SESSIONS sessions
//! created through the store API (`Sessions::create`), for each store, with the
//! decrypted-session cache off and on. The difference is what the cache costs per cached
//! session; the target is that this stays within 1.5 KiB beyond the token bytes.
//!
//!   cargo bench --bench sessions [-- SESSIONS]      (default 100000)
//!
//! Every measurement runs in a process of its own (the binary starts itself again), so
//! memory one measurement freed cannot hide what the next one allocates. Run by `cargo
//! test`, it only checks itself on 1,000 sessions.
//!
//! The records are realistic: a 1,024-byte JWT access token, a 1,000-byte ID token, a
//! 43-character opaque refresh token (the test provider's kind), and the fifteen claims
//! a provider puts in an ID token, each session with its own values.

use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokengate::crypto::KeyRing;
use tokengate::session::embedded::EmbeddedStore;
use tokengate::session::memory::MemoryStore;
use tokengate::session::{SessionStore, Sessions};

#[path = "records.rs"]
mod records;
use records::{record, ACCESS_TOKEN_BYTES, ID_TOKEN_BYTES, REFRESH_TOKEN_BYTES, TOKEN_BYTES};

/// Opens a store in a scratch directory of its own.
type Open = fn(&Path) -> Arc<dyn SessionStore>;

/// The stores measured. Adding a store is adding its line here.
const STORES: &[(&str, Open)] = &[("memory", memory_store), ("embedded", embedded_store)];

fn memory_store(_: &Path) -> Arc<dyn SessionStore> {
    Arc::new(MemoryStore::default())
}

fn embedded_store(dir: &Path) -> Arc<dyn SessionStore> {
    Arc::new(EmbeddedStore::open(dir).expect("embedded store opens"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, store, cache, count] = args.as_slice() {
        if flag == "--one" {
            return measure_one(store, cache == "cache", count.parse().unwrap_or(1000));
        }
    }
    // `cargo bench` passes `--bench`; `cargo test` does not, and gets a quick self-check.
    let full = args.iter().any(|a| a == "--bench");
    let count: usize = match args.iter().find_map(|a| a.parse().ok()) {
        Some(n) => n,
        None if full => 100_000,
        None => 1_000,
    };
    println!(
        "{count} sessions; token bytes per session: {TOKEN_BYTES} \
         (access {ACCESS_TOKEN_BYTES}, ID {ID_TOKEN_BYTES}, refresh {REFRESH_TOKEN_BYTES})"
    );
    println!(
        "{:<9} {:>14} {:>14} {:>14} {:>16}",
        "store", "store only", "store + cache", "cache's share", "beyond tokens"
    );
    for (name, _) in STORES {
        let (Some(store_only), Some(both)) = (child(name, false, count), child(name, true, count))
        else {
            return ExitCode::FAILURE;
        };
        let cache = both - store_only;
        println!(
            "{name:<9} {:>12.0} B {:>12.0} B {:>12.0} B {:>14.0} B",
            store_only,
            both,
            cache,
            cache - TOKEN_BYTES as f64
        );
    }
    println!("(bytes of resident memory per session)");
    ExitCode::SUCCESS
}

/// Runs one measurement in a child process; its bytes of RSS per session.
fn child(store: &str, cache: bool, count: usize) -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    let out = Command::new(exe)
        .args([
            "--one",
            store,
            if cache { "cache" } else { "no-cache" },
            &count.to_string(),
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Creates `count` sessions in `store` and prints the RSS gained per session, in bytes.
fn measure_one(store: &str, cache: bool, count: usize) -> ExitCode {
    let Some((_, open)) = STORES.iter().find(|(name, _)| *name == store) else {
        eprintln!("unknown store {store}");
        return ExitCode::FAILURE;
    };
    let scratch = std::env::temp_dir().join(format!("tokengate-sessions-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let result = runtime.block_on(async {
        let keys = Arc::new(KeyRing::new(&[[7u8; 32]]).expect("one key"));
        let sessions = Sessions::new(
            open(&scratch),
            keys,
            Duration::from_secs(8 * 3600),
            Duration::from_secs(7 * 86400),
            // No cache at all, or room for every session.
            if cache { count as u64 + 1 } else { 0 },
        );
        // One session first, so what the first one allocates once is not counted.
        let (id, _) = sessions.create(record(usize::MAX)).await.expect("create");
        sessions.cached();
        let before = rss_bytes();
        let started = Instant::now();
        for i in 0..count {
            sessions.create(record(i)).await.expect("create");
        }
        let cached = sessions.cached();
        let after = rss_bytes();
        // The first session still opens: the store really holds what was measured.
        assert!(sessions.get(id.store_key()).await.expect("get").is_some());
        eprintln!(
            "{store}, cache {}: {count} created in {:.1} s, {cached} cached",
            if cache { "on" } else { "off" },
            started.elapsed().as_secs_f64()
        );
        after.saturating_sub(before) as f64 / count as f64
    });
    let _ = std::fs::remove_dir_all(&scratch);
    println!("{result}");
    ExitCode::SUCCESS
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}
