//! Where a score falls against the scorer's threshold, in words an explanation must agree with.

use super::claims::Claim;

/// The band of a churn probability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    /// Below `elevated_from` × threshold.
    Low,
    /// From `elevated_from` × threshold up to the threshold: some risk, but the model does not flag the customer.
    Elevated,
    /// At or above the threshold: the model flags the customer as likely to leave.
    High,
}

impl Band {
    /// The band of `score` against `threshold`; `elevated_from` is the fraction of the threshold where
    /// `Elevated` starts.
    pub fn of(score: f32, threshold: f32, elevated_from: f32) -> Self {
        if score >= threshold {
            Self::High
        } else if score >= threshold * elevated_from {
            Self::Elevated
        } else {
            Self::Low
        }
    }

    /// `low`, `elevated` or `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Elevated => "elevated",
            Self::High => "high",
        }
    }

    /// The band as a prompt states it.
    pub fn words(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Elevated => "elevated, though below the level the model flags",
            Self::High => "high",
        }
    }

    /// Whether a text in this band may make `claim`: a low score allows no claim of risk, a high one no claim of
    /// safety, an elevated one neither "likely to leave" nor "low risk" (but "unlikely to leave").
    pub(crate) fn allows(self, claim: Claim) -> bool {
        match self {
            Self::Low => matches!(claim, Claim::Stays | Claim::Safe),
            Self::Elevated => matches!(claim, Claim::Stays | Claim::SomeRisk),
            Self::High => matches!(claim, Claim::Leaves | Claim::SomeRisk),
        }
    }
}
