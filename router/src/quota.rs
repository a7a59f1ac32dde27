//! Per-tenant quotas: a request rate (token bucket, `governor`), requests in flight, and LLM tokens per hour.
//! Exceeding any is `RESOURCE_EXHAUSTED` with `RetryInfo` saying when to come back.
//!
//! Limits are per tenant name: the `[limits.tenants.<name>]` entry, else `[limits.per_tenant]`. With `[auth]`
//! required the name comes from the caller's key, so a tenant cannot spend another's quota; with authentication
//! off it is whatever the request says, and quotas only shape well-behaved callers. The state of at most
//! [`MAX_TRACKED`] tenants is kept; past that, unknown names share one state (so a caller inventing names cannot
//! grow memory without bound, nor escape a limit by doing so).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Tenants whose quota state is kept separately.
pub const MAX_TRACKED: usize = 10_000;

/// The token budget's period.
pub const TOKEN_WINDOW: Duration = Duration::from_secs(3600);

/// One tenant's limits (`None`: unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantLimits {
    /// Sustained requests per second...
    pub requests_per_second: Option<NonZeroU32>,
    /// ...with bursts up to this many (default: one second's worth).
    pub burst: Option<NonZeroU32>,
    /// Requests in flight at once.
    pub max_in_flight: Option<usize>,
    /// LLM tokens (prompt and output) per hour; a request is refused once the hour's budget is spent.
    pub llm_tokens_per_hour: Option<u64>,
}

/// Every tenant's limits, and the server's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// Router calls in flight across all tenants and connections (a stream counts until it ends); beyond it a
    /// call is refused at once (load shedding), never queued.
    pub max_in_flight: Option<usize>,
    /// For tenants without an entry of their own.
    pub per_tenant: TenantLimits,
    /// By tenant name.
    pub tenants: HashMap<String, TenantLimits>,
}

/// A quota a request ran into.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum QuotaError {
    /// Too many requests per second.
    #[error("tenant {tenant:?} is over its request rate; retry in {retry_after:?}")]
    Rate {
        /// The tenant.
        tenant: String,
        /// When a request would be admitted.
        retry_after: Duration,
    },
    /// Too many requests in flight.
    #[error("tenant {tenant:?} has {limit} requests in flight, its limit")]
    InFlight {
        /// The tenant.
        tenant: String,
        /// The limit.
        limit: usize,
    },
    /// The whole server has `limit` calls in flight.
    #[error("the gateway has {limit} requests in flight, its limit")]
    Server {
        /// The limit.
        limit: usize,
    },
    /// The hour's LLM token budget is spent.
    #[error("tenant {tenant:?} spent its {limit} LLM tokens for this hour")]
    Tokens {
        /// The tenant.
        tenant: String,
        /// The budget.
        limit: u64,
        /// When the next hour starts.
        retry_after: Duration,
    },
}

impl QuotaError {
    /// How long to wait before trying again.
    pub fn retry_after(&self) -> Duration {
        match self {
            Self::Rate { retry_after, .. } | Self::Tokens { retry_after, .. } => *retry_after,
            // A request in flight usually finishes within a second.
            Self::InFlight { .. } | Self::Server { .. } => Duration::from_millis(100),
        }
    }

    /// A short stable name (`ErrorInfo.reason`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rate { .. } => "tenant_rate",
            Self::InFlight { .. } => "tenant_in_flight",
            Self::Server { .. } => "overloaded",
            Self::Tokens { .. } => "tenant_token_budget",
        }
    }
}

/// The quota state of every tenant seen.
#[derive(Debug, Default)]
pub struct Quotas {
    limits: Limits,
    /// Whether any tenant has a limit: when none does, no state is looked up at all.
    per_tenant: bool,
    /// Read-mostly: a tenant's state is created once, then only read (its buckets lock themselves).
    state: RwLock<HashMap<String, Arc<TenantState>>>,
    /// The server's in-flight slots.
    server: Option<Arc<Semaphore>>,
}

/// A tenant's buckets and counters.
struct TenantState {
    rate: Option<DefaultDirectRateLimiter>,
    in_flight: Option<(Arc<Semaphore>, usize)>,
    tokens: Option<(u64, Mutex<Window>)>,
}

