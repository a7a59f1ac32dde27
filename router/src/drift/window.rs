//! Live counts over a sliding window: a ring of slices of atomic counters. The request path only increments
//! (one relaxed atomic add per bin); a timer drops the oldest slice.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// `slices` slices of `width` counters each; the newest takes the increments.
pub struct SlidingCounts {
    slices: Box<[Box<[AtomicU64]>]>,
    current: AtomicUsize,
}

impl SlidingCounts {
    /// Zeroed counts: `slices` (at least 1) of `width` counters.
    pub fn new(slices: usize, width: usize) -> Self {
        Self {
            slices: (0..slices.max(1))
                .map(|_| (0..width).map(|_| AtomicU64::new(0)).collect())
                .collect(),
            current: AtomicUsize::new(0),
        }
    }

    /// Counts one at `index` in the newest slice (an index past the width is ignored).
    pub fn add(&self, index: usize) {
        let slice = &self.slices[self.current.load(Ordering::Relaxed) % self.slices.len()];
        if let Some(counter) = slice.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops the oldest slice: it is zeroed, then becomes the newest. An increment racing with this lands in
    /// either slice; none is lost before the slice it landed in ages out.
    pub fn rotate(&self) {
        let next = (self.current.load(Ordering::Relaxed) + 1) % self.slices.len();
        for counter in self.slices[next].iter() {
            counter.store(0, Ordering::Relaxed);
        }
        self.current.store(next, Ordering::Relaxed);
    }

    /// Each counter summed over the window.
    pub fn totals(&self) -> Vec<u64> {
        let width = self.slices.first().map_or(0, |s| s.len());
        let mut totals = vec![0u64; width];
        for slice in self.slices.iter() {
            for (total, counter) in totals.iter_mut().zip(slice.iter()) {
                *total += counter.load(Ordering::Relaxed);
            }
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::SlidingCounts;

    #[test]
    fn counts_age_out_after_a_full_turn_of_slices() {
        let counts = SlidingCounts::new(3, 2);
        counts.add(0);
        counts.add(1);
        counts.add(1);
        assert_eq!(counts.totals(), [1, 2]);
        counts.rotate();
        counts.add(0);
        assert_eq!(counts.totals(), [2, 2], "the older slice is still in the window");
        counts.rotate();
        assert_eq!(counts.totals(), [2, 2]);
        counts.rotate();
        assert_eq!(
            counts.totals(),
            [1, 0],
            "the first slice is dropped after three rotations"
        );
        counts.rotate();
        assert_eq!(counts.totals(), [0, 0]);
    }

    #[test]
    fn an_index_past_the_width_is_ignored() {
        let counts = SlidingCounts::new(1, 2);
        counts.add(5);
        assert_eq!(counts.totals(), [0, 0]);
    }
}
