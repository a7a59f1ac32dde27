//! Where a model comes from: one `.onnx` file (pinned), or an entry of a model repository laid out as Triton's,
//! `<entry>/<version>/model.onnx`, served at the latest version or a pinned one, with an optional candidate version
//! run in its shadow. Resolution reads the directory, so a reload picks up a new version.

use std::path::{Path, PathBuf};

use super::{ConfigError, error};

/// Which version of a repository entry serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionPolicy {
    /// The highest version (numeric, dotted: `1.10.0` after `1.9.2`) that has a `model.onnx`.
    Latest,
    /// Exactly this version.
    Pinned(String),
}

/// A model's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// One file, always the same.
    File(PathBuf),
    /// A repository entry and its version policy; `candidate`, a version run in the serving one's shadow.
    Repository {
        /// `<repository>/<name>`.
        entry: PathBuf,
        /// Which version serves.
        version: VersionPolicy,
        /// A version scored alongside, never served (agreement is measured).
        candidate: Option<String>,
    },
}

/// A source resolved now: the file that serves and the candidate's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The serving model file.
    pub file: PathBuf,
    /// The version directory's name (`None` for a file source).
    pub version: Option<String>,
    /// The candidate's file and version.
    pub candidate: Option<(PathBuf, String)>,
}

impl ModelSource {
    /// The files this source names now.
    pub fn resolve(&self) -> Result<Resolved, String> {
        match self {
            Self::File(file) if file.is_file() => Ok(Resolved {
                file: file.clone(),
                version: None,
                candidate: None,
            }),
            Self::File(file) => Err(format!("{} does not exist", file.display())),
            Self::Repository {
                entry,
                version,
                candidate,
            } => {
                let versions = versions(entry)?;
                let serving = match version {
                    VersionPolicy::Latest => versions
                        .last()
                        .cloned()
                        .ok_or_else(|| format!("{} has no version directory with a model.onnx", entry.display()))?,
                    VersionPolicy::Pinned(v) if versions.contains(v) => v.clone(),
                    VersionPolicy::Pinned(v) => {
                        return Err(format!(
                            "{} has no version {v:?} (it has {versions:?})",
                            entry.display()
                        ));
                    }
                };
                let candidate = match candidate {
                    Some(c) if versions.contains(c) => Some((model_file(entry, c), c.clone())),
                    Some(c) => {
                        return Err(format!(
                            "{} has no candidate version {c:?} (it has {versions:?})",
                            entry.display()
                        ));
                    }
                    None => None,
                };
                Ok(Resolved {
                    file: model_file(entry, &serving),
                    version: Some(serving),
                    candidate,
                })
            }
        }
    }

    /// What to watch for a change of resolution: the entry directory (a version added or removed) or the file.
    pub fn watched(&self) -> &Path {
        match self {
            Self::File(file) => file,
            Self::Repository { entry, .. } => entry,
        }
    }
}

/// The source `[models] <key>` names (`file`, resolved against the config's directory) with its `<key>_version`
/// and `<key>_candidate`, and what it resolves to now. A directory is a repository entry; versions apply only
/// to one.
pub(super) fn source(
    path: &Path,
    key: &str,
    file: PathBuf,
    version: &Option<String>,
    candidate: &Option<String>,
) -> Result<(ModelSource, Resolved), ConfigError> {
    let source = if file.is_dir() {
        ModelSource::Repository {
            entry: file,
            version: match version.as_deref() {
                None | Some("latest") => VersionPolicy::Latest,
                Some(v) => VersionPolicy::Pinned(v.to_owned()),
            },
            candidate: candidate.clone(),
        }
    } else if version.is_some() || candidate.is_some() {
        return Err(error(
            path,
            &format!("{key}_version"),
            format!(
                "{} is a file, not a repository entry: versions apply to directories",
                file.display()
            ),
        ));
    } else {
        ModelSource::File(file)
    };
    let resolved = source.resolve().map_err(|reason| error(path, key, reason))?;
    Ok((source, resolved))
}

/// `entry/version/model.onnx`.
pub fn model_file(entry: &Path, version: &str) -> PathBuf {
    entry.join(version).join("model.onnx")
}

/// The entry's versions with a `model.onnx`, lowest first.
fn versions(entry: &Path) -> Result<Vec<String>, String> {
    let listing = std::fs::read_dir(entry).map_err(|e| format!("cannot read {}: {e}", entry.display()))?;
    let mut versions: Vec<(Vec<u64>, String)> = listing
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|name| parse_version(&name).map(|key| (key, name)))
        .filter(|(_, name)| model_file(entry, name).is_file())
        .collect();
    versions.sort();
    Ok(versions.into_iter().map(|(_, name)| name).collect())
}

/// `1.10.0` → `[1, 10, 0]`; `None` for a name that is not numbers and dots.
fn parse_version(name: &str) -> Option<Vec<u64>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{ModelSource, VersionPolicy};

    #[test]
    fn latest_is_the_highest_numeric_version_with_a_model() {
        let dir = std::env::temp_dir().join(format!("switchyard-sources-{}", std::process::id()));
        for version in ["1.9.2", "1.10.0", "2.0.0", "notes"] {
            std::fs::create_dir_all(dir.join(version)).unwrap();
        }
        for version in ["1.9.2", "1.10.0", "notes"] {
            std::fs::write(dir.join(version).join("model.onnx"), b"x").unwrap();
        }
        let source = |version, candidate: Option<&str>| ModelSource::Repository {
            entry: dir.clone(),
            version,
            candidate: candidate.map(str::to_owned),
        };
        let latest = source(VersionPolicy::Latest, Some("1.9.2")).resolve().unwrap();
        assert_eq!(
            latest.version.as_deref(),
            Some("1.10.0"),
            "2.0.0 has no model; notes is no version"
        );
        assert_eq!(latest.file, dir.join("1.10.0/model.onnx"));
        assert_eq!(
            latest.candidate,
            Some((dir.join("1.9.2/model.onnx"), "1.9.2".to_owned()))
        );
        let pinned = source(VersionPolicy::Pinned("1.9.2".into()), None).resolve().unwrap();
        assert_eq!(pinned.version.as_deref(), Some("1.9.2"));
        let missing = source(VersionPolicy::Pinned("2.0.0".into()), None)
            .resolve()
            .unwrap_err();
        assert!(missing.contains("no version \"2.0.0\""), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
