//! Timestamps as the contract wants them: UTC, truncated to microseconds before they are stored,
//! returned or used in arithmetic, rendered RFC 3339 with `Z` and the fraction's trailing zeros
//! removed.

use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};

/// A UTC instant with microsecond precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    pub fn now() -> Self {
        Self::from_datetime(Utc::now())
    }

    pub fn from_datetime(t: DateTime<Utc>) -> Self {
        Timestamp(t.trunc_subsecs(6))
    }

    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// The fixed-width text form stored by SQLite: six fraction digits, so text order is time order.
    pub fn to_storage_text(&self) -> String {
        self.0.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }

    pub fn parse_storage_text(s: &str) -> Result<Self, chrono::ParseError> {
        DateTime::parse_from_rfc3339(s).map(|t| Self::from_datetime(t.with_timezone(&Utc)))
    }

    /// RFC 3339 with `Z`, 0–6 fraction digits (trailing zeros removed).
    pub fn to_rfc3339(&self) -> String {
        let base = self.0.format("%Y-%m-%dT%H:%M:%S").to_string();
        let micros = self.0.timestamp_subsec_micros();
        if micros == 0 {
            return format!("{base}Z");
        }
        let frac = format!("{micros:06}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(nanos: u32) -> Timestamp {
        let t = Utc
            .with_ymd_and_hms(2024, 5, 1, 10, 0, 0)
            .single()
            .map(|t| t + chrono::Duration::nanoseconds(i64::from(nanos)));
        Timestamp::from_datetime(t.unwrap_or_default())
    }

    #[test]
    fn rfc3339_trims_trailing_zeros_and_truncates_to_micros() {
        assert_eq!(at(0).to_rfc3339(), "2024-05-01T10:00:00Z");
        assert_eq!(at(123_400_000).to_rfc3339(), "2024-05-01T10:00:00.1234Z");
        assert_eq!(at(123_456_789).to_rfc3339(), "2024-05-01T10:00:00.123456Z");
        assert_eq!(at(999).to_rfc3339(), "2024-05-01T10:00:00Z");
    }

    #[test]
    fn storage_text_is_fixed_width_and_round_trips() {
        let t = at(1_000);
        assert_eq!(t.to_storage_text(), "2024-05-01T10:00:00.000001Z");
        assert_eq!(at(0).to_storage_text(), "2024-05-01T10:00:00.000000Z");
        assert_eq!(Timestamp::parse_storage_text(&t.to_storage_text()).ok(), Some(t));
    }
}
