//! Endpoint isolation and circuit breaking (spec §10.1, §10.2): no single config can hold the
//! worker's consumption or its slots.
//!
//! Each config gets `--endpoint-concurrency` slots inside the global `--delivery-concurrency`.
//! A first attempt never waits for a config's slot: when none is free, or the config's circuit
//! is not closed, the delivery is stored `pending` instead (deferred) and the sweep sends it
//! later, within that config's free slots.
//!
//! ```text
//!            N consecutive retryable failures                cooldown over
//!  closed ─────────────────────────────────────► open ─────────────────────► half-open
//!    ▲                                            ▲                              │ one probe
//!    │            probe succeeded                 │  probe failed: period × 2    │ (the sweep's
//!    └────────────────────────────────────────────┴──────────────────────────────┘  earliest row)
//! ```
//! A success at any time closes the circuit and resets the count; a permanent failure (4xx,
//! SSRF refusal) neither counts nor resets. Circuit state lives in this process only; what other
//! processes should know (`failing_since`, auto-disable) is stored by the writer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::config::IsolationSettings;
use crate::domain::delivery::AttemptOutcome;
use crate::domain::time::Timestamp;
use crate::metrics::metrics;
use crate::store::ClaimLimits;

/// Why a first attempt was stored without a call (the `reason` label of
/// `webhooks_deliveries_deferred_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferReason {
    EndpointBusy,
    CircuitOpen,
}

impl DeferReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeferReason::EndpointBusy => "endpoint_busy",
            DeferReason::CircuitOpen => "circuit_open",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Circuit {
    Closed {
        failures: u32,
    },
    Open {
        until: Timestamp,
        period: Duration,
    },
    /// The open period is over: one call probes the endpoint.
    HalfOpen {
        period: Duration,
        probing: bool,
    },
}

/// One config's slots and circuit.
struct Endpoint {
    slots: Arc<Semaphore>,
    circuit: Mutex<Circuit>,
}

impl Endpoint {
    fn circuit(&self) -> Circuit {
        match self.circuit.lock() {
            Ok(c) => *c,
            Err(_) => Circuit::Closed { failures: 0 },
        }
    }
}

/// Per-config slots and circuits of this process.
pub struct Isolation {
    settings: IsolationSettings,
    max_backoff: Duration,
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
    /// Signalled when a config that had no free slot frees one: the sweep may claim its rows.
    slot_freed: Arc<Notify>,
}

/// A config slot held by a call; dropping it frees the slot (and wakes the sweep when the
/// config was full).
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    endpoint: Arc<Endpoint>,
    slot_freed: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.endpoint.slots.available_permits() == 0 {
            self.slot_freed.notify_one();
        }
    }
}

impl Isolation {
    pub fn new(settings: IsolationSettings, max_backoff: Duration) -> Isolation {
        Isolation {
            settings,
            max_backoff,
            endpoints: Mutex::default(),
            slot_freed: Arc::default(),
        }
    }

    pub fn slot_freed(&self) -> Arc<Notify> {
        Arc::clone(&self.slot_freed)
    }

    fn endpoint(&self, config_id: &str) -> Arc<Endpoint> {
        let Ok(mut all) = self.endpoints.lock() else {
            return Arc::new(self.fresh());
        };
        if let Some(e) = all.get(config_id) {
            return Arc::clone(e);
        }
        let e = Arc::new(self.fresh());
        all.insert(config_id.to_owned(), Arc::clone(&e));
        e
    }

    fn fresh(&self) -> Endpoint {
        Endpoint {
            slots: Arc::new(Semaphore::new(self.settings.endpoint_concurrency)),
            circuit: Mutex::new(Circuit::Closed { failures: 0 }),
        }
    }

    /// Moves an open circuit whose period is over to half-open; returns the state now.
    fn current(&self, endpoint: &Endpoint, now: Timestamp) -> Circuit {
        let Ok(mut c) = endpoint.circuit.lock() else {
            return Circuit::Closed { failures: 0 };
        };
        if let Circuit::Open { until, period } = *c {
            if now >= until {
                *c = Circuit::HalfOpen {
                    period,
                    probing: false,
                };
            }
        }
        *c
    }

    /// Whether a first attempt for `config_id` must be deferred because of its circuit (spec
    /// §10.2): while open, due when the period ends; while half-open, due now (the sweep probes
    /// with the earliest due delivery). None when the circuit is closed.
    pub fn circuit_deferral(&self, config_id: &str, now: Timestamp) -> Option<Timestamp> {
        match self.current(&self.endpoint(config_id), now) {
            Circuit::Open { until, .. } => Some(until),
            Circuit::HalfOpen { .. } => Some(now),
            Circuit::Closed { .. } => None,
        }
    }

