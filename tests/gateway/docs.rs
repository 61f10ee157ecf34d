//! The documentation and the examples keep up with the code: every configuration key the
//! parser accepts is described in docs/configuration.md, and every example configuration
//! is one tokengate accepts.

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `pub field:` names of each `pub struct` in src/config/raw.rs, in file order.
fn raw_structs(source: &str) -> Vec<(String, Vec<String>)> {
    let mut structs = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in source.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("pub struct ") {
            let name = rest.split(|c: char| !c.is_alphanumeric()).next();
            current = Some((name.unwrap_or_default().to_owned(), Vec::new()));
        } else if line == "}" {
            structs.extend(current.take());
        } else if let (Some((_, fields)), Some(rest)) = (&mut current, line.strip_prefix("pub ")) {
            if let Some((field, _)) = rest.split_once(':') {
                fields.push(field.trim().to_owned());
            }
        }
    }
    structs
}

/// The text of docs/configuration.md from the heading line that starts with `heading` to
/// the next `## ` heading.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .match_indices(&format!("\n{heading}"))
        .map(|(i, _)| i + 1 + heading.len())
        .find(|&end| matches!(doc.as_bytes().get(end), Some(b'\n' | b' ')))
        .unwrap_or_else(|| panic!("docs/configuration.md has no `{heading}` section"));
    let body = &doc[start..];
    &body[..body.find("\n## ").unwrap_or(body.len())]
}

#[test]
fn every_config_key_is_documented() {
    let doc = read("docs/configuration.md");
    let structs = raw_structs(&read("src/config/raw.rs"));
    assert!(structs.len() >= 8, "raw.rs read as {structs:?}");
    for (name, fields) in &structs {
        // Where each raw table is described. A new table must be added here, and so to
        // the documentation.
        let (heading, row_style) = match name.as_str() {
            "RawConfig" => {
                for table in fields {
                    let heading = if table == "route" {
                        "## `[[route]]`".to_owned()
                    } else {
                        format!("## `[{table}]`")
                    };
                    section(&doc, &heading);
                }
                continue;
            }
            "RawServer" => ("## `[server]`", true),
            // `tls = { cert, key }` is one row of [server].
            "RawTls" => ("## `[server]`", false),
            "RawUpstream" => ("## `[upstream]`", true),
            "RawOidc" => ("## `[oidc]`", true),
            "RawSession" => ("## `[session]`", true),
            "RawTokens" => ("## `[tokens]`", true),
            "RawAdmin" => ("## `[admin]`", true),
            "RawForwardAuth" => ("## `[forward_auth]`", true),
            "RawLog" => ("## `[log]`", true),
            "RawRoute" => ("## `[[route]]`", true),
            "RawTelemetry" => ("## `[telemetry]`", true),
            other => panic!("src/config/raw.rs has a new table {other}: map it to its section in docs/configuration.md here"),
        };
        let text = section(&doc, heading);
        for field in fields {
            let documented = if row_style {
                // A table row whose first cell names the key (alone or with siblings,
                // as in "| `tls_client_cert`, `tls_client_key` |").
                text.lines().any(|line| {
                    line.strip_prefix("| ")
                        .and_then(|row| row.split(" |").next())
                        .is_some_and(|cell| cell.contains(&format!("`{field}`")))
                })
            } else {
                text.contains(field.as_str())
            };
            assert!(
                documented,
                "{name}.{field} is not described under {heading} in docs/configuration.md"
            );
        }
    }
}

/// The environment the examples expect: a client secret and one valid key.
fn example_env(name: &str) -> Option<String> {
    match name {
        "TOKENGATE_CLIENT_SECRET" => Some("example-secret".into()),
        "TOKENGATE_KEY" => Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into()),
        _ => None,
    }
}

fn assert_valid(what: &str, toml: &str) {
    if let Err(e) = tokengate::config::Config::from_toml_str_with_env(toml, &example_env) {
        panic!("{what} is not a valid configuration:\n{e}\n---\n{toml}");
    }
}

/// The block scalar under `key: |` in a YAML file, dedented.
fn yaml_block(yaml: &str, key: &str) -> String {
    let mut lines = yaml.lines();
    let head = lines
        .find(|l| l.trim() == format!("{key}: |"))
        .unwrap_or_else(|| panic!("no `{key}: |` block"));
    let indent_of = |l: &str| l.len() - l.trim_start().len();
    let outer = indent_of(head);
    let body: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || indent_of(l) > outer)
        .collect();
    let inner = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| indent_of(l))
        .min()
        .unwrap_or(0);
    body.iter()
        .map(|l| l.get(inner..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_example_configurations_are_valid() {
    assert_valid(
        "examples/nginx/tokengate.toml",
        &read("examples/nginx/tokengate.toml"),
    );
    assert_valid(
        "examples/nginx/forward-auth.toml",
        &read("examples/nginx/forward-auth.toml"),
    );
    let configmap = yaml_block(
        &read("examples/kubernetes/configmap.yaml"),
        "tokengate.toml",
    );
    assert!(configmap.contains("[[route]]"), "{configmap}");
    assert_valid(
        "tokengate.toml in examples/kubernetes/configmap.yaml",
        &configmap,
    );
}
