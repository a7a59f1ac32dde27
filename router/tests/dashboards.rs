//! The Grafana dashboard, the alert rules and the HPA's adapter rule name only metrics the gateway exports: a
//! running gateway serves every kind of request (scored, LLM whole and streamed, hybrid), reloads, judges drift,
//! and its `/metrics` must hold every series name the PromQL in those files reads. A renamed metric or a typo in
//! a panel fails here instead of showing an empty graph in production.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::{FakeLlm, Fault, Gateway, config, repo, request, stream_events, telco_record};

/// Drift judged after a few requests, evaluated often (as in drift.rs).
const FAST_DRIFT: &str = "\n[drift]\nmin_samples = 20\nevaluate_every = \"100ms\"\n";

/// Keywords and aggregation operators (an aggregation may be followed by `by (...)` rather than `(`).
const PROMQL_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// The metric names a PromQL expression reads: identifiers that are not functions, keywords, label names (in
/// `{...}` or a grouping), strings, ranges or Grafana variables.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut kept = String::new();
    let mut depth_braces = 0;
    let mut depth_brackets = 0;
    let mut quote: Option<char> = None;
    for c in expr.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '{') => depth_braces += 1,
            (None, '}') => depth_braces -= 1,
            (None, '[') => depth_brackets += 1,
            (None, ']') => depth_brackets -= 1,
            (None, c) if depth_braces == 0 && depth_brackets == 0 => kept.push(c),
            _ => {}
        }
    }
    let tokens = tokenize(&kept);
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        let next = tokens.get(i + 1).map(String::as_str);
        if matches!(
            token.as_str(),
            "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
        ) && next == Some("(")
        {
            // Skip the grouping's label list.
            while i < tokens.len() && tokens[i] != ")" {
                i += 1;
            }
        } else if is_identifier(token) && next != Some("(") && !PROMQL_KEYWORDS.contains(&token.as_str()) {
            let after_dollar = i > 0 && tokens[i - 1] == "$";
            if !after_dollar {
                names.insert(token.clone());
            }
        }
        i += 1;
    }
    names
}

/// Identifiers, numbers and single punctuation characters.
fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '.' {
            current.push(c);
            continue;
        }
        if !current.is_empty() {
            tokens.push(std::mem::take(&mut current));
        }
        if !c.is_whitespace() {
            tokens.push(c.to_string());
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

fn is_identifier(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Every `expr` of a Grafana dashboard (panels, rows' panels, templating queries).
fn dashboard_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => dashboard_exprs(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| dashboard_exprs(item, out)),
        _ => {}
    }
}

/// The values of `key:` in a YAML file, block scalars (`key: |`) included.
fn yaml_values(text: &str, key: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut values = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start().trim_start_matches("- ");
        let Some(value) = trimmed.strip_prefix(&format!("{key}:")) else {
            continue;
        };
        let value = value.trim();
        if value == "|" || value == ">-" {
            let indent = line.len() - line.trim_start().len();
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .copied()
                .collect();
            values.push(block.join("\n"));
        } else {
            values.push(value.trim_matches('\'').trim_matches('"').to_owned());
        }
    }
    values
}

/// Series names in a Prometheus text exposition.
fn exported_names(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_extractor_reads_metric_names_and_nothing_else() {
    let expr = r#"histogram_quantile(0.99, sum by (le, switchyard_target) (rate(rpc_server_call_duration_seconds_bucket{rpc_method=~"a.b/.*"}[$__rate_interval]))) / on (x) group_left count(up_total offset 5m) > bool 3"#;
    let names: Vec<String> = metric_names(expr).into_iter().collect();
    assert_eq!(names, ["rpc_server_call_duration_seconds_bucket", "up_total"]);
    let alerts =
        "- alert: A\n  expr: |\n    sum(a_total)\n      / sum(b_total)\n  for: 1m\n- alert: B\n  expr: max(c) == 2\n";
    let exprs = yaml_values(alerts, "expr");
    assert_eq!(exprs.len(), 2);
    let names: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["a_total", "b_total", "c"]);
}

#[tokio::test]
async fn the_dashboard_and_the_alert_rules_name_only_metrics_the_gateway_exports() {
    let llm = FakeLlm::start(vec![Fault::Ok]).await;
    // The explanation check observes (it reports, leaves the fake's text), so its counters move.
    let text = config(&llm.base_url(), "3s").replace("check = \"off\"", "check = \"observe\"") + FAST_DRIFT;
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.client().await;
    for _ in 0..25 {
        client.route(request("", Some(telco_record()))).await.unwrap();
    }
    client
        .route(request("what is the capital of france?", None))
        .await
        .unwrap();
    let mut streamed = request("what is the capital of france?", None);
    streamed.tenant = "ops".to_owned();
    assert!(!stream_events(&mut client, streamed).await.is_empty());
    client
        .route(request("why might this customer leave?", Some(telco_record())))
        .await
        .unwrap();
    gateway.hangup();
    assert_eq!(gateway.admin_post("/models/reload").await.0, 200);

    // Drift gauges appear once an evaluation has judged the window; the policy reload once SIGHUP is handled.
    let deadline = Instant::now() + Duration::from_secs(20);
    let exported = loop {
        let (status, scrape) = gateway.admin_get("/metrics").await;
        assert_eq!(status, 200);
        let names = exported_names(&scrape);
        if names.contains("switchyard_drift_js_distance") && names.contains("switchyard_policy_reloads_total") {
            break names;
        }
        assert!(
            Instant::now() < deadline,
            "drift or reload metrics never appeared: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let observability = repo().join("deploy/observability");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(observability.join("grafana/dashboards/switchyard.json")).unwrap(),
    )
    .unwrap();
    let mut sources: Vec<(String, String)> = Vec::new();
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard, &mut exprs);
    assert!(
        exprs.len() >= 25,
        "the dashboard's queries were not found: {}",
        exprs.len()
    );
    sources.extend(
        exprs
            .into_iter()
            .map(|e| ("grafana/dashboards/switchyard.json".to_owned(), e)),
    );
    let alerts = yaml_values(
        &std::fs::read_to_string(observability.join("alerts.yml")).unwrap(),
        "expr",
    );
    assert!(alerts.len() >= 7, "the alert rules were not found: {}", alerts.len());
    sources.extend(alerts.into_iter().map(|e| ("alerts.yml".to_owned(), e)));
    let adapter = yaml_values(
        &std::fs::read_to_string(repo().join("deploy/k8s/prometheus-adapter-rules.yaml")).unwrap(),
        "seriesQuery",
    );
    assert_eq!(adapter.len(), 1);
    sources.extend(
        adapter
            .into_iter()
            .map(|e| ("k8s/prometheus-adapter-rules.yaml".to_owned(), e)),
    );

    let mut read = BTreeSet::new();
    let mut unknown = Vec::new();
    for (file, expr) in &sources {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{file}: no metric in {expr:?}");
        for name in names {
            if !exported.contains(&name) {
                unknown.push(format!("{file}: {name}"));
            }
            read.insert(name);
        }
    }
    assert!(unknown.is_empty(), "names the gateway does not export: {unknown:#?}");
    assert!(read.len() >= 20, "only {} distinct metrics read: {read:?}", read.len());
}
