//! A per-backend circuit breaker (also guarding the gateway's remote scorers): closed → open after consecutive failures → half-open (one probe) → closed.
//!
//! Written here rather than taken from a crate: the state must be readable for health and responses, and the
//! probe must be tied to one request's outcome, which a small state machine does plainly.
//!
//! Admission is a guard ([`Permit`]): its outcome is recorded once, and a permit dropped without one (the caller
//! cancelled, its deadline cut the call short) releases a probe instead of leaving the circuit half-open with
//! nobody probing. A probe that never reports at all (a task that hangs) is replaced after `probe_timeout`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The breaker's state, as reported in health and responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the open period ends.
    Open,
    /// One probe call may be in flight; its outcome closes or reopens the circuit.
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

/// When the breaker opens, for how long, and how long a probe may stay out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive backend failures that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before a probe.
    pub open_for: Duration,
    /// How long a half-open circuit waits for its probe's outcome before it lets another probe through.
    pub probe_timeout: Duration,
}

/// What a call's outcome says about the backend's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The backend answered (an answer, or a refusal that proves it is up, such as a 4xx).
    Healthy,
    /// The backend failed (see `LlmError::is_backend_failure`).
    Failed,
    /// Nothing was learnt: the caller left or its deadline cut the call short.
    Unknown,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// `probe`: the generation and start of the probe out now, if any.
    HalfOpen {
        probe: Option<(u64, Instant)>,
    },
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// Numbers probes, so a released or late probe cannot touch its successor's slot.
    generation: u64,
}

/// The breaker. A short mutex guards a few integers; it is never held across an await.
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// Permission to make one call. Report its outcome with [`Permit::record`]; dropping it unrecorded counts as
/// [`Verdict::Unknown`].
#[derive(Debug)]
#[must_use = "a permit records the call's outcome; dropping it says nothing was learnt"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    /// `Some(generation)` for the half-open probe.
    probe: Option<u64>,
    recorded: bool,
}

