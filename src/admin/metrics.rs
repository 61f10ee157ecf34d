//! `GET /metrics`: the gateway's figures (`crate::metrics`) in Prometheus text format.

use std::fmt::Write as _;

use crate::gateway::Gateway;
use crate::metrics::Metrics;

/// The whole `/metrics` page.
pub fn render(gw: &Gateway) -> String {
    let mut out = String::with_capacity(8 * 1024);
    logins_and_tokens(&mut out, gw);
    device_binding(&mut out, &gw.metrics);
    sessions(&mut out, gw);
    connections(&mut out, &gw.metrics);
    routes(&mut out, &gw.metrics);
    out
}

/// One counter family: its help, its type, and a line per label set.
fn counter(out: &mut String, name: &str, help: &str, rows: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, v) in rows {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

/// Requests, logins, refresh and client-credentials grants, logouts, reloads.
fn logins_and_tokens(out: &mut String, gw: &Gateway) {
    let m = &gw.metrics;
    counter(
        out,
        "tokengate_requests_total",
        "Requests received on the public listener.",
        &[("", m.requests.get())],
    );
    counter(
        out,
        "tokengate_logins_total",
        "Logins by stage: sent to the provider, completed with a session, failed at the callback.",
        &[
            ("stage=\"started\"", m.logins_started.get()),
            ("stage=\"completed\"", m.logins_completed.get()),
            ("stage=\"failed\"", m.logins_failed.get()),
        ],
    );
    let r = &gw.refresher.counts;
    counter(
        out,
        "tokengate_refreshes_total",
        "Refresh-token grants by outcome.",
        &[
            ("outcome=\"success\"", r.success.get()),
            ("outcome=\"rejected\"", r.rejected.get()),
            ("outcome=\"unavailable\"", r.unavailable.get()),
            ("outcome=\"invalid\"", r.invalid.get()),
        ],
    );
    let c = &gw.client_tokens.counts;
    counter(
        out,
        "tokengate_client_tokens_total",
        "Client-credentials tokens fetched, by outcome.",
        &[
            ("outcome=\"success\"", c.fetched.get()),
            ("outcome=\"failure\"", c.failed.get()),
        ],
    );
    counter(
        out,
        "tokengate_logouts_total",
        "Logouts by kind.",
        &[
            ("kind=\"user\"", m.logouts.user.get()),
            ("kind=\"backchannel\"", m.logouts.backchannel.get()),
            ("kind=\"admin\"", m.logouts.admin.get()),
        ],
    );
    counter(
        out,
        "tokengate_config_reloads_total",
        "Configuration reloads (SIGHUP), by outcome: applied, or refused with the running configuration kept.",
        &[
            ("outcome=\"applied\"", m.reloads.applied.get()),
            ("outcome=\"refused\"", m.reloads.refused.get()),
        ],
    );
}

fn device_binding(out: &mut String, m: &Metrics) {
    let db = &m.device_binding;
    counter(
        out,
        "tokengate_device_binding_offers_total",
        "Logins whose response offered device binding (DBSC registration); those not bound stay ordinary sessions.",
        &[("", db.offered.get())],
    );
    counter(
        out,
        "tokengate_device_binding_registrations_total",
        "DBSC registrations by outcome: bound (the session now lives on short cookies renewed with proofs of its device key), or refused.",
        &[
            ("outcome=\"bound\"", db.bound.get()),
            ("outcome=\"refused\"", db.refused.get()),
        ],
    );
    counter(
        out,
        "tokengate_device_binding_refreshes_total",
        "Refreshes of bound cookies by outcome: refreshed, challenged (a challenge sent), stale (a used or expired challenge), forged (a proof the device key did not sign: the session ended), ended (the session was gone).",
        &[
            ("outcome=\"refreshed\"", db.refreshed.get()),
            ("outcome=\"challenged\"", db.challenged.get()),
            ("outcome=\"stale\"", db.stale.get()),
            ("outcome=\"forged\"", db.forged.get()),
            ("outcome=\"ended\"", db.ended.get()),
        ],
    );
}

fn sessions(out: &mut String, gw: &Gateway) {
    let ended: Vec<(String, u64)> = gw
        .sessions
        .ended
        .snapshot()
        .map(|(reason, n)| (format!("reason=\"{reason}\""), n))
        .collect();
    let ended: Vec<(&str, u64)> = ended.iter().map(|(l, n)| (l.as_str(), *n)).collect();
    counter(
        out,
        "tokengate_sessions_ended_total",
        "Sessions ended, by reason.",
        &ended,
    );
    let _ = writeln!(
        out,
        "# HELP tokengate_sessions_cached Decrypted sessions in this instance's cache.\n\
         # TYPE tokengate_sessions_cached gauge\ntokengate_sessions_cached {}",
        gw.sessions.cached()
    );
}

fn connections(out: &mut String, m: &Metrics) {
    let _ = writeln!(
        out,
        "# HELP tokengate_connections_open Connections open on the public listener.\n\
         # TYPE tokengate_connections_open gauge\ntokengate_connections_open {}\n\
         # HELP tokengate_connections_refused_total Connections closed as accepted: server.max_connections reached.\n\
         # TYPE tokengate_connections_refused_total counter\ntokengate_connections_refused_total {}",
        m.connections.get(),
        m.connections.refused()
    );
    let _ = writeln!(
        out,
        "# HELP tokengate_connections_accepted_total Connections accepted on the public listener, by worker.\n\
         # TYPE tokengate_connections_accepted_total counter"
    );
    for (worker, n) in m.connections.accepted().enumerate() {
        let _ = writeln!(
            out,
            "tokengate_connections_accepted_total{{worker=\"{worker}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP tokengate_tasks_alive Tasks alive in the workers' runtimes.\n\
         # TYPE tokengate_tasks_alive gauge\ntokengate_tasks_alive {}",
        m.tasks_alive()
    );
}

/// Responses and latency histograms, by route.
fn routes(out: &mut String, m: &Metrics) {
    let _ = writeln!(
        out,
        "# HELP tokengate_responses_total Responses by route and status class.\n\
         # TYPE tokengate_responses_total counter"
    );
    let all = m.routes();
    for route in all {
        for (i, n) in route.by_class().enumerate() {
            let _ = writeln!(
                out,
                "tokengate_responses_total{{route=\"{}\",status=\"{}xx\"}} {}",
                route.label(),
                i + 1,
                n
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP tokengate_request_duration_seconds Time to the response head, by route.\n\
         # TYPE tokengate_request_duration_seconds histogram"
    );
    for route in all {
        route.duration().render(
            out,
            "tokengate_request_duration_seconds",
            &format!("route=\"{}\"", route.label()),
        );
    }
    let _ = writeln!(
        out,
        "# HELP tokengate_upstream_duration_seconds Time the upstream took to its response head, by route.\n\
         # TYPE tokengate_upstream_duration_seconds histogram"
    );
    for route in &all[..all.len() - 2] {
        route.upstream.render(
            out,
            "tokengate_upstream_duration_seconds",
            &format!("route=\"{}\"", route.label()),
        );
    }
}
