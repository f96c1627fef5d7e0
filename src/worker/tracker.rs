//! Which offsets may be committed: per partition, the contiguous prefix of finished records.
//!
//! ```text
//!  offsets   40   41   42   43   44
//!  state    done done busy done busy      → committable: 42 (next offset to read)
//! ```
//! A record is registered when consumed and finished when every delivery it produced has a
//! durable outcome (or it produced none: unmatched, skipped). Only then may the consumer group
//! move past it, so a crash replays every record whose outcome was not durable (at-least-once).

use std::collections::{BTreeMap, HashMap};

/// A partition of a topic.
pub type PartitionKey = (String, i32);

#[derive(Debug, Default)]
struct PartitionState {
    /// offset → deliveries still without a durable outcome (0 = finished, not yet a prefix).
    open: BTreeMap<i64, usize>,
    /// The next offset to commit, once the prefix advanced past something.
    committable: Option<i64>,
}

/// Offsets per partition; all methods are cheap (log n in the records in flight).
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<PartitionKey, PartitionState>,
}

impl OffsetTracker {
    /// A consumed record producing `deliveries` outstanding deliveries.
    pub fn register(&mut self, key: &PartitionKey, offset: i64, deliveries: usize) {
        let state = self.partitions.entry(key.clone()).or_default();
        state.open.insert(offset, deliveries);
        if deliveries == 0 {
            Self::advance(state);
        }
    }

    /// One delivery of the record at `offset` became durable.
    pub fn finish_one(&mut self, key: &PartitionKey, offset: i64) {
        let Some(state) = self.partitions.get_mut(key) else {
            return;
        };
        if let Some(left) = state.open.get_mut(&offset) {
            *left = left.saturating_sub(1);
            if *left == 0 {
                Self::advance(state);
            }
        }
    }

    fn advance(state: &mut PartitionState) {
        while let Some((&offset, &left)) = state.open.first_key_value() {
            if left > 0 {
                break;
            }
            state.open.remove(&offset);
            state.committable = Some(offset + 1);
        }
    }

    /// Takes the offsets that became committable since the last call.
    pub fn take_committable(&mut self) -> Vec<(PartitionKey, i64)> {
        self.partitions
            .iter_mut()
            .filter_map(|(k, s)| s.committable.take().map(|o| (k.clone(), o)))
            .collect()
    }

    /// Records of `key` consumed but not finished.
    pub fn in_flight(&self, key: &PartitionKey) -> usize {
        self.partitions.get(key).map_or(0, |s| s.open.len())
    }

    /// Forgets a partition (revoked after draining, or lost).
    pub fn remove(&mut self, key: &PartitionKey) {
        self.partitions.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PartitionKey {
        ("t".to_owned(), 0)
    }

    #[test]
    fn commits_only_a_contiguous_prefix() {
        let mut t = OffsetTracker::default();
        t.register(&key(), 40, 1);
        t.register(&key(), 41, 2);
        t.register(&key(), 42, 0);
        assert!(t.take_committable().is_empty());
        t.finish_one(&key(), 41);
        t.finish_one(&key(), 41);
        assert!(t.take_committable().is_empty(), "40 still open");
        t.finish_one(&key(), 40);
        assert_eq!(t.take_committable(), vec![(key(), 43)]);
        assert!(t.take_committable().is_empty());
        assert_eq!(t.in_flight(&key()), 0);
    }

    #[test]
    fn records_without_deliveries_finish_at_once() {
        let mut t = OffsetTracker::default();
        t.register(&key(), 7, 0);
        assert_eq!(t.take_committable(), vec![(key(), 8)]);
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::default();
        let other = ("t".to_owned(), 1);
        t.register(&key(), 1, 1);
        t.register(&other, 5, 1);
        t.finish_one(&other, 5);
        assert_eq!(t.take_committable(), vec![(other, 6)]);
        assert_eq!(t.in_flight(&key()), 1);
    }
}
