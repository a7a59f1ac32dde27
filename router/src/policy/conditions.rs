//! What a rule matches: its conditions, checked against a request's facts, and compared with each other to find
//! rules an earlier one makes unreachable.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::Facts;

/// A half-open range `[min, max)`; an absent end is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Band<T> {
    /// Inclusive lower end.
    pub min: Option<T>,
    /// Exclusive upper end.
    pub max: Option<T>,
}

impl<T: PartialOrd + Copy + fmt::Display> Band<T> {
    /// Whether `x` is in the band.
    pub fn contains(&self, x: T) -> bool {
        self.min.is_none_or(|min| x >= min) && self.max.is_none_or(|max| x < max)
    }

    /// Whether the band is unbounded on both ends.
    pub fn is_any(&self) -> bool {
        self.min.is_none() && self.max.is_none()
    }

    /// Whether every value in `other` is in `self`.
    pub fn covers(&self, other: &Self) -> bool {
        let low = match (self.min, other.min) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a <= b,
        };
        let high = match (self.max, other.max) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a >= b,
        };
        low && high
    }
}

impl<T: fmt::Display> fmt::Display for Band<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.min, &self.max) {
            (Some(min), Some(max)) => write!(f, "[{min}, {max})"),
            (Some(min), None) => write!(f, ">= {min}"),
            (None, Some(max)) => write!(f, "< {max}"),
            (None, None) => write!(f, "any"),
        }
    }
}

/// What a rule matches; every condition set must hold (unset conditions match anything).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Conditions {
    /// The decided label is one of these, or its group is one of `groups` (both empty: any label).
    pub labels: Vec<String>,
    /// See `labels`.
    pub groups: Vec<String>,
    /// The top label's probability.
    pub confidence: Band<f32>,
    /// Top probability minus the second's.
    pub margin: Band<f32>,
    /// The request's tenant is one of these (empty: any).
    pub tenants: Vec<String>,
    /// Whether a customer record is attached (`None`: either).
    pub has_record: Option<bool>,
    /// Length of the text in bytes.
    pub text_bytes: Band<usize>,
    /// The classifier cascade's tier that answered (`None`: either).
    pub tier: Option<classical::Tier>,
}

impl Conditions {
    /// `Ok(what held)` when every condition holds, else `Err(the first that did not)`.
    pub(super) fn check(&self, facts: &Facts<'_>) -> Result<String, String> {
        let mut held = Vec::new();
        if !self.labels.is_empty() || !self.groups.is_empty() {
            let by_label = self.labels.iter().any(|l| l == facts.label);
            let by_group = self.groups.iter().any(|g| g == facts.group);
            if !(by_label || by_group) {
                return Err(format!(
                    "label {:?} (group {:?}) not in labels {:?} / groups {:?}",
                    facts.label, facts.group, self.labels, self.groups
                ));
            }
            held.push(if by_label {
                format!("label {:?}", facts.label)
            } else {
                format!("group {:?}", facts.group)
            });
        }
        let bands = [
            ("confidence", &self.confidence, facts.confidence),
            ("margin", &self.margin, facts.margin),
        ];
        for (name, band, value) in bands {
            if band.is_any() {
                continue;
            }
            if !band.contains(value) {
                return Err(format!("{name} {value:.3} not in {band}"));
            }
            held.push(format!("{name} {value:.3} in {band}"));
        }
        if !self.tenants.is_empty() {
            if !self.tenants.iter().any(|t| t == facts.tenant) {
                return Err(format!("tenant {:?} not in {:?}", facts.tenant, self.tenants));
            }
            held.push(format!("tenant {:?}", facts.tenant));
        }
        if let Some(wanted) = self.has_record {
            if wanted != facts.has_record {
                return Err(format!("has_record is {}, not {wanted}", facts.has_record));
            }
            held.push(format!("has_record {wanted}"));
        }
        if let Some(wanted) = self.tier {
            if wanted != facts.tier {
                return Err(format!("tier is {}, not {}", facts.tier.as_str(), wanted.as_str()));
            }
            held.push(format!("tier {}", wanted.as_str()));
        }
        if !self.text_bytes.is_any() {
            if !self.text_bytes.contains(facts.text_bytes) {
                return Err(format!("text of {} bytes not in {}", facts.text_bytes, self.text_bytes));
            }
            held.push(format!("text of {} bytes in {}", facts.text_bytes, self.text_bytes));
        }
        Ok(if held.is_empty() {
            "no conditions: matches everything".to_owned()
        } else {
            held.join(", ")
        })
    }

    /// Whether every request `other` matches is also matched by `self` (so a rule with `other` after one with
    /// `self` can never fire). With the classifier's label → group map, groups are expanded to their labels, so
    /// a group covers its own labels; without it, labels and groups are compared as written.
    pub fn covers(&self, other: &Self, groups: Option<&BTreeMap<String, String>>) -> bool {
        let labels = match (self.label_set(groups), other.label_set(groups)) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => theirs.is_subset(&mine),
        };
        let tenants = self.tenants.is_empty()
            || (!other.tenants.is_empty() && other.tenants.iter().all(|t| self.tenants.contains(t)));
        let record = self.has_record.is_none() || self.has_record == other.has_record;
        let tier = self.tier.is_none() || self.tier == other.tier;
        labels
            && tenants
            && record
            && tier
            && self.confidence.covers(&other.confidence)
            && self.margin.covers(&other.margin)
            && self.text_bytes.covers(&other.text_bytes)
    }

    /// The labels matched (`None`: any). Without a label map, groups stand for themselves (`group:` prefixed).
    fn label_set(&self, groups: Option<&BTreeMap<String, String>>) -> Option<BTreeSet<String>> {
        if self.labels.is_empty() && self.groups.is_empty() {
            return None;
        }
        let mut set: BTreeSet<String> = self.labels.iter().cloned().collect();
        for group in &self.groups {
            match groups {
                Some(map) => set.extend(map.iter().filter(|(_, g)| *g == group).map(|(l, _)| l.clone())),
                None => {
                    set.insert(format!("group:{group}"));
                }
            }
        }
        Some(set)
    }
}
