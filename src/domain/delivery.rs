//! The states a delivery goes through and the outcomes a call can have (spec §3, §4.7, §5.5),
//! mapped to their stored and served text here and nowhere else.
//!
//! ```text
//!            ┌──────────── lease expired / replay (pending: expedite) ───────────┐
//!            ▼                                                                   │
//! (record) pending ──claim──► delivering ──call──► succeeded                     │
//!    │       ▲  │                  │        └────► failed ──replay (new generation)┘
//!    │       │  └── config deleted ┴─────────────► cancelled
//!    │       └──── retryable, within the window ──┘
//!    └── first call on consumption: straight to succeeded / pending / failed
//! ```

use std::fmt;
use std::str::FromStr;

/// `deliveries.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for its next call at `next_attempt_at`.
    Pending,
    /// Leased by a sweep: a call is in flight.
    Delivering,
    Succeeded,
    Failed,
    Cancelled,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivering,
        DeliveryStatus::Succeeded,
        DeliveryStatus::Failed,
        DeliveryStatus::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivering => "delivering",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    /// No call will be made any more (short of a replay).
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Succeeded | DeliveryStatus::Failed | DeliveryStatus::Cancelled
        )
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that is not one of the five statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStatus(pub String);

impl fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown delivery status {:?}", self.0)
    }
}

impl std::error::Error for UnknownStatus {}

impl FromStr for DeliveryStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeliveryStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

impl serde::Serialize for DeliveryStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl TryFrom<String> for DeliveryStatus {
    type Error = UnknownStatus;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DeliveryStatus> for String {
    fn from(s: DeliveryStatus) -> String {
        s.as_str().to_owned()
    }
}

/// `attempts.outcome`: how one call is classified (spec §4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptOutcome {
    Succeeded,
    /// The endpoint looks unhealthy or unreachable: retried, and counted by its circuit.
    RetryableFailure,
    /// The endpoint refused the event (a 4xx), or may not be called at all: never retried.
    PermanentFailure,
}

impl AttemptOutcome {
    pub const ALL: [AttemptOutcome; 3] = [
        AttemptOutcome::Succeeded,
        AttemptOutcome::RetryableFailure,
        AttemptOutcome::PermanentFailure,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::RetryableFailure => "retryable_failure",
            AttemptOutcome::PermanentFailure => "permanent_failure",
        }
    }

    /// The classification of an HTTP response status (spec §4.7 table).
    pub const fn of_status(status: u16) -> AttemptOutcome {
        match status {
            200..=299 => AttemptOutcome::Succeeded,
            408 | 429 => AttemptOutcome::RetryableFailure,
            400..=499 => AttemptOutcome::PermanentFailure,
            _ => AttemptOutcome::RetryableFailure,
        }
    }
}

impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AttemptOutcome {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AttemptOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

impl serde::Serialize for AttemptOutcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl TryFrom<String> for AttemptOutcome {
    type Error = UnknownStatus;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<AttemptOutcome> for String {
    fn from(o: AttemptOutcome) -> String {
        o.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_text() {
        for s in DeliveryStatus::ALL {
            assert_eq!(s.as_str().parse::<DeliveryStatus>(), Ok(s));
        }
        assert!("Pending".parse::<DeliveryStatus>().is_err());
        for o in AttemptOutcome::ALL {
            assert_eq!(o.as_str().parse::<AttemptOutcome>(), Ok(o));
        }
    }

    #[test]
    fn http_statuses_classify_as_the_contract_says() {
        use AttemptOutcome::*;
        for (status, want) in [
            (200, Succeeded),
            (204, Succeeded),
            (299, Succeeded),
            (101, RetryableFailure),
            (302, RetryableFailure),
            (400, PermanentFailure),
            (404, PermanentFailure),
            (408, RetryableFailure),
            (429, RetryableFailure),
            (499, PermanentFailure),
            (500, RetryableFailure),
            (503, RetryableFailure),
            (600, RetryableFailure),
        ] {
            assert_eq!(AttemptOutcome::of_status(status), want, "{status}");
        }
    }
}
