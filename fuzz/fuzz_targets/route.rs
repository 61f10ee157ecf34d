//! Route matching and the upstream URI of any request path: a match is always on a
//! segment boundary, and rewriting never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::config::Config;
use tokengate::route::{Route, RouteTable};

const CONFIG: &str = r#"
[oidc]
issuer = "http://127.0.0.1:1"
client_id = "c"
client_secret = "s"
[session]
keys = ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]
store = "memory"
[[route]]
path = "/api"
upstream = "http://127.0.0.1:2/base"
token = "user"
strip_prefix = true
[[route]]
path = "/api/v2"
upstream = "http://127.0.0.1:3"
token = "none"
[[route]]
path = "/"
upstream = "http://127.0.0.1:4"
token = "none"
"#;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let config = Config::from_toml_str(CONFIG).expect("fuzz config");
    let routes: Vec<Route> = config
        .routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Route::from_config(i, r))
        .collect();
    let table = RouteTable::new(routes);
    if let Some(route) = table.find(path) {
        let rest = &path[route.prefix.len().min(path.len())..];
        assert!(
            route.prefix == "/" || rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'),
            "{path:?} matched {} off a segment boundary",
            route.prefix
        );
        let _ = route.upstream_uri(path);
    }
});