impl std::fmt::Debug for TenantState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantState").finish_non_exhaustive()
    }
}

/// LLM tokens used in the current hour.
#[derive(Debug)]
struct Window {
    started: Instant,
    used: u64,
}

/// A request admitted under its tenant's quotas; holds its in-flight slot until dropped.
#[derive(Debug)]
pub struct Admission {
    _slot: Option<OwnedSemaphorePermit>,
    _server_slot: Option<OwnedSemaphorePermit>,
}

impl Quotas {
    /// Quotas under `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            server: limits.max_in_flight.map(|n| Arc::new(Semaphore::new(n))),
            per_tenant: limits.per_tenant != TenantLimits::default()
                || limits.tenants.values().any(|t| *t != TenantLimits::default()),
            limits,
            state: RwLock::default(),
        }
    }

    /// Admits a request of `tenant`: a slot of the server's in-flight limit, a token from the tenant's rate
    /// bucket and a slot of its in-flight limit.
    pub fn admit(&self, tenant: &str) -> Result<Admission, QuotaError> {
        let server_slot = match &self.server {
            Some(slots) => Some(slots.clone().try_acquire_owned().map_err(|_| QuotaError::Server {
                limit: self.limits.max_in_flight.unwrap_or_default(),
            })?),
            None => None,
        };
        if !self.per_tenant {
            return Ok(Admission {
                _slot: None,
                _server_slot: server_slot,
            });
        }
        let state = self.state(tenant);
        if let Some(rate) = &state.rate
            && let Err(not_until) = rate.check()
        {
            let now = governor::clock::Clock::now(&governor::clock::DefaultClock::default());
            return Err(QuotaError::Rate {
                tenant: tenant.to_owned(),
                retry_after: not_until.wait_time_from(now),
            });
        }
        let slot = match &state.in_flight {
            Some((slots, limit)) => Some(slots.clone().try_acquire_owned().map_err(|_| QuotaError::InFlight {
                tenant: tenant.to_owned(),
                limit: *limit,
            })?),
            None => None,
        };
        Ok(Admission {
            _slot: slot,
            _server_slot: server_slot,
        })
    }

    /// Whether the limits name `tenant` (an entry of its own).
    pub fn names(&self, tenant: &str) -> bool {
        self.limits.tenants.contains_key(tenant)
    }

    /// Fails when `tenant` has spent the hour's LLM token budget.
    pub fn check_tokens(&self, tenant: &str) -> Result<(), QuotaError> {
        if !self.per_tenant {
            return Ok(());
        }
        let state = self.state(tenant);
        let Some((limit, window)) = &state.tokens else {
            return Ok(());
        };
        let mut window = window.lock().unwrap_or_else(PoisonError::into_inner);
        roll(&mut window);
        if window.used >= *limit {
            return Err(QuotaError::Tokens {
                tenant: tenant.to_owned(),
                limit: *limit,
                retry_after: TOKEN_WINDOW.saturating_sub(window.started.elapsed()),
            });
        }
        Ok(())
    }

    /// Charges `tokens` LLM tokens to `tenant`'s hour.
    pub fn charge_tokens(&self, tenant: &str, tokens: u64) {
        if !self.per_tenant {
            return;
        }
        let state = self.state(tenant);
        if let Some((_, window)) = &state.tokens {
            let mut window = window.lock().unwrap_or_else(PoisonError::into_inner);
            roll(&mut window);
            window.used = window.used.saturating_add(tokens);
        }
    }

    fn state(&self, tenant: &str) -> Arc<TenantState> {
        if let Some(state) = self.state.read().unwrap_or_else(PoisonError::into_inner).get(tenant) {
            return state.clone();
        }
        let mut states = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let known = self.limits.tenants.contains_key(tenant);
        // Past the bound, an unknown name shares the state kept under "" (the anonymous tenant's).
        let key = if states.len() >= MAX_TRACKED && !known {
            ""
        } else {
            tenant
        };
        let limits = self.limits.tenants.get(key).copied().unwrap_or(self.limits.per_tenant);
        states
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(TenantState::new(limits)))
            .clone()
    }
}