    /// One of the config's slots if one is free now; a first attempt never waits for one
    /// (spec §10.1): without, its delivery is deferred.
    pub fn try_slot(&self, config_id: &str) -> Option<Slot> {
        let endpoint = self.endpoint(config_id);
        let permit = Arc::clone(&endpoint.slots).try_acquire_owned().ok()?;
        Some(Slot {
            _permit: permit,
            endpoint,
            slot_freed: Arc::clone(&self.slot_freed),
        })
    }

    /// A slot for a row the sweep claimed (within the limits it was given, so normally free at
    /// once; a first attempt may have taken it in between, then this waits for the next one).
    pub async fn acquire(&self, config_id: &str) -> Option<Slot> {
        let endpoint = self.endpoint(config_id);
        let permit = Arc::clone(&endpoint.slots).acquire_owned().await.ok()?;
        Some(Slot {
            _permit: permit,
            endpoint,
            slot_freed: Arc::clone(&self.slot_freed),
        })
    }

    /// The sweep's per-config limits for a claim of at most `total` rows (spec §5.4 step 2).
    pub fn claim_limits(&self, total: usize, now: Timestamp) -> ClaimLimits {
        let per_config = self.settings.endpoint_concurrency;
        let endpoints: Vec<(String, Arc<Endpoint>)> = self
            .endpoints
            .lock()
            .map(|all| all.iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect())
            .unwrap_or_default();
        let mut capped = Vec::new();
        for (id, endpoint) in endpoints {
            let free = endpoint.slots.available_permits();
            let cap = match self.current(&endpoint, now) {
                Circuit::Open { .. } | Circuit::HalfOpen { probing: true, .. } => 0,
                Circuit::HalfOpen { probing: false, .. } => free.min(1),
                Circuit::Closed { .. } => free,
            };
            if cap < per_config {
                capped.push((id, i64::try_from(cap).unwrap_or(0)));
            }
        }
        ClaimLimits {
            total: i64::try_from(total).unwrap_or(i64::MAX),
            per_config: i64::try_from(per_config).unwrap_or(i64::MAX),
            capped,
        }
    }

    /// The sweep claimed a row of `config_id`: if its circuit is half-open, this call is the
    /// probe, and no other call may be made until it ends.
    pub fn claimed(&self, config_id: &str) {
        self.set_probing(config_id, true);
    }

    /// A claimed row ended without a call (the sweep's pre-checks failed it): a half-open
    /// circuit may probe with another row.
    pub fn no_call(&self, config_id: &str) {
        self.set_probing(config_id, false);
    }

    fn set_probing(&self, config_id: &str, probing: bool) {
        let endpoint = self.endpoint(config_id);
        let Ok(mut c) = endpoint.circuit.lock() else {
            return;
        };
        if let Circuit::HalfOpen { period, .. } = *c {
            *c = Circuit::HalfOpen { period, probing };
        }
    }

    /// When the next open circuit becomes half-open (the sweep wakes then to probe it).
    pub fn next_probe(&self) -> Option<Timestamp> {
        let all = self.endpoints.lock().ok()?;
        all.values()
            .filter_map(|e| match e.circuit() {
                Circuit::Open { until, .. } => Some(until),
                _ => None,
            })
            .min()
    }

    /// Records a call's outcome in the config's circuit (spec §10.2).
    pub fn record(&self, config_id: &str, outcome: AttemptOutcome, done: Timestamp, error: &str) {
        let endpoint = self.endpoint(config_id);
        let Ok(mut c) = endpoint.circuit.lock() else {
            return;
        };
        let before = *c;
        let after = match (outcome, before) {
            (AttemptOutcome::Succeeded, _) => Circuit::Closed { failures: 0 },
            (AttemptOutcome::PermanentFailure, Circuit::HalfOpen { period, .. }) => Circuit::HalfOpen {
                period,
                probing: false,
            },
            (AttemptOutcome::PermanentFailure, state) => state,
            (AttemptOutcome::RetryableFailure, Circuit::Closed { failures }) => {
                let failures = failures.saturating_add(1);
                if self.settings.breaker_failures > 0 && failures >= self.settings.breaker_failures {
                    let period = self.settings.breaker_cooldown;
                    Circuit::Open {
                        until: later(done, period),
                        period,
                    }
                } else {
                    Circuit::Closed { failures }
                }
            }
            (AttemptOutcome::RetryableFailure, Circuit::HalfOpen { period, .. }) => {
                let period = period
                    .saturating_mul(2)
                    .min(self.max_backoff.max(self.settings.breaker_cooldown));
                Circuit::Open {
                    until: later(done, period),
                    period,
                }
            }
            // A call that was already in flight when the circuit opened.
            (AttemptOutcome::RetryableFailure, open @ Circuit::Open { .. }) => open,
        };
        *c = after;
        drop(c);
        let was_open = !matches!(before, Circuit::Closed { .. });
        let is_open = !matches!(after, Circuit::Closed { .. });
        match (before, after) {
            (Circuit::Closed { .. }, Circuit::Open { until, .. }) => {
                tracing::info!(config.id = config_id, last_error = error, reopens_at = %until, "circuit opened");
            }
            (Circuit::HalfOpen { .. }, Circuit::Open { until, .. }) => {
                tracing::info!(config.id = config_id, last_error = error, reopens_at = %until, "circuit re-opened after a failed probe");
            }
            (Circuit::Open { .. } | Circuit::HalfOpen { .. }, Circuit::Closed { .. }) => {
                tracing::info!(config.id = config_id, "circuit closed");
            }
            _ => {}
        }
        if was_open != is_open {
            metrics().circuits_open.add(if is_open { 1 } else { -1 });
            if !is_open {
                // The deferred rows are due: let the sweep claim them now.
                self.slot_freed.notify_one();
            }
        }
    }

