//! The running policy, swapped whole on reload: readers take an `Arc` snapshot without locking, so a request
//! decides under exactly one complete policy version however the file changes meanwhile.
//!
//! Reloads happen when anything in the file's directory changes, and on SIGHUP. The whole directory, not the
//! file's name: editors write a new file and rename it, and a mounted Kubernetes ConfigMap changes by swapping
//! its `..data` symlink, which touches no entry named like the file. The content hash skips a reload that
//! changes nothing. An invalid file is refused, logged with file, line, key and reason, counted,
//! and the running policy stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::{Policy, PolicyContext, PolicyFileError, compile};

/// How long file events settle before a reload (an editor's save is often several events).
const SETTLE: Duration = Duration::from_millis(100);

/// The policy in force, and where it came from.
#[derive(Debug)]
pub struct PolicyStore {
    current: ArcSwap<Policy>,
    path: PathBuf,
    /// What the file is checked against; the labels change when a new classifier version serves.
    context: std::sync::Mutex<PolicyContext>,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A new version is in force.
    Applied {
        /// The version replaced.
        from: String,
        /// The version now in force.
        to: String,
    },
    /// The file's content is the version already in force.
    Unchanged,
    /// The file is invalid (or unreadable); the running policy stays.
    Rejected(PolicyFileError),
}

impl ReloadOutcome {
    /// `applied`, `unchanged` or `rejected`, for metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Applied { .. } => "applied",
            Self::Unchanged => "unchanged",
            Self::Rejected(_) => "rejected",
        }
    }
}

impl PolicyStore {
    /// Reads and compiles the policy at `path`.
    pub fn load(path: &Path, context: PolicyContext) -> Result<Self, PolicyFileError> {
        let policy = read(path, &context)?;
        Ok(Self {
            current: ArcSwap::from_pointee(policy),
            path: path.to_path_buf(),
            context: std::sync::Mutex::new(context),
        })
    }

    fn context(&self) -> PolicyContext {
        self.context
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether the file compiles against a classifier with `labels` (label → group): a new classifier version
    /// serves only if it does.
    pub fn check_labels(&self, labels: &std::collections::BTreeMap<String, String>) -> Result<(), PolicyFileError> {
        let context = PolicyContext {
            labels: Some(labels.clone()),
            ..self.context()
        };
        read(&self.path, &context).map(|_| ())
    }

    /// From now on, the file is checked against `labels` (a new classifier version serves).
    pub fn set_labels(&self, labels: std::collections::BTreeMap<String, String>) {
        self.context
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .labels = Some(labels);
    }

    /// The policy in force now. Hold the `Arc` for the whole request.
    pub fn current(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    /// The policy file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file; swaps in the new policy if it is valid and different.
    pub fn reload(&self) -> ReloadOutcome {
        match read(&self.path, &self.context()) {
            Err(error) => ReloadOutcome::Rejected(error),
            Ok(policy) => {
                let from = self.current.load().version.clone();
                if policy.version == from {
                    return ReloadOutcome::Unchanged;
                }
                let to = policy.version.clone();
                self.current.store(Arc::new(policy));
                ReloadOutcome::Applied { from, to }
            }
        }
    }
}

fn read(path: &Path, context: &PolicyContext) -> Result<Policy, PolicyFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| PolicyFileError {
        file: path.to_path_buf(),
        line: None,
        key: "-".to_owned(),
        reason: format!("cannot read: {e}"),
    })?;
    compile(path, &text, context)
}

/// Reloads `store` on SIGHUP, and on changes to its file when `watch_file`; `on_reload` sees every outcome
/// (for logs and metrics). Runs until the process ends.
pub async fn watch(store: Arc<PolicyStore>, watch_file: bool, on_reload: impl Fn(&ReloadOutcome) + Send + 'static) {
    let (changed, mut changes) = mpsc::channel::<()>(1);
    // The watcher lives as long as this task; its events only nudge the loop below.
    let _watcher = if watch_file {
        match file_watcher(store.path(), changed) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::error!(file = %store.path().display(), %error, "cannot watch the policy file; SIGHUP still reloads");
                None
            }
        }
    } else {
        None
    };
    let mut hangups = hangup_signals();
    loop {
        tokio::select! {
            Some(()) = changes.recv() => {
                // Let a burst of events settle, then reload once.
                tokio::time::sleep(SETTLE).await;
                while changes.try_recv().is_ok() {}
            }
            Some(()) = hangups.recv() => {}
            else => return,
        }
        let reload_store = store.clone();
        let outcome = match tokio::task::spawn_blocking(move || reload_store.reload()).await {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::error!(%error, "policy reload task failed");
                continue;
            }
        };
        on_reload(&outcome);
    }
}

/// Watches the file's directory and signals any change in it (reads excepted).
fn file_watcher(path: &Path, changed: mpsc::Sender<()>) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            // Full means a reload is already pending: dropping this nudge loses nothing.
            let _ = changed.try_send(());
        }
    })?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    watcher.watch(&directory, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// SIGHUP as a stream of nudges (never on platforms without it).
fn hangup_signals() -> mpsc::Receiver<()> {
    let (sender, receiver) = mpsc::channel(1);
    #[cfg(unix)]
    tokio::spawn(async move {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(mut signal) => {
                while signal.recv().await.is_some() {
                    if sender.send(()).await.is_err() {
                        return;
                    }
                }
            }
            Err(error) => tracing::error!(%error, "cannot listen for SIGHUP"),
        }
    });
    #[cfg(not(unix))]
    drop(sender);
    receiver
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeSet;
    use std::os::unix::fs::symlink;

    use super::*;

    fn policy(message: &str) -> String {
        format!(
            "schema_version = 1\ndefault_target = \"refuse\"\n[targets.refuse]\nkind = \"reject\"\nmessage = \"{message}\"\n"
        )
    }

    #[tokio::test]
    async fn a_configmap_symlink_swap_reloads_the_policy() {
        let dir = std::env::temp_dir().join(format!("switchyard-configmap-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("..2026_11_28_v1")).unwrap();
        // The layout the kubelet mounts: policy.toml -> ..data/policy.toml, ..data -> a timestamped directory.
        std::fs::write(dir.join("..2026_11_28_v1/policy.toml"), policy("one")).unwrap();
        symlink("..2026_11_28_v1", dir.join("..data")).unwrap();
        symlink("..data/policy.toml", dir.join("policy.toml")).unwrap();
        let context = PolicyContext {
            backends: BTreeSet::new(),
            scorers: BTreeSet::new(),
            labels: None,
            fields: None,
        };
        let store = Arc::new(PolicyStore::load(&dir.join("policy.toml"), context).unwrap());
        let first = store.current().version.clone();
        tokio::spawn(watch(store.clone(), true, |_| {}));
        tokio::time::sleep(Duration::from_millis(300)).await;

        // The kubelet's atomic update: a new directory, a new symlink renamed over `..data`. No entry named
        // policy.toml changes.
        std::fs::create_dir_all(dir.join("..2026_11_28_v2")).unwrap();
        std::fs::write(dir.join("..2026_11_28_v2/policy.toml"), policy("two")).unwrap();
        symlink("..2026_11_28_v2", dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();

        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while store.current().version == first {
            assert!(tokio::time::Instant::now() < deadline, "the swap was never seen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let target = store.current().target("refuse").cloned().unwrap();
        assert_eq!(target.message, "two");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