impl TenantState {
    fn new(limits: TenantLimits) -> Self {
        Self {
            rate: limits.requests_per_second.map(|rate| {
                DefaultDirectRateLimiter::direct(Quota::per_second(rate).allow_burst(limits.burst.unwrap_or(rate)))
            }),
            in_flight: limits.max_in_flight.map(|n| (Arc::new(Semaphore::new(n)), n)),
            tokens: limits.llm_tokens_per_hour.map(|n| {
                (
                    n,
                    Mutex::new(Window {
                        started: Instant::now(),
                        used: 0,
                    }),
                )
            }),
        }
    }
}

/// Starts a new hour when the current one is over.
fn roll(window: &mut Window) {
    if window.started.elapsed() >= TOKEN_WINDOW {
        window.started = Instant::now();
        window.used = 0;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn limits(tenant: TenantLimits) -> Quotas {
        Quotas::new(Limits {
            max_in_flight: None,
            per_tenant: TenantLimits::default(),
            tenants: HashMap::from([("acme".to_owned(), tenant)]),
        })
    }

    #[test]
    fn the_rate_allows_its_burst_then_says_when_to_come_back() {
        let quotas = limits(TenantLimits {
            requests_per_second: NonZeroU32::new(2),
            burst: NonZeroU32::new(3),
            ..TenantLimits::default()
        });
        for _ in 0..3 {
            quotas.admit("acme").unwrap();
        }
        let error = quotas.admit("acme").unwrap_err();
        assert_eq!(error.kind(), "tenant_rate");
        assert!(error.retry_after() > Duration::ZERO && error.retry_after() <= Duration::from_millis(500));
        // Another tenant (no entry, default unlimited) is not affected.
        for _ in 0..100 {
            quotas.admit("other").unwrap();
        }
    }

    #[test]
    fn in_flight_slots_are_held_until_the_admission_is_dropped() {
        let quotas = limits(TenantLimits {
            max_in_flight: Some(2),
            ..TenantLimits::default()
        });
        let first = quotas.admit("acme").unwrap();
        let _second = quotas.admit("acme").unwrap();
        assert_eq!(
            quotas.admit("acme").unwrap_err(),
            QuotaError::InFlight {
                tenant: "acme".into(),
                limit: 2
            }
        );
        drop(first);
        quotas.admit("acme").unwrap();
    }

    #[test]
    fn the_token_budget_refuses_once_spent_and_only_that_tenant() {
        let quotas = limits(TenantLimits {
            llm_tokens_per_hour: Some(100),
            ..TenantLimits::default()
        });
        quotas.check_tokens("acme").unwrap();
        quotas.charge_tokens("acme", 60);
        quotas.check_tokens("acme").unwrap();
        quotas.charge_tokens("acme", 40);
        let error = quotas.check_tokens("acme").unwrap_err();
        assert_eq!(error.kind(), "tenant_token_budget");
        assert!(error.retry_after() > Duration::from_secs(3500));
        quotas.charge_tokens("other", 1_000_000);
        quotas.check_tokens("other").unwrap();
    }

    #[test]
    fn invented_names_past_the_bound_share_one_state() {
        let quotas = Quotas::new(Limits {
            max_in_flight: None,
            per_tenant: TenantLimits {
                max_in_flight: Some(1),
                ..TenantLimits::default()
            },
            tenants: HashMap::new(),
        });
        let mut held = Vec::new();
        for i in 0..MAX_TRACKED {
            held.push(quotas.admit(&format!("t{i}")).unwrap());
        }
        // The shared state ("" once the map is full) has one slot: the first new name takes it, the next waits.
        let _shared = quotas.admit("new-1").unwrap();
        assert!(quotas.admit("new-2").is_err());
        assert!(quotas.state.read().unwrap().len() <= MAX_TRACKED + 1);
    }

    #[test]
    fn the_server_bound_refuses_at_once_whatever_the_tenant() {
        let quotas = Quotas::new(Limits {
            max_in_flight: Some(2),
            ..Limits::default()
        });
        let a = quotas.admit("a").unwrap();
        let _b = quotas.admit("b").unwrap();
        assert_eq!(quotas.admit("c").unwrap_err(), QuotaError::Server { limit: 2 });
        drop(a);
        quotas.admit("c").unwrap();
    }
}