    /// Forgets configs that are no longer active (their circuits and idle slots).
    pub fn retain(&self, active: &std::collections::HashSet<&str>) {
        if let Ok(mut all) = self.endpoints.lock() {
            all.retain(|id, e| {
                let keep = active.contains(id.as_str())
                    || e.slots.available_permits() < self.settings.endpoint_concurrency;
                if !keep && !matches!(e.circuit(), Circuit::Closed { .. }) {
                    metrics().circuits_open.sub(1);
                }
                keep
            });
        }
    }
}

fn later(t: Timestamp, d: Duration) -> Timestamp {
    let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    Timestamp::from_datetime(
        t.as_datetime()
            .checked_add_signed(d)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn isolation(failures: u32) -> Isolation {
        Isolation::new(
            IsolationSettings {
                endpoint_concurrency: 2,
                breaker_failures: failures,
                breaker_cooldown: Duration::from_secs(10),
                auto_disable_after: None,
            },
            Duration::from_secs(25),
        )
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_datetime(
            chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap_or_default(),
        )
    }

    #[test]
    fn a_busy_config_has_no_slot_and_others_are_unaffected() {
        let iso = isolation(0);
        let (a, b) = (iso.try_slot("c"), iso.try_slot("c"));
        assert!(a.is_some() && b.is_some());
        assert!(iso.try_slot("c").is_none());
        assert!(iso.try_slot("other").is_some(), "another config is unaffected");
        drop(a);
        assert!(iso.try_slot("c").is_some(), "a slot frees when its call ends");
    }

    #[test]
    fn the_circuit_opens_probes_once_and_doubles_its_period() {
        let iso = isolation(3);
        for _ in 0..2 {
            iso.record("c", AttemptOutcome::RetryableFailure, at(0), "500");
        }
        assert_eq!(
            iso.circuit_deferral("c", at(0)),
            None,
            "two failures keep it closed"
        );
        // A 4xx neither counts nor resets.
        iso.record("c", AttemptOutcome::PermanentFailure, at(0), "404");
        iso.record("c", AttemptOutcome::RetryableFailure, at(1), "500");
        assert_eq!(iso.circuit_deferral("c", at(2)), Some(at(11)));
        assert_eq!(iso.next_probe(), Some(at(11)));
        assert_eq!(iso.claim_limits(100, at(5)).excluded(), ["c"]);
        // Half-open: first attempts still defer, the sweep may take exactly one row.
        assert_eq!(iso.circuit_deferral("c", at(11)), Some(at(11)));
        assert_eq!(iso.claim_limits(100, at(11)).capped, [("c".to_owned(), 1)]);
        iso.claimed("c");
        assert_eq!(iso.claim_limits(100, at(11)).capped, [("c".to_owned(), 0)]);
        // The probe fails: open for twice the period.
        iso.record("c", AttemptOutcome::RetryableFailure, at(12), "500");
        assert_eq!(iso.circuit_deferral("c", at(13)), Some(at(32)));
        // And again: doubled, capped at the max backoff (25 s).
        iso.claim_limits(100, at(32));
        iso.claimed("c");
        iso.record("c", AttemptOutcome::RetryableFailure, at(33), "500");
        assert_eq!(iso.circuit_deferral("c", at(34)), Some(at(58)));
        // A probe ended without a call frees the half-open circuit for another.
        iso.claim_limits(100, at(58));
        iso.claimed("c");
        iso.no_call("c");
        assert_eq!(iso.claim_limits(100, at(58)).capped, [("c".to_owned(), 1)]);
        // A successful probe closes it.
        iso.claimed("c");
        iso.record("c", AttemptOutcome::Succeeded, at(59), "");
        assert_eq!(iso.circuit_deferral("c", at(59)), None);
        assert!(iso.claim_limits(100, at(59)).capped.is_empty());
    }

    #[test]
    fn no_breaker_when_failures_is_zero() {
        let iso = isolation(0);
        for _ in 0..100 {
            iso.record("c", AttemptOutcome::RetryableFailure, at(0), "500");
        }
        assert_eq!(iso.circuit_deferral("c", at(0)), None);
    }
}
