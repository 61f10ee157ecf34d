//! What operators see: Prometheus metrics that move with traffic, and a request ID that
//! follows each request upstream and back.

use std::collections::HashMap;

use serde_json::Value;

use crate::support::TestGateway;

/// Parses Prometheus text exposition: every line is a `# HELP`/`# TYPE` comment or a
/// sample `name{labels} value`; returns the samples by `name{labels}`.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unclosed labels in {line:?}");
        }
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(
            samples.insert(series.to_owned(), v).is_none(),
            "duplicate {series}"
        );
    }
    samples
}

async fn metrics(gw: &TestGateway) -> HashMap<String, f64> {
    parse(&gw.metrics_text().await)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_and_move_with_traffic() {
    let gw = TestGateway::start().await;
    let before = metrics(&gw).await;
    assert_eq!(before["tokengate_logins_total{stage=\"completed\"}"], 0.0);

    let b = gw.logged_in("alice").await;
    for _ in 0..3 {
        assert_eq!(b.api(&gw.url("/api/x")).await.0, 200);
    }
    assert_eq!(
        reqwest::get(gw.url("/api/x")).await.expect("call").status(),
        403,
        "no X-CSRF header"
    );
    let after = metrics(&gw).await;
    assert_eq!(after["tokengate_logins_total{stage=\"started\"}"], 1.0);
    assert_eq!(after["tokengate_logins_total{stage=\"completed\"}"], 1.0);
    assert_eq!(
        after["tokengate_responses_total{route=\"/api\",status=\"2xx\"}"],
        3.0
    );
    assert_eq!(
        after["tokengate_responses_total{route=\"/api\",status=\"4xx\"}"],
        1.0
    );
    assert_eq!(
        after["tokengate_request_duration_seconds_count{route=\"/api\"}"],
        4.0
    );
    assert_eq!(
        after["tokengate_upstream_duration_seconds_count{route=\"/api\"}"],
        3.0
    );
    assert!(after["tokengate_requests_total"] >= 6.0);
    assert!(after["tokengate_sessions_cached"] >= 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_request_carries_one_id_upstream_and_back() {
    let gw = TestGateway::start().await;
    let resp = reqwest::get(gw.url("/public")).await.expect("call");
    let id = resp.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let seen: Value = resp.json().await.expect("json");
    assert_eq!(seen["headers"]["x-request-id"][0], id.as_str());

    // An ID set by an ingress in front is kept; a malformed one is replaced.
    let client = reqwest::Client::new();
    let kept = client
        .get(gw.url("/public"))
        .header("x-request-id", "ingress-7f3a.1")
        .send()
        .await
        .expect("call");
    assert_eq!(kept.headers()["x-request-id"], "ingress-7f3a.1");
    let replaced = client
        .get(gw.url("/public"))
        .header("x-request-id", "has spaces and <tags>")
        .send()
        .await
        .expect("call");
    assert_ne!(replaced.headers()["x-request-id"], "has spaces and <tags>");
    let other = gw.url("/public");
    let another = reqwest::get(other).await.expect("call");
    assert_ne!(
        another.headers()["x-request-id"].to_str().ok(),
        Some(id.as_str())
    );
}
