//! The Grafana dashboard, the alert rules and the HPA's adapter rule name only metrics the gateway exports: a
//! running gateway serves every kind of request (scored, LLM whole and streamed, hybrid), reloads, judges drift,
//! and its `/metrics` must hold every series name the PromQL in those files reads. A renamed metric or a typo in
//! a panel fails here instead of showing an empty graph in production. Then a real Prometheus scrapes a gateway
//! under traffic: every panel's query must return data and every alert rule must evaluate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::{
    FakeLlm, Fault, Gateway, TempDir, config, free_port, repo, request, stream_events, telco_record,
    with_backend_settings,
};
use switchyard_proto::v1::router_client::RouterClient;
use tonic::transport::Channel;

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

/// Where a query comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    Dashboard,
    Alerts,
    Adapter,
}

/// Every PromQL query deploy/ ships: the dashboard's, the alert rules', the HPA adapter's series query.
fn queries() -> Vec<(Source, String)> {
    let observability = repo().join("deploy/observability");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(observability.join("grafana/dashboards/switchyard.json")).unwrap(),
    )
    .unwrap();
    let mut panels = Vec::new();
    dashboard_exprs(&dashboard, &mut panels);
    assert!(
        panels.len() >= 25,
        "the dashboard's queries were not found: {}",
        panels.len()
    );
    let alerts = yaml_values(
        &std::fs::read_to_string(observability.join("alerts.yml")).unwrap(),
        "expr",
    );
    assert!(alerts.len() >= 7, "the alert rules were not found: {}", alerts.len());
    let adapter = yaml_values(
        &std::fs::read_to_string(repo().join("deploy/k8s/prometheus-adapter-rules.yaml")).unwrap(),
        "seriesQuery",
    );
    assert_eq!(adapter.len(), 1);
    let tagged = |source: Source, exprs: Vec<String>| exprs.into_iter().map(move |e| (source, e));
    tagged(Source::Dashboard, panels)
        .chain(tagged(Source::Alerts, alerts))
        .chain(tagged(Source::Adapter, adapter))
        .collect()
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

/// One request of each kind the dashboard shows: scored, an LLM answer whole and streamed, a hybrid answer.
async fn one_of_each(client: &mut RouterClient<Channel>) {
    client.route(request("", Some(telco_record()))).await.unwrap();
    // The first LLM call of a gateway may meet the fake's scripted failure.
    let _ = client.route(request("what is the capital of france?", None)).await;
    let mut streamed = request("what is the capital of france?", None);
    streamed.tenant = "ops".to_owned();
    assert!(!stream_events(client, streamed).await.is_empty());
    client
        .route(request("why might this customer leave?", Some(telco_record())))
        .await
        .unwrap();
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
    one_of_each(&mut client).await;
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

    let sources = queries();
    let mut read = BTreeSet::new();
    let mut unknown = Vec::new();
    for (file, expr) in &sources {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{file:?}: no metric in {expr:?}");
        for name in names {
            if !exported.contains(&name) {
                unknown.push(format!("{file:?}: {name}"));
            }
            read.insert(name);
        }
    }
    assert!(unknown.is_empty(), "names the gateway does not export: {unknown:#?}");
    assert!(read.len() >= 20, "only {} distinct metrics read: {read:?}", read.len());
}

/// A real Prometheus (`SWITCHYARD_PROMETHEUS`, which deploy/test.sh sets) scraping one gateway every second with
/// the alert rules loaded, labelling its series with `namespace` and `pod` as the Prometheus Operator's
/// ServiceMonitor does; killed on drop.
struct Prometheus {
    child: std::process::Child,
    url: String,
    _dir: TempDir,
}

impl Prometheus {
    async fn start(admin: std::net::SocketAddr) -> Self {
        let binary = std::env::var("SWITCHYARD_PROMETHEUS")
            .expect("SWITCHYARD_PROMETHEUS must name a prometheus binary (deploy/test.sh sets it)");
        let dir = TempDir::new();
        let rules = repo().join("deploy/observability/alerts.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: switchyard\n    static_configs:\n      - targets: [\"{admin}\"]\n        labels: {{namespace: switchyard, pod: switchyard-0}}\n",
            rules.display()
        );
        std::fs::write(dir.0.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let child = std::process::Command::new(binary)
            .arg(format!("--config.file={}", dir.0.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.0.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn prometheus");
        let prometheus = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !reqwest::get(format!("{}/-/ready", prometheus.url))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "prometheus did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        prometheus
    }

    /// `GET /api/v1/<path>` with `query`, as JSON.
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> serde_json::Value {
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/{path}", self.url), query).unwrap();
        reqwest::get(url).await.unwrap().json().await.unwrap()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn every_dashboard_query_and_alert_rule_runs_on_a_real_prometheus_scraping_the_gateway() {
    // The first LLM call fails (502 once, no retry), so the error panels have a series too.
    let llm = FakeLlm::start(vec![Fault::Status(502, None), Fault::Ok]).await;
    let text = with_backend_settings(&config(&llm.base_url(), "3s"), "max_attempts = 1")
        .replace("check = \"off\"", "check = \"observe\"")
        + FAST_DRIFT;
    let gateway = Gateway::start(&text).await;
    let prometheus = Prometheus::start(gateway.admin).await;
    let mut client = gateway.client().await;
    for _ in 0..25 {
        client.route(request("", Some(telco_record()))).await.unwrap();
    }
    gateway.hangup();
    assert_eq!(gateway.admin_post("/models/reload").await.0, 200);
    // Traffic for a few scrapes, so rates over the last 10 s have two samples.
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        one_of_each(&mut client).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut failures = Vec::new();
    for (source, expr) in queries() {
        let expr = expr.replace("$__rate_interval", "10s");
        let answer = prometheus.api("query", &[("query", &expr)]).await;
        if answer["status"] != "success" {
            failures.push(format!("{source:?}: {expr}: {}", answer["error"]));
        } else if source != Source::Alerts && answer["data"]["result"].as_array().is_none_or(Vec::is_empty) {
            // Alert expressions are conditions, empty while nothing is wrong; panels and the adapter's series
            // must show data for this traffic.
            failures.push(format!("{source:?}: {expr}: no data"));
        }
    }
    assert!(failures.is_empty(), "queries that fail or show nothing: {failures:#?}");

    // Every rule loaded and evaluated without error (a rule that fails to evaluate reports health "err").
    let rules = prometheus.api("rules", &[]).await;
    let evaluated: Vec<(String, String)> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["health"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(evaluated.len(), 7, "{evaluated:?}");
    assert!(evaluated.iter().all(|(_, health)| health == "ok"), "{evaluated:?}");
}
