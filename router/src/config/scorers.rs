//! The `[scorers.<name>]` sections: remote churn scorers, validated into [`RemoteScorerConfig`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::raw::RawScorer;
use super::{ConfigError, error};

/// A churn model served elsewhere over the Open Inference Protocol (KServe v2, gRPC): Triton, KServe, MLServer,
/// or another Switchyard. Records are validated against the in-process scorer's schema before they are sent.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteScorerConfig {
    /// Its name in config (what policy targets name as `scorer`).
    pub name: String,
    /// The server's gRPC endpoint, `http://host:port` (or `https://`, verified against the system's roots).
    pub url: String,
    /// The model's name on that server.
    pub model: String,
    /// The model's version (empty: the server's choice).
    pub version: String,
    /// The output tensor holding the churn probability...
    pub output: String,
    /// ...in this column (`probability`: 0; a `predict_proba` of two classes: 1).
    pub column: usize,
    /// Request-level parameters sent with every call (e.g. MLServer's `content_type = "pd"`).
    pub parameters: BTreeMap<String, String>,
    /// Connecting to the server.
    pub connect_timeout: Duration,
    /// One call, whatever the caller's deadline (the sooner of the two applies).
    pub timeout: Duration,
    /// The circuit breaker, as for LLM backends.
    pub breaker: llm::BreakerConfig,
    /// At or above this probability the verdict is churn (`None`: the in-process model's threshold).
    pub threshold: Option<f32>,
}

pub(super) fn scorers(
    path: &Path,
    raw: BTreeMap<String, RawScorer>,
    backends: &BTreeMap<String, (llm::BackendConfig, llm::GuardConfig)>,
) -> Result<BTreeMap<String, RemoteScorerConfig>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, s) in raw {
        let key = |field: &str| format!("scorers.{name}.{field}");
        let err = |field: &str, reason: String| error(path, &key(field), reason);
        let duration = |field: &str, value: &str| {
            humantime::parse_duration(value).map_err(|e| err(field, format!("{value:?} is not a duration ({e})")))
        };
        if backends.contains_key(&name) {
            return Err(error(
                path,
                &format!("scorers.{name}"),
                "a backend has the same name (circuits and health checks are named by it)".to_owned(),
            ));
        }
        if !(s.url.starts_with("http://") || s.url.starts_with("https://")) {
            return Err(err(
                "url",
                format!("{:?} is not an http(s) URL of a gRPC endpoint", s.url),
            ));
        }
        for (field, value) in [("model", &s.model), ("output", &s.output)] {
            if value.trim().is_empty() {
                return Err(err(field, "must not be empty".to_owned()));
            }
        }
        if let Some(threshold) = s.threshold
            && !(0.0..=1.0).contains(&threshold)
        {
            return Err(err("threshold", format!("{threshold} is outside [0, 1]")));
        }
        if s.breaker_failures == 0 {
            return Err(err("breaker_failures", "must be at least 1".to_owned()));
        }
        let timeout = duration("timeout", &s.timeout)?;
        out.insert(
            name.clone(),
            RemoteScorerConfig {
                name: name.clone(),
                url: s.url.trim_end_matches('/').to_owned(),
                model: s.model,
                version: s.version,
                output: s.output,
                column: s.column,
                parameters: s.parameters,
                connect_timeout: duration("connect_timeout", &s.connect_timeout)?,
                timeout,
                breaker: llm::BreakerConfig {
                    failure_threshold: s.breaker_failures,
                    open_for: duration("breaker_open_for", &s.breaker_open_for)?,
                    probe_timeout: timeout,
                },
                threshold: s.threshold,
            },
        );
    }
    Ok(out)
}
