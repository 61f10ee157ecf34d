//! What the targets share: counting how many inputs reach a target's invariants.
//!
//! With `TOKENGATE_FUZZ_REACH` set, a target counts the non-empty inputs it runs and, for
//! each of its named checkpoints, how many of those inputs got there (once per input); at
//! exit it prints one line:
//!
//! ```text
//! reach logout_token: 1234 inputs; claims checked 1100 (89.1%); accepted 310 (25.1%)
//! ```
//!
//! `scripts/fuzz reach [TARGET…]` replays each corpus once (`-runs=0`) with it set. Without
//! the variable the cost is a few relaxed atomic operations per input.
//!
//! `TOKENGATE_FUZZ_KNOWN` (a comma-separated list of names, see [`known`]) holds back the
//! checks of findings still open, so a run can go on past them.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

const MAX: usize = 8;

static INPUTS: AtomicU64 = AtomicU64::new(0);
static HITS: [AtomicU64; MAX] = [const { AtomicU64::new(0) }; MAX];
/// Checkpoints the current input reached, as bits; added to `HITS` when the next begins.
static CURRENT: AtomicU64 = AtomicU64::new(0);
static COUNTED: AtomicBool = AtomicBool::new(false);
static TARGET: OnceLock<(&'static str, &'static [&'static str])> = OnceLock::new();

extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
}

fn settle() {
    let bits = CURRENT.swap(0, Ordering::Relaxed);
    if COUNTED.load(Ordering::Relaxed) {
        for (i, hits) in HITS.iter().enumerate() {
            if bits & (1 << i) != 0 {
                hits.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

extern "C" fn report() {
    settle();
    let Some((name, labels)) = TARGET.get() else {
        return;
    };
    let inputs = INPUTS.load(Ordering::Relaxed);
    let mut line = format!("reach {name}: {inputs} inputs");
    for (i, label) in labels.iter().enumerate() {
        let n = HITS[i].load(Ordering::Relaxed);
        let share = if inputs == 0 {
            0.0
        } else {
            100.0 * n as f64 / inputs as f64
        };
        line.push_str(&format!("; {label} {n} ({share:.1}%)"));
    }
    eprintln!("{line}");
}

/// Called first for every input: counts it (the empty input libFuzzer runs at start is
/// not counted). `labels` name the checkpoints [`hit`] marks, in order.
pub fn input(target: &'static str, labels: &'static [&'static str], data: &[u8]) {
    if TARGET.set((target, labels)).is_ok() {
        assert!(labels.len() <= MAX);
        if std::env::var_os("TOKENGATE_FUZZ_REACH").is_some() {
            // SAFETY: registers a plain `extern "C" fn` with the C library.
            unsafe { atexit(report) };
        }
    }
    settle();
    COUNTED.store(!data.is_empty(), Ordering::Relaxed);
    if !data.is_empty() {
        INPUTS.fetch_add(1, Ordering::Relaxed);
    }
}

/// The current input reached checkpoint `i` (an index into the labels given to [`input`]).
pub fn hit(i: usize) {
    CURRENT.fetch_or(1 << i, Ordering::Relaxed);
}

/// True when `finding` is listed in `TOKENGATE_FUZZ_KNOWN`: the check for an open finding
/// of that name is held back (docs/security.md, "Fuzzing", lists them).
pub fn known(finding: &str) -> bool {
    static KNOWN: OnceLock<Vec<String>> = OnceLock::new();
    KNOWN
        .get_or_init(|| {
            std::env::var("TOKENGATE_FUZZ_KNOWN")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_owned())
                .collect()
        })
        .iter()
        .any(|k| k == finding)
}

/// Any JSON value, from the fuzzer's bytes.
#[derive(arbitrary::Arbitrary, Debug)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::from(*b),
            Json::Int(i) => Value::from(*i),
            Json::Float(f) => Value::from(*f),
            Json::Str(s) => Value::from(s.as_str()),
            Json::Arr(a) => Value::Array(a.iter().map(Json::value).collect()),
            Json::Obj(o) => object(o),
        }
    }
}

/// A JSON object of `members`, in order (a later duplicate key wins).
pub fn object(members: &[(String, Json)]) -> serde_json::Value {
    serde_json::Value::Object(
        members
            .iter()
            .map(|(k, v)| (k.clone(), v.value()))
            .collect(),
    )
}
