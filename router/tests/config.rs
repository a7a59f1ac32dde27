//! Invalid config is refused with the file, the key and the reason: the main config in-process
//! (`Config::load`), the policy and the whole command through `switchyard validate`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;

use support::{TempDir, config};

/// Runs `switchyard validate` on a [`config`]-style text; returns success, stderr, and the main file's path.
fn validate(text: &str) -> (bool, String, String) {
    let dir = TempDir::new();
    let path = support::write_config(&dir.0, text);
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["validate", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        path.display().to_string(),
    )
}

#[test]
fn the_default_and_test_configs_are_valid() {
    let default = support::repo().join("deploy/config/switchyard.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["validate", "--config", default.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(": ok") && stdout.contains("4 targets, 3 rules"),
        "{stdout}"
    );
    let (ok, stderr, _) = validate(&config("http://127.0.0.1:1/v1", "1s"));
    assert!(ok, "{stderr}");
}

/// Loads a [`config`]-style text in-process; returns the error (if any) and the main file's path.
fn load(text: &str) -> (Option<String>, String) {
    let dir = TempDir::new();
    let path = support::write_config(&dir.0, text);
    let loaded = switchyard::config::Config::load(&path);
    (loaded.err().map(|e| e.to_string()), path.display().to_string())
}

#[test]
fn invalid_main_configs_name_file_key_and_reason() {
    let good = config("http://127.0.0.1:1/v1", "1s");
    let cases = [
        (
            good.replace("workers = 2", "workers = 2\nthreads = 4"),
            "unknown field `threads`",
        ),
        (
            good.replace(r#"shutdown_grace = "5s""#, r#"shutdown_grace = "soon""#),
            "server.shutdown_grace",
        ),
        (
            good.replace(r#"listen = "127.0.0.1:1""#, r#"listen = "localhost""#),
            "server.listen",
        ),
        (
            good.replace(
                "max_text_bytes = 32768",
                "max_text_bytes = 32768\nmax_concurrent_streams = 0",
            ),
            "server.max_concurrent_streams: must be at least 1",
        ),
        (
            good.replace(
                "max_text_bytes = 32768",
                "max_text_bytes = 32768\nkeepalive_timeout = \"0s\"",
            ),
            "server.keepalive_timeout: must be longer than zero",
        ),
        (
            good.replace(
                "max_text_bytes = 32768",
                "max_text_bytes = 32768\nmax_connection_age = \"later\"",
            ),
            "server.max_connection_age: \"later\" is not a duration",
        ),
        (
            good.replace(
                "max_text_bytes = 32768",
                "max_text_bytes = 32768\nmax_connection_age_grace = \"5s\"",
            ),
            "server.max_connection_age_grace: \"5s\" is shorter than server.request_timeout (\"60s\")",
        ),
        (
            format!("{good}\n[drift]\nwindow = \"soon\"\n"),
            "drift.window: \"soon\" is not a duration",
        ),
        (
            format!("{good}\n[drift]\nslices = 0\n"),
            "drift.slices: 0 is outside [1, 1000]",
        ),
        (
            format!("{good}\n[drift]\njs_threshold = 1.5\n"),
            "drift.js_threshold: 1.5 is above 1",
        ),
        (
            format!("{good}\n[drift]\npsi_threshold = -0.2\n"),
            "drift.psi_threshold: -0.2 is not a positive number",
        ),
        (
            format!("{good}\n[drift]\nmin_samples = 0\n"),
            "drift.min_samples: must be at least 1",
        ),
        (format!("{good}\n[drift]\nevery = \"1s\"\n"), "unknown field `every`"),
        (
            format!("{good}\n[scorers.remote]\nurl = \"127.0.0.1:8001\"\nmodel = \"m\"\n"),
            "scorers.remote.url: \"127.0.0.1:8001\" is not an http(s) URL",
        ),
        (
            format!("{good}\n[scorers.remote]\nurl = \"http://127.0.0.1:8001\"\n"),
            "scorers.remote.model: must not be empty",
        ),
        (
            format!("{good}\n[scorers.remote]\nurl = \"http://h:1\"\nmodel = \"m\"\nthreshold = 1.5\n"),
            "scorers.remote.threshold: 1.5 is outside [0, 1]",
        ),
        (
            format!("{good}\n[scorers.local]\nurl = \"http://h:1\"\nmodel = \"m\"\n"),
            "scorers.local: a backend has the same name",
        ),
        (
            format!("{good}\n[scorers.remote]\nurl = \"http://h:1\"\nmodel = \"m\"\ntimeout = \"never\"\n"),
            "scorers.remote.timeout",
        ),
        (
            good.replace(r#"base_url = "http"#, r#"base_url = "ftp"#),
            "backends.local.base_url",
        ),
        (
            good.replace(
                "[backends.local]",
                "[backends.local]\napi_key_env = \"SWITCHYARD_TEST_UNSET_KEY\"",
            ),
            "environment variable SWITCHYARD_TEST_UNSET_KEY is not set",
        ),
        (
            good.replace("request-classifier/1.1.0", "request-classifier/9.9.9"),
            "models.classifier",
        ),
        (good.replace("[server]", "[server"), "line 2"),
        (
            good.replace(r#"file = "policy.toml""#, r#"file = "nowhere.toml""#),
            "policy.file",
        ),
        (
            format!("{good}\n[telemetry]\notlp_protocol = \"udp\"\n"),
            "telemetry.otlp_protocol: \"udp\" is not one of",
        ),
        (
            format!("{good}\n[telemetry]\nsample_ratio = 2.0\n"),
            "telemetry.sample_ratio: 2 is outside [0, 1]",
        ),
        (
            format!("{good}\n[telemetry]\notlp_endpoint = \"collector:4317\"\n"),
            "telemetry.otlp_endpoint",
        ),
        (
            format!("{good}\n[telemetry]\ncapture_content = true\nmax_content_bytes = 0\n"),
            "telemetry.max_content_bytes",
        ),
        (
            good.replace("[backends.local]", "[backends.local]\ninter_token_timeout = \"never\""),
            "backends.local.inter_token_timeout",
        ),
    ];
    for (text, expected) in cases {
        let (error, path) = load(&text);
        let error = error.unwrap_or_else(|| panic!("accepted a config that should fail with {expected:?}"));
        assert!(error.contains(&path), "the file is named: {error}");
        assert!(error.contains(expected), "want {expected:?} in {error}");
    }
    // The command says the same.
    let (ok, stderr, path) = validate(&good.replace("workers = 2", "workers = 2\nthreads = 4"));
    assert!(
        !ok && stderr.contains(&path) && stderr.contains("unknown field `threads`"),
        "{stderr}"
    );
}

#[test]
fn invalid_policies_name_file_line_key_and_reason() {
    let good = config("http://127.0.0.1:1/v1", "1s");
    let split = |weights: (u32, u32)| {
        good.replace(
            "target = \"churn\"\n",
            &format!(
                "split = [{{ target = \"churn\", weight = {} }}, {{ target = \"retention\", weight = {} }}]\n",
                weights.0, weights.1
            ),
        )
    };
    let cases = [
        (
            good.replace(r#"target = "churn""#, r#"target = "nowhere""#),
            "policy.toml:27: rules[0].target: no target named \"nowhere\"",
        ),
        (
            good.replace(r#"default_target = "assistant""#, r#"default_target = "x""#),
            "policy.toml:2: default_target: no target named \"x\"",
        ),
        (
            good.replace("min_confidence = 0.5", "min_confidence = 1.5"),
            "policy.toml:26: rules[0].min_confidence: 1.5 is not a probability",
        ),
        (
            good.replace(r#"message = "not here""#, ""),
            "targets.refuse.message: required for reject targets",
        ),
        (
            good.replace("[targets.churn]\nkind = \"classical\"", "[targets.churn]\nkind = \"classical\"\nscorer = \"far\""),
            "policy.toml:6: targets.churn.scorer: no scorer named \"far\" in the main config's [scorers]",
        ),
        (
            good.replace("[targets.assistant]\n", "[targets.assistant]\nscorer = \"far\"\n"),
            "targets.assistant.scorer: only classical and hybrid targets score",
        ),
        (
            good.replace("[targets.assistant]\n", "[targets.assistant]\nuser_prompt = \"{{ text \"\n"),
            "policy.toml:8: targets.assistant.user_prompt",
        ),
        (
            good.replace("[targets.churn]\n", "[targets.churn]\nfallbacks = [\"local\"]\n"),
            "targets.churn.fallbacks: only llm and hybrid targets take them",
        ),
        (
            good.replace("backend = \"local\"\n", "backend = \"local\"\nfallbacks = [\"nope\"]\n"),
            "targets.assistant.fallbacks[0]: no backend named \"nope\"",
        ),
        (
            good.replace("schema_version = 1", "schema_version = 2"),
            "policy.toml:1: schema_version: 2 is not supported",
        ),
        (
            good.replace(r#"labels = ["churn_score"]"#, r#"labels = ["churn_scroe"]"#),
            "rules[0].labels[0]: \"churn_scroe\" is not a classifier label",
        ),
        (
            good.replace(r#"groups = ["customer_record"]"#, r#"groups = ["customer_records"]"#),
            "rules[1].groups[0]: \"customer_records\" is not a label group",
        ),
        (split((90, 20)), "rules[0].split: weights sum to 110, not 100"),
        (split((0, 100)), "rules[0].split[0].weight: must be at least 1"),
        (
            good.replace(
                "[[rules]]\nname = \"score-record\"",
                "[[rules]]\nname = \"all-records\"\ngroups = [\"customer_record\"]\ntarget = \"retention\"\n\n[[rules]]\nname = \"score-record\"",
            ),
            "rules[1].name: rule \"score-record\" is unreachable: rule \"all-records\" before it",
        ),
        (
            good.replace(
                "target = \"churn\"\n",
                "target = \"churn\"\nshadow = { target = \"churn\", percent = 10 }\n",
            ),
            "rules[0].shadow.target: \"churn\" already serves this rule",
        ),
        (
            good.replace(
                "target = \"churn\"\n",
                "target = \"churn\"\nshadow = { target = \"retention\", percent = 0 }\n",
            ),
            "rules[0].shadow.percent: 0 is outside [1, 100]",
        ),
        (
            good.replace(
                "allow_force_target = [\"churn\", \"assistant\", \"refuse\"]",
                "allow_force_target = [\"churn\", \"nope\"]",
            ),
            "tenants.ops.allow_force_target[1]: no target named \"nope\"",
        ),
        (
            good.replace("[tenants.ops]\n", "[tenants.ops]\nabstain_below = 0.3\n"),
            "tenants.ops.abstain_below: overrides nothing",
        ),
        (
            good.replace("[targets.assistant]\n", "[targets.assistant]\non_unavailable = \"score_only\"\n"),
            "targets.assistant.on_unavailable: only hybrid targets have a score",
        ),
        (good.replace("[[rules]]", "[[rule]]"), "unknown field `rule`"),
    ];
    for (text, expected) in cases {
        let (ok, stderr, path) = validate(&text);
        assert!(!ok, "accepted a policy that should fail with {expected:?}");
        let policy = path.replace("switchyard.toml", "policy.toml");
        assert!(stderr.contains(&policy), "the policy file is named: {stderr}");
        assert!(stderr.contains(expected), "want {expected:?} in {stderr}");
    }
}

#[test]
fn the_checked_in_json_schema_is_the_generated_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("schema")
        .output()
        .unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let checked_in = std::fs::read_to_string(support::repo().join("docs/policy.schema.json")).unwrap();
    assert_eq!(
        generated, checked_in,
        "docs/policy.schema.json is stale: regenerate it with `switchyard schema > docs/policy.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(schema["additionalProperties"], false, "unknown keys are refused");
    assert!(schema["properties"]["rules"].is_object());
}

#[test]
fn the_annotated_example_policy_is_valid() {
    let example = support::repo().join("docs/policy-example.toml");
    let text = config("http://127.0.0.1:1/v1", "1s")
        .replace("file = \"policy.toml\"", &format!("file = \"{}\"", example.display()))
        + "\n[backends.canary]\nbase_url = \"http://127.0.0.1:2/v1\"\nmodel = \"smollm2\"\n";
    let dir = TempDir::new();
    let path = support::write_config(&dir.0, &text);
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["validate", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("5 targets, 6 rules, 2 tenants (1 tenant rules)"),
        "{stdout}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

    /// Any text as the main config, or the test config with one line replaced by arbitrary text, loads or is
    /// refused naming the file, a key and a reason (never a panic).
    #[test]
    fn any_config_text_loads_or_is_refused_with_a_key(
        text in ".{0,300}",
        line in 0usize..200,
        replacement in "[ -~]{0,60}",
    ) {
        let dir = TempDir::new();
        let base = config("http://127.0.0.1:1/v1", "1s");
        let (policy, main) = base.split_once(support::POLICY_END).unwrap();
        let mut lines: Vec<&str> = main.lines().collect();
        let at = line % lines.len();
        lines[at] = &replacement;
        for candidate in [text.clone(), lines.join("\n")] {
            let path = support::write_config(&dir.0, &format!("{policy}{}{candidate}", support::POLICY_END));
            if let Err(error) = switchyard::config::Config::load(&path) {
                proptest::prop_assert!(!error.key.is_empty() && !error.reason.is_empty(), "{error}");
                proptest::prop_assert_eq!(&error.file, &path);
            }
        }
    }
}
