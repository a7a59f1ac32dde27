//! Policy file → [`Policy`]: every reference, range and rule checked, every error naming the file, the line (where
//! it can be found), the key and the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::file::{
    AbstainFile, CheckModeFile, ExplanationsFile, KindFile, OnUnavailableFile, PolicyFile, RuleFile, StickyByFile,
    TargetFile, TenantFile,
};
use super::prompt::{self, Prompts};
use super::{
    Abstain, Action, Arm, Band, CheckMode, Conditions, Explanations, OnUnavailable, Permissions, Policy, Rule, Shadow,
    StickyBy, Target, TargetKind, Tenant,
};

/// The policy format this build reads.
pub const SCHEMA_VERSION: u32 = 1;

/// What a policy is checked against: the main config's backends and, when known, the classifier's labels.
#[derive(Debug, Clone, Default)]
pub struct PolicyContext {
    /// Backend names (`[backends.<name>]`).
    pub backends: BTreeSet<String>,
    /// Remote scorer names (`[scorers.<name>]`).
    pub scorers: BTreeSet<String>,
    /// Label → group, from the classifier's metadata (`None`: labels are not checked).
    pub labels: Option<BTreeMap<String, String>>,
    /// The scorer's record fields (`None`: `explanations.field_names` is not checked).
    pub fields: Option<BTreeSet<String>>,
}

/// Why a policy file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {key}: {reason}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct PolicyFileError {
    /// The policy file.
    pub file: PathBuf,
    /// The line of the offending key, when found.
    pub line: Option<usize>,
    /// The offending key, dotted (`rules[2].split`); `-` for the file as a whole.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

/// The JSON Schema of the policy file (what `switchyard schema` prints and `docs/policy.schema.json` holds).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(PolicyFile);
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

/// Parses and checks policy text read from `path`.
pub fn compile(path: &Path, text: &str, context: &PolicyContext) -> Result<Policy, PolicyFileError> {
    let fail = |key: &str, reason: String| PolicyFileError {
        file: path.to_path_buf(),
        line: line_of(text, key),
        key: key.to_owned(),
        reason,
    };
    let file: PolicyFile = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        PolicyFileError {
            file: path.to_path_buf(),
            line,
            key: "-".to_owned(),
            reason: e.message().to_owned(),
        }
    })?;
    Compiler { context, fail: &fail }.policy(file, version(text))
}

/// A short content hash identifying the policy that made a decision.
fn version(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Compiler<'a> {
    context: &'a PolicyContext,
    fail: &'a dyn Fn(&str, String) -> PolicyFileError,
}