impl Permit<'_> {
    /// Whether this call is the half-open probe.
    #[cfg(test)]
    fn is_probe(&self) -> bool {
        self.probe.is_some()
    }

    /// Records the call's outcome.
    pub fn record(mut self, verdict: Verdict) {
        self.recorded = true;
        self.breaker.record(self.probe, verdict);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.breaker.record(self.probe, Verdict::Unknown);
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner {
                state: State::Closed { failures: 0 },
                generation: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current state (an open circuit whose period is over reads as half-open).
    pub fn state(&self) -> CircuitState {
        match self.lock().state {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { until } if Instant::now() < until => CircuitState::Open,
            State::Open { .. } | State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Admits a call, or says how long a caller should wait before trying again: until the open period ends, or,
    /// while a probe is out, the sooner of its timeout and one open period (a probe usually answers well before
    /// its timeout, and a caller told to wait the whole timeout would stay away long after the circuit closed).
    pub fn admit(&self) -> Result<Permit<'_>, Duration> {
        let mut inner = self.lock();
        let now = Instant::now();
        match inner.state {
            State::Closed { .. } => {
                return Ok(Permit {
                    breaker: self,
                    probe: None,
                    recorded: false,
                });
            }
            State::Open { until } if now < until => return Err(until - now),
            State::HalfOpen {
                probe: Some((_, started)),
            } if now.saturating_duration_since(started) < self.config.probe_timeout => {
                let probe_left = self.config.probe_timeout - now.saturating_duration_since(started);
                return Err(probe_left.min(self.config.open_for));
            }
            // The open period is over, no probe is out, or the one out has been silent too long: probe.
            State::Open { .. } | State::HalfOpen { .. } => {}
        }
        inner.generation += 1;
        let generation = inner.generation;
        inner.state = State::HalfOpen {
            probe: Some((generation, now)),
        };
        Ok(Permit {
            breaker: self,
            probe: Some(generation),
            recorded: false,
        })
    }

    fn record(&self, probe: Option<u64>, verdict: Verdict) {
        let mut inner = self.lock();
        let current_probe = matches!(inner.state, State::HalfOpen { probe: Some((g, _)) } if Some(g) == probe);
        inner.state = match (verdict, inner.state) {
            (Verdict::Healthy, _) => State::Closed { failures: 0 },
            (Verdict::Failed, State::Closed { failures }) => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failure_threshold {
                    self.opened()
                } else {
                    State::Closed { failures }
                }
            }
            // A failed probe reopens; so does a failure of a call admitted before the circuit opened.
            (Verdict::Failed, State::HalfOpen { .. }) => self.opened(),
            (Verdict::Failed, open @ State::Open { .. }) => open,
            // Nothing learnt: the probe's slot is free again for the next caller.
            (Verdict::Unknown, State::HalfOpen { .. }) if current_probe => State::HalfOpen { probe: None },
            (Verdict::Unknown, state) => state,
        };
    }

    fn opened(&self) -> State {
        State::Open {
            until: Instant::now() + self.config.open_for,
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
            probe_timeout: Duration::from_secs(60),
        })
    }

    fn fail(b: &CircuitBreaker) {
        b.admit().unwrap().record(Verdict::Failed);
    }

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let b = breaker(Duration::from_secs(60));
        fail(&b);
        fail(&b);
        b.admit().unwrap().record(Verdict::Healthy);
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), CircuitState::Closed, "the success reset the count");
        fail(&b);
        assert_eq!(b.state(), CircuitState::Open);
        let wait = b.admit().unwrap_err();
        assert!(wait > Duration::from_secs(59));
    }

    #[test]
    fn half_open_admits_one_probe_whose_outcome_decides() {
        let b = breaker(Duration::ZERO);
        for _ in 0..3 {
            fail(&b);
        }
        assert_eq!(b.state(), CircuitState::HalfOpen);
        let probe = b.admit().unwrap();
        assert!(probe.is_probe());
        assert!(b.admit().is_err(), "only one probe at a time");
        probe.record(Verdict::Failed);
        let probe = b.admit().unwrap();
        probe.record(Verdict::Healthy);
        assert_eq!(b.state(), CircuitState::Closed);
        assert!(!b.admit().unwrap().is_probe());
    }

    #[test]
    fn a_dropped_probe_releases_the_half_open_circuit() {
        let b = breaker(Duration::ZERO);
        for _ in 0..3 {
            fail(&b);
        }
        let probe = b.admit().unwrap();
        assert!(probe.is_probe());
        drop(probe);
        let next = b
            .admit()
            .expect("the next caller probes: a cancelled probe must not wedge the circuit");
        assert!(next.is_probe());
        next.record(Verdict::Healthy);
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn an_unknown_outcome_neither_counts_nor_resets() {
        let b = breaker(Duration::from_secs(60));
        fail(&b);
        fail(&b);
        b.admit().unwrap().record(Verdict::Unknown);
        assert_eq!(b.state(), CircuitState::Closed);
        fail(&b);
        assert_eq!(
            b.state(),
            CircuitState::Open,
            "two failures, an unknown, a failure: three in a row"
        );
    }

    #[test]
    fn a_probe_that_never_reports_times_out() {
        let b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 1,
            open_for: Duration::ZERO,
            probe_timeout: Duration::from_millis(50),
        });
        fail(&b);
        let hung = b.admit().unwrap();
        assert!(b.admit().is_err(), "one probe at a time");
        std::thread::sleep(Duration::from_millis(60));
        let fresh = b.admit().expect("a probe out longer than probe_timeout is replaced");
        assert!(fresh.is_probe());
        // The stale probe's late release does not free its successor's slot.
        drop(hung);
        assert!(b.admit().is_err());
        fresh.record(Verdict::Healthy);
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn while_a_probe_is_out_callers_are_told_to_retry_within_one_open_period() {
        let b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 1,
            open_for: Duration::from_millis(20),
            probe_timeout: Duration::from_secs(60),
        });
        fail(&b);
        let open = b.admit().unwrap_err();
        assert!(open > Duration::ZERO && open <= Duration::from_millis(20), "{open:?}");
        std::thread::sleep(Duration::from_millis(25));
        let probe = b.admit().unwrap();
        assert!(probe.is_probe());
        let wait = b.admit().unwrap_err();
        assert!(
            wait <= Duration::from_millis(20),
            "told to wait {wait:?}: the probe's 60 s timeout, not one open period"
        );
        probe.record(Verdict::Healthy);
        assert_eq!(b.state(), CircuitState::Closed);
    }
}
