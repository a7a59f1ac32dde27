//! What a handler tells the layers about its call.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Identifiers and the decision of one call (never content), filled in by the handler as they become known.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notes {
    /// The caller's or a generated request id.
    pub request_id: String,
    /// The calling tenant.
    pub tenant: String,
    /// The classifier's label.
    pub label: String,
    /// The target decided.
    pub target: String,
    /// The rule that decided, if one did.
    pub rule: String,
    /// The policy version that decided.
    pub policy_version: String,
}

/// The call's notes, shared by the layers and the handler through the request's extensions.
#[derive(Debug, Default)]
pub struct CallNotes(Mutex<Notes>);

impl CallNotes {
    /// The notes of the call `extensions` belong to, created on first use.
    pub fn of(extensions: &mut http::Extensions) -> Arc<Self> {
        extensions.get_or_insert_with(|| Arc::new(Self::default())).clone()
    }

    /// The notes, to read or fill in. The lock is never held across an await.
    pub fn lock(&self) -> MutexGuard<'_, Notes> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