impl Compiler<'_> {
    fn err<T>(&self, key: &str, reason: impl Into<String>) -> Result<T, PolicyFileError> {
        Err((self.fail)(key, reason.into()))
    }

    fn policy(&self, file: PolicyFile, version: String) -> Result<Policy, PolicyFileError> {
        if file.schema_version != SCHEMA_VERSION {
            return self.err(
                "schema_version",
                format!(
                    "{} is not supported (this build reads {SCHEMA_VERSION})",
                    file.schema_version
                ),
            );
        }
        let mut targets = BTreeMap::new();
        for (name, target) in file.targets {
            let compiled = self.target(&name, target)?;
            targets.insert(name, compiled);
        }
        let known = |key: &str, name: &str| {
            if targets.contains_key(name) {
                Ok(name.to_owned())
            } else {
                self.err(key, format!("no target named {name:?}"))
            }
        };
        let default_target = known("default_target", &file.default_target)?;
        let abstain = file
            .abstain
            .map(|AbstainFile { below, target }| {
                if !(below > 0.0 && below <= 1.0) {
                    return self.err("abstain.below", format!("{below} is outside (0, 1]"));
                }
                Ok(Abstain {
                    below,
                    target: known("abstain.target", &target)?,
                })
            })
            .transpose()?;
        let rules = self.rules("rules", file.rules, &known, false)?;
        let mut tenants = BTreeMap::new();
        for (name, tenant) in file.tenants {
            let TenantFile {
                allow_force_target,
                abstain_below,
                rules,
                allow_explain,
                show_evaluations,
                allow_reflection,
            } = tenant;
            let prefix = format!("tenants.{name}");
            for (i, target) in allow_force_target.iter().enumerate() {
                known(&format!("{prefix}.allow_force_target[{i}]"), target)?;
            }
            if let Some(below) = abstain_below {
                if abstain.is_none() {
                    return self.err(
                        &format!("{prefix}.abstain_below"),
                        "overrides nothing: the policy has no [abstain]",
                    );
                }
                if !(below > 0.0 && below <= 1.0) {
                    return self.err(&format!("{prefix}.abstain_below"), format!("{below} is outside (0, 1]"));
                }
            }
            let rules = self.rules(&format!("{prefix}.rules"), rules, &known, true)?;
            tenants.insert(
                name,
                Tenant {
                    allow_force_target,
                    abstain_below,
                    rules,
                    permissions: Permissions {
                        explain: allow_explain,
                        evaluations: show_evaluations,
                        reflection: allow_reflection,
                    },
                },
            );
        }
        let explanations = self.explanations(file.explanations.unwrap_or_default())?;
        // Templates are compiled now, so a syntax error is a policy error, not a failed request.
        let prompts = Prompts::compile(targets.values()).map_err(|(key, reason)| (self.fail)(&key, reason))?;
        Ok(Policy {
            version,
            targets: targets.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
            default_target,
            abstain,
            rules,
            tenants,
            prompts,
            explanations,
        })
    }

    fn explanations(&self, file: ExplanationsFile) -> Result<Explanations, PolicyFileError> {
        let defaults = Explanations::default();
        let elevated_from = file.elevated_from.unwrap_or(defaults.elevated_from);
        if !(elevated_from > 0.0 && elevated_from < 1.0) {
            return self.err(
                "explanations.elevated_from",
                format!("{elevated_from} is outside (0, 1)"),
            );
        }
        let top_fields = file.top_fields.unwrap_or(defaults.top_fields);
        if !(1..=5).contains(&top_fields) {
            return self.err(
                "explanations.top_fields",
                format!("{top_fields} is outside 1 to 5 (a prediction reports five fields)"),
            );
        }
        for (field, names) in &file.field_names {
            let key = format!("explanations.field_names.{field}");
            if let Some(fields) = &self.context.fields
                && !fields.contains(field)
            {
                return self.err(&key, format!("the scorer has no field {field:?}"));
            }
            if names.is_empty() || names.iter().any(|n| n.trim().len() < 3) {
                return self.err(&key, "give at least one name, each of 3 characters or more");
            }
        }
        Ok(Explanations {
            mode: match file.check {
                None | Some(CheckModeFile::Enforce) => CheckMode::Enforce,
                Some(CheckModeFile::Observe) => CheckMode::Observe,
                Some(CheckModeFile::Off) => CheckMode::Off,
            },
            retry: file.retry.unwrap_or(defaults.retry),
            elevated_from,
            top_fields,
            field_names: file.field_names,
        })
    }

    fn target(&self, name: &str, t: TargetFile) -> Result<Target, PolicyFileError> {
        let key = |field: &str| format!("targets.{name}.{field}");
        let kind = match t.kind {
            KindFile::Classical => TargetKind::Classical,
            KindFile::Llm => TargetKind::Llm,
            KindFile::Hybrid => TargetKind::Hybrid,
            KindFile::Reject => TargetKind::Reject,
        };
        let uses_llm = matches!(kind, TargetKind::Llm | TargetKind::Hybrid);
        let backends = match (&t.backend, uses_llm) {
            (Some(b), true) => std::iter::once(b).chain(&t.fallbacks).cloned().collect::<Vec<_>>(),
            (None, true) => return self.err(&key("backend"), "required for llm and hybrid targets"),
            (Some(_), false) => return self.err(&key("backend"), "only llm and hybrid targets take one"),
            (None, false) if !t.fallbacks.is_empty() => {
                return self.err(&key("fallbacks"), "only llm and hybrid targets take them");
            }
            (None, false) => Vec::new(),
        };
        for (i, backend) in backends.iter().enumerate() {
            if !self.context.backends.contains(backend) {
                let field = if i == 0 {
                    "backend".to_owned()
                } else {
                    format!("fallbacks[{}]", i - 1)
                };
                return self.err(
                    &key(&field),
                    format!("no backend named {backend:?} in the main config's [backends]"),
                );
            }
        }
        let scorer = match (t.scorer, kind.needs_record()) {
            (Some(_), false) => return self.err(&key("scorer"), "only classical and hybrid targets score"),
            (Some(s), true) if !self.context.scorers.contains(&s) => {
                return self.err(
                    &key("scorer"),
                    format!("no scorer named {s:?} in the main config's [scorers]"),
                );
            }
            (scorer, _) => scorer,
        };
        let on_unavailable = match (t.on_unavailable, t.unavailable_message) {
            (_, Some(_)) if !matches!(t.on_unavailable, Some(OnUnavailableFile::Reject)) => {
                return self.err(
                    &key("unavailable_message"),
                    "only used with on_unavailable = \"reject\"",
                );
            }
            (Some(_), _) if !uses_llm => {
                return self.err(&key("on_unavailable"), "only llm and hybrid targets have backends");
            }
            (None | Some(OnUnavailableFile::Error), _) => OnUnavailable::Error,
            (Some(OnUnavailableFile::ScoreOnly), _) if kind != TargetKind::Hybrid => {
                return self.err(
                    &key("on_unavailable"),
                    "only hybrid targets have a score to fall back to",
                );
            }
            (Some(OnUnavailableFile::ScoreOnly), _) => OnUnavailable::ScoreOnly,
            (Some(OnUnavailableFile::Reject), Some(message)) => OnUnavailable::Reject(message),
            (Some(OnUnavailableFile::Reject), None) => {
                return self.err(&key("unavailable_message"), "required with on_unavailable = \"reject\"");
            }
        };
        if let Some(temperature) = t.temperature
            && !(0.0..=2.0).contains(&temperature)
        {
            return self.err(&key("temperature"), format!("{temperature} is outside [0, 2]"));
        }
        let message = match (kind, t.message) {
            (TargetKind::Reject, Some(m)) => m,
            (TargetKind::Reject, None) => return self.err(&key("message"), "required for reject targets"),
            (_, Some(_)) => return self.err(&key("message"), "only reject targets take one"),
            (_, None) => String::new(),
        };
        let hybrid = kind == TargetKind::Hybrid;
        let max_prompt_chars = t.max_prompt_chars.unwrap_or(prompt::DEFAULT_MAX_PROMPT_CHARS);
        if max_prompt_chars == 0 {
            return self.err(&key("max_prompt_chars"), "must be at least 1");
        }
        Ok(Target {
            name: name.to_owned(),
            kind,
            backends,
            scorer,
            on_unavailable,
            system_prompt: t
                .system_prompt
                .unwrap_or_else(|| prompt::default_system_prompt(hybrid).to_owned()),
            user_prompt: t
                .user_prompt
                .unwrap_or_else(|| prompt::default_user_prompt(hybrid).to_owned()),
            retry_prompt: if hybrid {
                t.retry_prompt
                    .unwrap_or_else(|| prompt::DEFAULT_RETRY_PROMPT.to_owned())
            } else if t.retry_prompt.is_some() {
                return self.err(&key("retry_prompt"), "only hybrid targets take one");
            } else {
                String::new()
            },
            max_prompt_chars,
            max_tokens: t.max_tokens.unwrap_or(256),
            temperature: t.temperature,
            message,
        })
    }

    /// One list of rules (the policy's, or a tenant's when `tenant`): each checked, then checked for rules an
    /// earlier one makes unreachable.
    fn rules(
        &self,
        list: &str,
        rules: Vec<RuleFile>,
        known: &dyn Fn(&str, &str) -> Result<String, PolicyFileError>,
        tenant: bool,
    ) -> Result<Vec<Rule>, PolicyFileError> {
        let mut compiled: Vec<Rule> = Vec::new();
        for (i, rule) in rules.into_iter().enumerate() {
            let prefix = format!("{list}[{i}]");
            let rule = self.rule(&prefix, rule, known, tenant)?;
            if let Some(earlier) = compiled.iter().find(|r| r.name == rule.name) {
                return self.err(&format!("{prefix}.name"), format!("{:?} is used twice", earlier.name));
            }
            let groups = self.context.labels.as_ref();
            if let Some(earlier) = compiled.iter().find(|r| r.when.covers(&rule.when, groups)) {
                return self.err(
                    &format!("{prefix}.name"),
                    format!(
                        "rule {:?} is unreachable: rule {:?} before it matches every request it would",
                        rule.name, earlier.name
                    ),
                );
            }
            compiled.push(rule);
        }
        Ok(compiled)
    }

    fn rule(
        &self,
        prefix: &str,
        r: RuleFile,
        known: &dyn Fn(&str, &str) -> Result<String, PolicyFileError>,
        tenant: bool,
    ) -> Result<Rule, PolicyFileError> {
        let key = |field: &str| format!("{prefix}.{field}");
        if r.name.trim().is_empty() {
            return self.err(&key("name"), "must not be empty");
        }
        if let Some(labels) = &self.context.labels {
            for (i, label) in r.labels.iter().enumerate() {
                if !labels.contains_key(label) {
                    return self.err(
                        &format!("{prefix}.labels[{i}]"),
                        format!("{label:?} is not a classifier label"),
                    );
                }
            }
            let groups: BTreeSet<&String> = labels.values().collect();
            for (i, group) in r.groups.iter().enumerate() {
                if !groups.contains(group) {
                    return self.err(
                        &format!("{prefix}.groups[{i}]"),
                        format!("{group:?} is not a label group of the classifier"),
                    );
                }
            }
        }
        let confidence = self.probability_band(&key("min_confidence"), r.min_confidence, r.max_confidence)?;
        let margin = self.probability_band(&key("min_margin"), r.min_margin, r.max_margin)?;
        let text_bytes = Band {
            min: r.min_text_bytes,
            max: r.max_text_bytes,
        };
        if let (Some(min), Some(max)) = (text_bytes.min, text_bytes.max)
            && min >= max
        {
            return self.err(
                &key("max_text_bytes"),
                format!("{max} is not above min_text_bytes {min}"),
            );
        }
        if tenant && !r.tenants.is_empty() {
            return self.err(&key("tenants"), "a tenant's own rules apply to that tenant only");
        }
        let action = match (r.target, r.split.is_empty()) {
            (Some(target), true) => Action::Target(known(&key("target"), &target)?),
            (None, false) => {
                if r.split.len() < 2 {
                    return self.err(&key("split"), "needs at least two arms");
                }
                let mut arms = Vec::new();
                for (i, arm) in r.split.into_iter().enumerate() {
                    let at = format!("{prefix}.split[{i}]");
                    if arm.weight == 0 {
                        return self.err(&format!("{at}.weight"), "must be at least 1");
                    }
                    let target = known(&format!("{at}.target"), &arm.target)?;
                    if arms.iter().any(|a: &Arm| a.target == target) {
                        return self.err(&format!("{at}.target"), format!("{target:?} is already an arm"));
                    }
                    arms.push(Arm {
                        target,
                        weight: arm.weight,
                    });
                }
                let total: u32 = arms.iter().map(|a| a.weight).sum();
                if total != 100 {
                    return self.err(&key("split"), format!("weights sum to {total}, not 100"));
                }
                Action::Split(arms)
            }
            (Some(_), false) => return self.err(&key("target"), "set target or split, not both"),
            (None, true) => return self.err(&key("target"), "set target or split"),
        };
        let shadow = match r.shadow {
            None => None,
            Some(shadow) => {
                let target = known(&key("shadow.target"), &shadow.target)?;
                let primaries: Vec<&str> = match &action {
                    Action::Target(t) => vec![t.as_str()],
                    Action::Split(arms) => arms.iter().map(|a| a.target.as_str()).collect(),
                };
                if primaries.contains(&target.as_str()) {
                    return self.err(&key("shadow.target"), format!("{target:?} already serves this rule"));
                }
                if !(1..=100).contains(&shadow.percent) {
                    return self.err(
                        &key("shadow.percent"),
                        format!("{} is outside [1, 100]", shadow.percent),
                    );
                }
                Some(Shadow {
                    target,
                    percent: shadow.percent,
                })
            }
        };
        if r.sticky_by.is_some() && matches!(action, Action::Target(_)) && shadow.is_none() {
            return self.err(&key("sticky_by"), "only splits and shadows draw");
        }
        let tier = match &r.tier {
            Some(name) => match classical::Tier::parse(name) {
                Some(tier) => Some(tier),
                None => return self.err(&key("tier"), format!("{name:?} is not one of \"linear\", \"encoder\"")),
            },
            None => None,
        };
        Ok(Rule {
            name: r.name,
            when: Conditions {
                labels: r.labels,
                groups: r.groups,
                confidence,
                margin,
                tenants: r.tenants,
                has_record: r.has_record,
                text_bytes,
                tier,
            },
            action,
            shadow,
            sticky_by: match r.sticky_by {
                Some(StickyByFile::Tenant) => StickyBy::Tenant,
                Some(StickyByFile::RequestId) | None => StickyBy::RequestId,
            },
        })
    }

    fn probability_band(&self, key: &str, min: Option<f32>, max: Option<f32>) -> Result<Band<f32>, PolicyFileError> {
        for value in [min, max].into_iter().flatten() {
            if !(0.0..=1.0).contains(&value) {
                return self.err(key, format!("{value} is not a probability"));
            }
        }
        if let (Some(lo), Some(hi)) = (min, max)
            && lo >= hi
        {
            return self.err(key, format!("the band [{lo}, {hi}) is empty"));
        }
        Ok(Band { min, max })
    }
}

