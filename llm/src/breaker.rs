//! A per-backend circuit breaker: closed → open after consecutive failures → half-open (one probe) → closed.
//!
//! Written here rather than taken from a crate: the state must be readable for health and responses, and the
//! probe must be tied to one request's outcome, which a small state machine does plainly.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The breaker's state, as reported in health and responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the open period ends.
    Open,
    /// One probe call is in flight; its outcome closes or reopens the circuit.
    HalfOpen,
}

impl CircuitState {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// When the breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive backend failures that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before a probe.
    pub open_for: Duration,
}

#[derive(Debug)]
struct Inner {
    state: CircuitState,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
}

/// The breaker. A short mutex guards a few integers; it is never held across an await.
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// Permission to call the backend; report the outcome with [`CircuitBreaker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A normal call.
    Call,
    /// The half-open probe.
    Probe,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner {
                state: CircuitState::Closed,
                consecutive_failures: 0,
                opened_at: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current state (an open circuit whose period is over reads as half-open).
    pub fn state(&self) -> CircuitState {
        let inner = self.lock();
        match (inner.state, inner.opened_at) {
            (CircuitState::Open, Some(at)) if at.elapsed() >= self.config.open_for => CircuitState::HalfOpen,
            (state, _) => state,
        }
    }

    /// Admits a call, or says how long until the circuit lets a probe through.
    pub fn admit(&self) -> Result<Admission, Duration> {
        let mut inner = self.lock();
        match inner.state {
            CircuitState::Closed => Ok(Admission::Call),
            CircuitState::HalfOpen => Err(Duration::ZERO),
            CircuitState::Open => {
                let elapsed = inner.opened_at.map(|at| at.elapsed()).unwrap_or(self.config.open_for);
                if elapsed >= self.config.open_for {
                    inner.state = CircuitState::HalfOpen;
                    Ok(Admission::Probe)
                } else {
                    Err(self.config.open_for - elapsed)
                }
            }
        }
    }

    /// Records a call's outcome: `failed` is true for backend failures (see `LlmError::is_backend_failure`).
    pub fn record(&self, admission: Admission, failed: bool) {
        let mut inner = self.lock();
        if failed {
            inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
            let reopen = admission == Admission::Probe || inner.state == CircuitState::HalfOpen;
            if reopen || inner.consecutive_failures >= self.config.failure_threshold {
                inner.state = CircuitState::Open;
                inner.opened_at = Some(Instant::now());
            }
        } else {
            inner.consecutive_failures = 0;
            inner.state = CircuitState::Closed;
            inner.opened_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn breaker(open_for: Duration) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            failure_threshold: 3,
            open_for,
        })
    }

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let b = breaker(Duration::from_secs(60));
        for _ in 0..2 {
            b.record(b.admit().unwrap(), true);
        }
        b.record(b.admit().unwrap(), false);
        for _ in 0..2 {
            b.record(b.admit().unwrap(), true);
        }
        assert_eq!(b.state(), CircuitState::Closed, "the success reset the count");
        b.record(b.admit().unwrap(), true);
        assert_eq!(b.state(), CircuitState::Open);
        let wait = b.admit().unwrap_err();
        assert!(wait > Duration::from_secs(59));
    }

    #[test]
    fn half_open_admits_one_probe_whose_outcome_decides() {
        let b = breaker(Duration::ZERO);
        for _ in 0..3 {
            b.record(b.admit().unwrap(), true);
        }
        assert_eq!(b.state(), CircuitState::HalfOpen);
        let probe = b.admit().unwrap();
        assert_eq!(probe, Admission::Probe);
        assert!(b.admit().is_err(), "only one probe at a time");
        b.record(probe, true);
        let probe = b.admit().unwrap();
        b.record(probe, false);
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.admit().unwrap(), Admission::Call);
    }
}
