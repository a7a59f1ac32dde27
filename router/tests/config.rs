//! `switchyard validate`: invalid config is refused with the file, the key and the reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;

use support::{TempDir, config};

fn validate(text: &str) -> (bool, String, String) {
    let dir = TempDir::new();
    let path = dir.0.join("bad.toml");
    std::fs::write(&path, text).unwrap();
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
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (policy version"));
    let (ok, stderr, _) = validate(&config("http://127.0.0.1:1/v1", "1s"));
    assert!(ok, "{stderr}");
}

#[test]
fn invalid_configs_name_file_key_and_reason() {
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
            good.replace(r#"target = "churn""#, r#"target = "nowhere""#),
            "policy.rules[0].target: no target named \"nowhere\"",
        ),
        (
            good.replace(r#"default_target = "assistant""#, r#"default_target = "x""#),
            "policy.default_target",
        ),
        (
            good.replace(r#"base_url = "http"#, r#"base_url = "ftp"#),
            "backends.local.base_url",
        ),
        (
            good.replace("min_confidence = 0.5", "min_confidence = 1.5"),
            "policy.rules[0].min_confidence",
        ),
        (
            good.replace(r#"message = "not here""#, ""),
            "targets.refuse.message: required for reject targets",
        ),
        (
            good.replace(
                "[backends.local]",
                "[backends.local]\napi_key_env = \"SWITCHYARD_TEST_UNSET_KEY\"",
            ),
            "environment variable SWITCHYARD_TEST_UNSET_KEY is not set",
        ),
        (
            good.replace("request-classifier/1.0.0", "request-classifier/9.9.9"),
            "models.classifier",
        ),
        (good.replace("[server]", "[server"), "line 2"),
        (
            good.replace(
                "[targets.assistant]\n",
                "[targets.assistant]\nuser_prompt = \"{{ text \"\n",
            ),
            "targets.assistant.user_prompt",
        ),
        (
            good.replace("[targets.churn]\n", "[targets.churn]\nfallbacks = [\"local\"]\n"),
            "targets.churn.fallbacks",
        ),
        (
            good.replace("backend = \"local\"\n", "backend = \"local\"\nfallbacks = [\"nope\"]\n"),
            "fallbacks[0]: no backend named \"nope\"",
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
    ];
    for (text, expected) in cases {
        let (ok, stderr, path) = validate(&text);
        assert!(!ok, "accepted a config that should fail with {expected:?}");
        assert!(stderr.contains(&path), "the file is named: {stderr}");
        assert!(stderr.contains(expected), "want {expected:?} in {stderr}");
    }
}