/// The line of `key` (`targets.x.backend`, `rules[2].split`, `tenants.acme.rules[0].target`) in TOML `text`:
/// the line of its field within its table, else of the table's header. Best effort: `None` when not found.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    // Split the key into a table path and a field: `rules[2].split[0].weight` → table `rules` #2, field `split`.
    let (table, index, field) = match key.find('[') {
        Some(open) if key[..open].ends_with("rules") => {
            let close = key[open..].find(']')? + open;
            let index: usize = key[open + 1..close].parse().ok()?;
            let field = key[close + 1..].trim_start_matches('.');
            (
                format!("[[{}]]", &key[..open]),
                Some(index),
                field.split(['.', '[']).next().unwrap_or(""),
            )
        }
        _ => {
            let mut parts: Vec<&str> = key.split('.').collect();
            let field = parts.pop().unwrap_or("");
            let field = field.split('[').next().unwrap_or(field);
            if parts.is_empty() {
                (String::new(), None, field)
            } else {
                (format!("[{}]", parts.join(".")), None, field)
            }
        }
    };
    let header = if table.is_empty() {
        0
    } else {
        let matches = lines
            .iter()
            .enumerate()
            .filter(|(_, line)| line.trim() == table)
            .map(|(i, _)| i);
        match index {
            Some(n) => matches.clone().nth(n)?,
            None => matches.clone().next()?,
        }
    };
    let body_start = if table.is_empty() { 0 } else { header + 1 };
    for (i, line) in lines.iter().enumerate().skip(body_start) {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            break;
        }
        if let Some(rest) = trimmed.strip_prefix(field)
            && rest.trim_start().starts_with('=')
        {
            return Some(i + 1);
        }
    }
    (!table.is_empty()).then_some(header + 1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn lines_of_keys_are_found() {
        let text = "schema_version = 1\ndefault_target = \"a\"\n\n[targets.a]\nkind = \"llm\"\nbackend = \"x\"\n\n[[rules]]\nname = \"one\"\ntarget = \"a\"\n\n[[rules]]\nname = \"two\"\nsplit = []\n\n[[tenants.acme.rules]]\nname = \"t\"\n";
        assert_eq!(line_of(text, "default_target"), Some(2));
        assert_eq!(line_of(text, "targets.a.backend"), Some(6));
        assert_eq!(line_of(text, "rules[1].split"), Some(14));
        assert_eq!(line_of(text, "rules[1].split[0].weight"), Some(14));
        assert_eq!(line_of(text, "rules[0].shadow.target"), Some(8));
        assert_eq!(line_of(text, "tenants.acme.rules[0].name"), Some(17));
        assert_eq!(line_of(text, "targets.b.kind"), None);
        assert_eq!(
            line_of(text, "targets.a.fallbacks[0]"),
            Some(4),
            "the table when the field is absent"
        );
    }
}
