//! Configuration files: any text gives a configuration or a list of problems, each with a
//! message; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| (name == "SET").then(|| "value".to_owned());
    if let Err(e) = Config::from_toml_str_with_env(text, &env) {
        assert!(!e.problems.is_empty());
        assert!(e.problems.iter().all(|p| !p.message.is_empty()));
    }
});
