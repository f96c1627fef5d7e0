//! Which offsets may be committed: per partition, the contiguous prefix of finished records.
//!
//! ```text
//!  offsets   40   41   42   43   44
//!  state    done done open done queued     → committable: 42 (next offset to read)
//! ```
//! A record is registered `queued` when the consumer thread reads it, becomes `open` with the
//! number of its deliveries when the dispatcher starts it, and finishes when every delivery it
//! produced has a durable outcome (or it produced none: unmatched, skipped). Only then may the
//! consumer group move past it, so a crash replays every record whose outcome was not durable
//! (at-least-once).
//!
//! On a rebalance, a revoked partition's queued records are dropped (never started: the next
//! owner reads them), its open ones are waited for, and then its committable offset is
//! committed before the partition is given up.

use std::collections::{BTreeMap, HashMap};

/// A partition of a topic.
pub type PartitionKey = (String, i32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    /// Read, not yet started by the dispatcher.
    Queued,
    /// Started: deliveries still without a durable outcome (0 = finished, not yet a prefix).
    Open(usize),
}

#[derive(Debug, Default)]
struct PartitionState {
    records: BTreeMap<i64, Record>,
    /// The next offset to commit, once the prefix advanced past something.
    committable: Option<i64>,
    /// Being revoked: queued records are not to be started.
    revoking: bool,
}

/// Offsets per partition; all methods are cheap (log n in the records in flight).
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<PartitionKey, PartitionState>,
}

impl OffsetTracker {
    /// The consumer read the record at `offset`.
    pub fn queue(&mut self, key: &PartitionKey, offset: i64) {
        let state = self.partitions.entry(key.clone()).or_default();
        state.revoking = false;
        state.records.insert(offset, Record::Queued);
    }

    /// The dispatcher starts a queued record producing `deliveries` outstanding deliveries.
    /// False when the record is no longer this process's to handle (its partition was revoked,
    /// or is being revoked): then it must not be started.
    pub fn start(&mut self, key: &PartitionKey, offset: i64, deliveries: usize) -> bool {
        let Some(state) = self.partitions.get_mut(key) else {
            return false;
        };
        if state.revoking {
            return false;
        }
        match state.records.get_mut(&offset) {
            Some(r @ Record::Queued) => *r = Record::Open(deliveries),
            _ => return false,
        }
        if deliveries == 0 {
            Self::advance(state);
        }
        true
    }

    /// A record read and finished at once (skipped as invalid).
    pub fn finish_record(&mut self, key: &PartitionKey, offset: i64) {
        self.queue(key, offset);
        self.start(key, offset, 0);
    }

    /// One delivery of the record at `offset` became durable.
    pub fn finish_one(&mut self, key: &PartitionKey, offset: i64) {
        let Some(state) = self.partitions.get_mut(key) else {
            return;
        };
        if let Some(Record::Open(left)) = state.records.get_mut(&offset) {
            *left = left.saturating_sub(1);
            if *left == 0 {
                Self::advance(state);
            }
        }
    }

    fn advance(state: &mut PartitionState) {
        while let Some((&offset, &record)) = state.records.first_key_value() {
            if record != Record::Open(0) {
                break;
            }
            state.records.remove(&offset);
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

    /// Records of `key` started and not finished.
    pub fn in_flight(&self, key: &PartitionKey) -> usize {
        self.partitions.get(key).map_or(0, |s| {
            s.records
                .values()
                .filter(|r| matches!(r, Record::Open(n) if *n > 0))
                .count()
        })
    }

    /// Records read and not finished, over every partition (what a stop leaves unstored).
    pub fn unfinished(&self) -> usize {
        self.partitions
            .values()
            .map(|s| s.records.values().filter(|r| **r != Record::Open(0)).count())
            .sum()
    }

    /// Starts revoking `key`: its queued records will not be started. Records are read and
    /// started in offset order, so the dropped ones are the partition's tail, and the prefix
    /// rule still commits only what was finished.
    pub fn revoke(&mut self, key: &PartitionKey) {
        if let Some(state) = self.partitions.get_mut(key) {
            state.revoking = true;
            state.records.retain(|_, r| *r != Record::Queued);
        }
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

    fn read(t: &mut OffsetTracker, offset: i64, deliveries: usize) {
        t.queue(&key(), offset);
        assert!(t.start(&key(), offset, deliveries));
    }

    #[test]
    fn commits_only_a_contiguous_prefix() {
        let mut t = OffsetTracker::default();
        read(&mut t, 40, 1);
        read(&mut t, 41, 2);
        read(&mut t, 42, 0);
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
    fn queued_records_hold_the_prefix() {
        let mut t = OffsetTracker::default();
        t.queue(&key(), 1);
        t.finish_record(&key(), 2);
        assert!(t.take_committable().is_empty(), "1 was read but not started");
        assert_eq!(t.unfinished(), 1);
        assert!(t.start(&key(), 1, 0));
        assert_eq!(t.take_committable(), vec![(key(), 3)]);
    }

    #[test]
    fn records_without_deliveries_finish_at_once() {
        let mut t = OffsetTracker::default();
        t.finish_record(&key(), 7);
        assert_eq!(t.take_committable(), vec![(key(), 8)]);
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = OffsetTracker::default();
        let other = ("t".to_owned(), 1);
        read(&mut t, 1, 1);
        t.queue(&other, 5);
        assert!(t.start(&other, 5, 1));
        t.finish_one(&other, 5);
        assert_eq!(t.take_committable(), vec![(other, 6)]);
        assert_eq!(t.in_flight(&key()), 1);
    }

    #[test]
    fn a_revoked_partition_drops_its_queued_tail_and_keeps_the_open_records() {
        let mut t = OffsetTracker::default();
        read(&mut t, 10, 1);
        t.queue(&key(), 11);
        t.queue(&key(), 12);
        t.revoke(&key());
        assert!(
            !t.start(&key(), 11, 1),
            "a queued record of a revoked partition is not started"
        );
        assert_eq!(t.in_flight(&key()), 1);
        t.finish_one(&key(), 10);
        assert_eq!(t.in_flight(&key()), 0);
        assert_eq!(
            t.take_committable(),
            vec![(key(), 11)],
            "never past what was finished"
        );
        t.remove(&key());
        assert!(!t.start(&key(), 12, 1));
    }
}
