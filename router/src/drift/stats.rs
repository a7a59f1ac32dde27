//! The two distances between a reference and a live distribution, over the same bins. Both follow the tools
//! operators compare with: scipy's `jensenshannon` (natural log), and PSI with empty bins floored as Evidently
//! does. Checked against scipy on the same counts (`drift_fixtures.json`, `evals/tests/drift.rs`).

/// Proportions below this count as this in PSI, so a bin empty on one side gives a large, finite term.
pub const PSI_FLOOR: f64 = 1e-4;

/// Jensen-Shannon distance (the square root of the divergence, natural log): 0 for equal distributions, at most
/// sqrt(ln 2) ≈ 0.833. `None` when either side has no counts.
pub fn js_distance(reference: &[u64], current: &[u64]) -> Option<f64> {
    let (p, q) = (proportions(reference)?, proportions(current)?);
    let divergence: f64 = p
        .iter()
        .zip(&q)
        .map(|(&p, &q)| {
            let m = (p + q) / 2.0;
            relative_entropy(p, m) + relative_entropy(q, m)
        })
        .sum();
    Some((divergence / 2.0).max(0.0).sqrt())
}

/// Population stability index: the sum over bins of (current - reference) * ln(current / reference), each
/// proportion floored at [`PSI_FLOOR`]. `None` when either side has no counts.
pub fn psi(reference: &[u64], current: &[u64]) -> Option<f64> {
    let (p, q) = (proportions(reference)?, proportions(current)?);
    Some(
        p.iter()
            .zip(&q)
            .map(|(&r, &c)| {
                let (r, c) = (r.max(PSI_FLOOR), c.max(PSI_FLOOR));
                (c - r) * (c / r).ln()
            })
            .sum(),
    )
}

fn proportions(counts: &[u64]) -> Option<Vec<f64>> {
    let total: u64 = counts.iter().sum();
    (total > 0).then(|| counts.iter().map(|&c| c as f64 / total as f64).collect())
}

/// `x ln(x / y)`, 0 when x is 0 (scipy's `rel_entr`).
fn relative_entropy(x: f64, y: f64) -> f64 {
    if x > 0.0 { x * (x / y).ln() } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::{js_distance, psi};

    #[test]
    fn equal_distributions_are_at_distance_zero_whatever_their_totals() {
        assert_eq!(js_distance(&[10, 30, 60], &[1, 3, 6]), Some(0.0));
        assert!(psi(&[10, 30, 60], &[1, 3, 6]).is_some_and(|v| v.abs() < 1e-12));
    }

    #[test]
    fn disjoint_distributions_are_at_the_largest_distance() {
        let js = js_distance(&[5, 0], &[0, 7]).unwrap_or_default();
        assert!((js - std::f64::consts::LN_2.sqrt()).abs() < 1e-12, "{js}");
        // Two bins, each 1 against the floor 1e-4 on the other side.
        let expected = 2.0 * (1.0 - 1e-4) * (1.0f64 / 1e-4).ln();
        assert!(psi(&[5, 0], &[0, 7]).is_some_and(|v| (v - expected).abs() < 1e-9));
    }

    #[test]
    fn a_known_pair_matches_scipy() {
        // scipy.spatial.distance.jensenshannon([0.5, 0.5], [0.9, 0.1]) = 0.31898154...
        let js = js_distance(&[1, 1], &[9, 1]).unwrap_or_default();
        assert!((js - 0.318_981_543_477).abs() < 1e-9, "{js}");
        // (0.9-0.5) ln(0.9/0.5) + (0.1-0.5) ln(0.1/0.5)
        let expected = 0.4 * (1.8f64).ln() - 0.4 * (0.2f64).ln();
        assert!(psi(&[1, 1], &[9, 1]).is_some_and(|v| (v - expected).abs() < 1e-12));
    }

    #[test]
    fn nothing_is_measured_without_counts() {
        assert_eq!(js_distance(&[0, 0], &[1, 2]), None);
        assert_eq!(psi(&[1, 2], &[0, 0]), None);
    }
}
