//! The retry schedule (contract §5.1, §5.2) and `Retry-After` handling (§4.7).
//!
//! Kept free of I/O and clocks so that the whole give-up rule can be tested by simulation: callers
//! pass the stored instants of a call (first attempt, due, start, completion) and get back what
//! the delivery becomes. Scheduling is anchored on those stored instants rather than on a sum of
//! nominal delays, so an on-time chain is exact (`due(k+1) = due(k) + delay(k−1)`) while a call
//! that ran late (worker down, config inactive, backlog) restarts the backoff from when it
//! actually ran instead of being given up on.
//!
//! Instants are expected to be truncated to microseconds already (§0); durations are converted
//! with microsecond precision (truncating) before any arithmetic, so results stay on that grid.
//! Arithmetic saturates instead of panicking: a sum past the calendar's end counts as "never".

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::delivery::AttemptOutcome;

/// Longest wait a `Retry-After` header can impose (§4.7), so one endpoint cannot park a delivery
/// for the whole retry window with a single answer.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(6 * 60 * 60);

/// The retry settings (`--min-backoff-delay`, `--max-backoff-delay`, `--abort-after`,
/// `--max-attempts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Retry window, measured from the first call of the replay generation.
    pub abort_after: Duration,
    /// Cap on calls per replay generation; `0` means no cap.
    pub max_attempts: u64,
}

/// `min(min_backoff · 2^n, max_backoff)` (§5.1), where `n` is the number of calls made so far
/// minus one. Saturating: any `n` is fine.
pub fn delay(policy: &RetryPolicy, n: u32) -> Duration {
    let mut delay = policy.min_backoff;
    // Doubling stops as soon as the cap is reached, so this runs at most ~100 times whatever `n`
    // is (a non-zero duration overflows `Duration` after fewer than 100 doublings).
    for _ in 0..n {
        if delay >= policy.max_backoff || delay.is_zero() {
            break;
        }
        delay = delay.saturating_mul(2);
    }
    delay.min(policy.max_backoff)
}

/// What a delivery becomes after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// `succeeded`, `next_attempt_at = NULL`.
    Succeeded,
    /// `failed`; see [`FailReason::last_error`] for the delivery's `last_error`.
    Failed { reason: FailReason },
    /// `pending` with `next_attempt_at = at`.
    Retry { at: DateTime<Utc> },
}

/// Why a delivery is given up on.
///
/// `Display` is hand-written to keep this module dependency-free; a `thiserror` derive would fit
/// in the main crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// The call was a `permanent_failure`; its own error becomes `last_error`.
    Permanent,
    /// `--max-attempts` calls were made.
    MaxAttempts,
    /// The next call would be due after `t0 + --abort-after`.
    WindowExceeded,
}

impl FailReason {
    /// The delivery's `last_error`: the failing attempt's own error for a permanent failure,
    /// otherwise the fixed text of the contract.
    pub fn last_error(self, attempt_error: &str) -> &str {
        match self {
            Self::Permanent => attempt_error,
            Self::MaxAttempts => "max attempts reached",
            Self::WindowExceeded => "retry window exceeded",
        }
    }
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Permanent => "permanent failure",
            Self::MaxAttempts => "max attempts reached",
            Self::WindowExceeded => "retry window exceeded",
        })
    }
}

/// The stored instants of call k (§5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTimes {
    /// `first_attempt_at`: start of the generation's first call.
    pub t0: DateTime<Utc>,
    /// When the call was due: `t0` for the first call, else the `next_attempt_at` it was claimed
    /// at.
    pub due: DateTime<Utc>,
    pub start: DateTime<Utc>,
    pub done: DateTime<Utc>,
}

/// The delivery's next state after call `attempts_made` (k ≥ 1, counting this call) ended with
/// `outcome` (§5.2).
///
/// `retry_after` is the parsed `Retry-After` of the response, if any; the caller passes it only
/// for a retryable outcome that got an HTTP response (it is ignored otherwise anyway). The cap is
/// checked before the window, so a delivery that hits both reports `max attempts reached`.
pub fn after_call(
    policy: &RetryPolicy,
    attempts_made: u64,
    times: &CallTimes,
    outcome: AttemptOutcome,
    retry_after: Option<Duration>,
) -> Next {
    match outcome {
        AttemptOutcome::Succeeded => return Next::Succeeded,
        AttemptOutcome::PermanentFailure => {
            return Next::Failed {
                reason: FailReason::Permanent,
            }
        }
        AttemptOutcome::RetryableFailure => {}
    }
    let n = u32::try_from(attempts_made.saturating_sub(1)).unwrap_or(u32::MAX);
    let backoff = delay(policy, n);
    // A call that started within one minimum backoff of its due time counts as on time, so the
    // schedule does not drift by each call's scheduling latency.
    let on_time = times.start.signed_duration_since(times.due) <= micros(policy.min_backoff);
    let anchor = if on_time { times.due } else { times.start };
    let mut next = plus(anchor, backoff);
    if let Some(wait) = retry_after.filter(|wait| *wait > backoff) {
        next = next.max(plus(times.done, wait.min(RETRY_AFTER_CAP)));
    }
    if cap_reached(policy, attempts_made) {
        Next::Failed {
            reason: FailReason::MaxAttempts,
        }
    } else if next > plus(times.t0, policy.abort_after) {
        Next::Failed {
            reason: FailReason::WindowExceeded,
        }
    } else {
        Next::Retry { at: next }
    }
}

/// The checks made right before call `attempts_made + 1` (§5.2), for settings that may have
/// changed since it was scheduled: `Some` means fail the delivery without calling and without
/// an attempt row. `t0` is `None` before the generation's first call, which is never refused by
/// the window.
pub fn precheck(
    policy: &RetryPolicy,
    attempts_made: u64,
    t0: Option<DateTime<Utc>>,
    due: DateTime<Utc>,
) -> Option<FailReason> {
    if cap_reached(policy, attempts_made) {
        return Some(FailReason::MaxAttempts);
    }
    match t0 {
        Some(t0) if due > plus(t0, policy.abort_after) => Some(FailReason::WindowExceeded),
        _ => None,
    }
}

fn cap_reached(policy: &RetryPolicy, attempts_made: u64) -> bool {
    policy.max_attempts > 0 && attempts_made >= policy.max_attempts
}

/// Truncates to microseconds, the contract's time grid; saturates far beyond any real setting.
fn micros(d: Duration) -> TimeDelta {
    TimeDelta::microseconds(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// `t + d`, or the last representable instant when that overflows: such an instant is never
/// reached, which is exactly what an overflowing deadline means.
fn plus(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_add_signed(micros(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Parses a `Retry-After` value (§4.7): delay-seconds (ASCII digits, no sign) or an HTTP-date
/// strictly after `now`. Anything else, including a date not in the future, is `None`, meaning
/// "ignore the header".
///
/// HTTP-dates are accepted in the three forms Go's `http.ParseTime` reads: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
/// (`Sun Nov  6 08:49:37 1994`). As in Go, day and month names match case-insensitively, the
/// weekday is not checked against the date, runs of spaces count as one, and a two-digit year
/// means 1969–2068. Unlike Go, the zone must be `GMT` (Go takes any abbreviation in RFC 850).
/// A delay too large for `u64` saturates: it is a valid "much later", and the 6 h cap applies.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim_matches([' ', '\t']);
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = parse_http_date(value)?;
    if at <= now {
        return None;
    }
    at.signed_duration_since(now).to_std().ok()
}

fn parse_http_date(value: &str) -> Option<DateTime<Utc>> {
    let mut tokens = value.split_ascii_whitespace();
    let first = tokens.next()?;
    let rest: [Option<&str>; 5] = std::array::from_fn(|_| tokens.next());
    if tokens.next().is_some() {
        return None;
    }
    let (year, month, day, time) = match (first.strip_suffix(','), rest) {
        // IMF-fixdate.
        (Some(weekday), [Some(day), Some(month), Some(year), Some(time), Some("GMT")])
            if is_weekday(weekday, false) && day.len() == 2 && year.len() == 4 =>
        {
            (number(year)?, month_number(month)?, number(day)?, time)
        }
        // RFC 850.
        (Some(weekday), [Some(date), Some(time), Some("GMT"), None, None]) if is_weekday(weekday, true) => {
            let mut parts = date.split('-');
            let (Some(day), Some(month), Some(year), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return None;
            };
            if day.len() != 2 || year.len() != 2 {
                return None;
            }
            let year = number(year)?;
            let year = if year >= 69 { 1900 + year } else { 2000 + year };
            (year, month_number(month)?, number(day)?, time)
        }
        // asctime; the day may be space-padded, hence one or two digits.
        (None, [Some(month), Some(day), Some(time), Some(year), None])
            if is_weekday(first, false) && (1..=2).contains(&day.len()) && year.len() == 4 =>
        {
            (number(year)?, month_number(month)?, number(day)?, time)
        }
        _ => return None,
    };
    let [h0, h1, b':', m0, m1, b':', s0, s1] = time.as_bytes() else {
        return None;
    };
    let hour = number_bytes(&[*h0, *h1])?;
    let minute = number_bytes(&[*m0, *m1])?;
    let second = number_bytes(&[*s0, *s1])?;
    // chrono validates the ranges: day within its month (leap years included), hour ≤ 23,
    // minute and second ≤ 59 (Go also rejects a leap second here).
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    Some(date.and_hms_opt(hour, minute, second)?.and_utc())
}

fn is_weekday(name: &str, long: bool) -> bool {
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    DAYS.iter().any(|day| {
        let expected = if long { day } else { day.get(..3).unwrap_or(day) };
        expected.eq_ignore_ascii_case(name)
    })
}

fn month_number(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let index = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(name))?;
    u32::try_from(index + 1).ok()
}

fn number(digits: &str) -> Option<u32> {
    number_bytes(digits.as_bytes())
}

/// Parses 1–9 ASCII digits (no sign, no spaces), enough for every HTTP-date field.
fn number_bytes(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    digits.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);
    const MINUTE: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);

    fn policy(
        min_backoff: Duration,
        max_backoff: Duration,
        abort_after: Duration,
        max_attempts: u64,
    ) -> RetryPolicy {
        RetryPolicy {
            min_backoff,
            max_backoff,
            abort_after,
            max_attempts,
        }
    }

    /// The defaults of §1.3: 1m, 1h, 720h, no cap.
    fn defaults() -> RetryPolicy {
        policy(MINUTE, HOUR, 720 * HOUR, 0)
    }

    /// The reference e2e settings of §5.3.
    fn e2e() -> RetryPolicy {
        policy(SECOND, HOUR, 3 * SECOND, 0)
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_714_557_600, 0).unwrap_or_else(|| panic!("valid timestamp"))
    }

    fn at(offset: Duration) -> DateTime<Utc> {
        plus(t0(), offset)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn retry_at(next: Next) -> DateTime<Utc> {
        match next {
            Next::Retry { at } => at,
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    /// Runs a delivery against an endpoint that always fails retryably, every call starting
    /// exactly when due and taking `latency`. Returns each call's due time and how it ended.
    fn simulate(
        policy: &RetryPolicy,
        latency: Duration,
        retry_after: Option<Duration>,
    ) -> (Vec<DateTime<Utc>>, FailReason) {
        let t0 = t0();
        let mut due = t0;
        let mut calls = Vec::new();
        loop {
            let made = calls.len() as u64;
            // Nothing changed since scheduling, so the pre-checks must never refuse a call.
            assert_eq!(precheck(policy, made, (made > 0).then_some(t0), due), None);
            assert!(made < 100_000, "runaway simulation");
            calls.push(due);
            let times = CallTimes {
                t0,
                due,
                start: due,
                done: plus(due, latency),
            };
            match after_call(
                policy,
                made + 1,
                &times,
                AttemptOutcome::RetryableFailure,
                retry_after,
            ) {
                Next::Retry { at } => due = at,
                Next::Failed { reason } => return (calls, reason),
                Next::Succeeded => panic!("a failure cannot succeed"),
            }
        }
    }

    // ---- delay ----

    #[test]
    fn default_delays_follow_the_table() {
        let expected = [1, 2, 4, 8, 16, 32, 60, 60, 60];
        for (n, minutes) in expected.into_iter().enumerate() {
            let n = u32::try_from(n).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(delay(&defaults(), n), minutes * MINUTE, "n = {n}");
        }
    }

    #[test]
    fn delay_saturates_for_any_n() {
        let p = defaults();
        for n in [31, 32, 63, 64, 65, 1_000, u32::MAX] {
            assert_eq!(delay(&p, n), HOUR, "n = {n}");
        }
        let huge = policy(Duration::MAX, Duration::MAX, HOUR, 0);
        assert_eq!(delay(&huge, 0), Duration::MAX);
        assert_eq!(delay(&huge, u32::MAX), Duration::MAX);
        let tiny = policy(Duration::from_nanos(1), Duration::MAX, HOUR, 0);
        assert_eq!(delay(&tiny, 10), Duration::from_nanos(1024));
        assert_eq!(delay(&tiny, u32::MAX), Duration::MAX);
        // Degenerate settings stay well defined.
        assert_eq!(
            delay(&policy(Duration::ZERO, HOUR, HOUR, 0), u32::MAX),
            Duration::ZERO
        );
        assert_eq!(delay(&policy(HOUR, MINUTE, HOUR, 0), 0), MINUTE);
    }

    // ---- schedule ----

    #[test]
    fn default_due_times_follow_the_table() {
        let (calls, _) = simulate(&defaults(), ms(200), None);
        let expected_minutes = [0, 1, 3, 7, 15, 31, 63, 123, 183, 243];
        for (call, minutes) in calls.iter().zip(expected_minutes) {
            assert_eq!(*call, at(minutes * MINUTE));
        }
    }

    #[test]
    fn worked_example_makes_exactly_three_calls() {
        let (calls, reason) = simulate(&e2e(), ms(50), None);
        assert_eq!(calls, [at(Duration::ZERO), at(SECOND), at(3 * SECOND)]);
        assert_eq!(reason, FailReason::WindowExceeded);
        assert_eq!(reason.last_error("500"), "retry window exceeded");
    }

    #[test]
    fn worked_example_step_by_step() {
        let p = e2e();
        let call = |k: u64, due: Duration| {
            let due = at(due);
            let times = CallTimes {
                t0: t0(),
                due,
                start: due,
                done: plus(due, ms(20)),
            };
            after_call(&p, k, &times, AttemptOutcome::RetryableFailure, None)
        };
        assert_eq!(call(1, Duration::ZERO), Next::Retry { at: at(SECOND) });
        // t0+1s+2s lands exactly on the window's end, which is still inside.
        assert_eq!(call(2, SECOND), Next::Retry { at: at(3 * SECOND) });
        assert_eq!(
            call(3, 3 * SECOND),
            Next::Failed {
                reason: FailReason::WindowExceeded
            }
        );
    }

    #[test]
    fn dead_endpoint_gets_725_calls_with_defaults() {
        let (calls, reason) = simulate(&defaults(), SECOND, None);
        assert_eq!(calls.len(), 725);
        assert_eq!(reason, FailReason::WindowExceeded);
        let last = calls.last().copied().unwrap_or_else(|| panic!("no calls"));
        assert!(last <= at(720 * HOUR));
        assert_eq!(last, at(123 * MINUTE + 717 * HOUR));
    }

    #[test]
    fn max_attempts_15_stops_at_the_15th_call() {
        let (calls, reason) = simulate(&policy(MINUTE, HOUR, 720 * HOUR, 15), SECOND, None);
        assert_eq!(calls.len(), 15);
        assert_eq!(reason, FailReason::MaxAttempts);
        assert_eq!(reason.last_error(""), "max attempts reached");
        let last = calls.last().copied().unwrap_or_else(|| panic!("no calls"));
        let expected = at(9 * HOUR + 3 * MINUTE);
        assert!(
            last.signed_duration_since(expected).abs() <= TimeDelta::seconds(1),
            "15th call due at {last}, expected about {expected}"
        );
    }

    #[test]
    fn cap_is_checked_before_the_window() {
        let p = policy(SECOND, HOUR, 3 * SECOND, 3);
        let due = at(3 * SECOND);
        let times = CallTimes {
            t0: t0(),
            due,
            start: due,
            done: due,
        };
        assert_eq!(
            after_call(&p, 3, &times, AttemptOutcome::RetryableFailure, None),
            Next::Failed {
                reason: FailReason::MaxAttempts
            }
        );
        let (calls, reason) = simulate(&policy(SECOND, HOUR, HOUR, 1), SECOND, None);
        assert_eq!((calls.len(), reason), (1, FailReason::MaxAttempts));
    }

    #[test]
    fn success_and_permanent_failure_are_final_whatever_the_budget() {
        let p = policy(SECOND, HOUR, 3 * SECOND, 1);
        let late = at(HOUR);
        let times = CallTimes {
            t0: t0(),
            due: late,
            start: late,
            done: late,
        };
        assert_eq!(
            after_call(&p, 9, &times, AttemptOutcome::Succeeded, Some(HOUR)),
            Next::Succeeded
        );
        assert_eq!(
            after_call(&p, 9, &times, AttemptOutcome::PermanentFailure, None),
            Next::Failed {
                reason: FailReason::Permanent
            }
        );
        assert_eq!(
            FailReason::Permanent.last_error("invalid endpoint"),
            "invalid endpoint"
        );
    }

    #[test]
    fn late_call_anchors_on_its_start() {
        let p = defaults();
        let due = at(MINUTE);
        let start = plus(due, 5 * MINUTE);
        let times = CallTimes {
            t0: t0(),
            due,
            start,
            done: plus(start, SECOND),
        };
        assert_eq!(
            retry_at(after_call(&p, 2, &times, AttemptOutcome::RetryableFailure, None)),
            plus(start, 2 * MINUTE)
        );
    }

    #[test]
    fn lateness_up_to_min_backoff_is_on_time() {
        let p = defaults();
        let due = at(MINUTE);
        let on_time = |start: DateTime<Utc>| CallTimes {
            t0: t0(),
            due,
            start,
            done: plus(start, SECOND),
        };
        // Exactly one minimum backoff late: still anchored on the due time.
        let times = on_time(plus(due, MINUTE));
        assert_eq!(
            retry_at(after_call(&p, 2, &times, AttemptOutcome::RetryableFailure, None)),
            plus(due, 2 * MINUTE)
        );
        // One microsecond more: anchored on the start.
        let start = plus(due, MINUTE + Duration::from_micros(1));
        let times = on_time(start);
        assert_eq!(
            retry_at(after_call(&p, 2, &times, AttemptOutcome::RetryableFailure, None)),
            plus(start, 2 * MINUTE)
        );
        // Starting early (e.g. a clock step) is on time too.
        let times = on_time(at(Duration::from_secs(30)));
        assert_eq!(
            retry_at(after_call(&p, 2, &times, AttemptOutcome::RetryableFailure, None)),
            plus(due, 2 * MINUTE)
        );
    }

    #[test]
    fn late_first_call_anchors_on_t0_because_t0_is_its_start() {
        let (calls, _) = simulate(&e2e(), SECOND, None);
        assert_eq!(calls.first().copied(), Some(t0()));
    }

    // ---- Retry-After ----

    #[test]
    fn retry_after_longer_than_backoff_postpones() {
        let p = policy(SECOND, HOUR, HOUR, 0);
        let done = at(ms(300));
        let times = CallTimes {
            t0: t0(),
            due: t0(),
            start: t0(),
            done,
        };
        let next = retry_at(after_call(
            &p,
            1,
            &times,
            AttemptOutcome::RetryableFailure,
            Some(120 * SECOND),
        ));
        assert!(next >= plus(done, 120 * SECOND));
        assert_eq!(next, plus(done, 120 * SECOND));
    }

    #[test]
    fn retry_after_not_longer_than_backoff_is_ignored() {
        let p = defaults();
        // A slow first call (delay(0) = 1m) that completed 45s after it started.
        let times = CallTimes {
            t0: t0(),
            due: t0(),
            start: t0(),
            done: at(45 * SECOND),
        };
        // done + 30s = t0 + 75s would be later than t0 + 1m, but 30s ≤ delay(0) so it is ignored.
        assert_eq!(
            retry_at(after_call(
                &p,
                1,
                &times,
                AttemptOutcome::RetryableFailure,
                Some(30 * SECOND)
            )),
            at(MINUTE)
        );
        assert_eq!(
            retry_at(after_call(
                &p,
                1,
                &times,
                AttemptOutcome::RetryableFailure,
                Some(MINUTE)
            )),
            at(MINUTE)
        );
        assert_eq!(
            retry_at(after_call(
                &p,
                1,
                &times,
                AttemptOutcome::RetryableFailure,
                Some(Duration::ZERO)
            )),
            at(MINUTE)
        );
    }

    #[test]
    fn backoff_wins_when_it_is_later_than_retry_after() {
        // A call that started and ended early: done + r is still before due + delay.
        let p = defaults();
        let due = at(HOUR);
        let start = plus(t0(), HOUR - 10 * SECOND);
        let times = CallTimes {
            t0: t0(),
            due,
            start,
            done: plus(start, SECOND),
        };
        assert_eq!(
            retry_at(after_call(
                &p,
                1,
                &times,
                AttemptOutcome::RetryableFailure,
                Some(61 * SECOND)
            )),
            plus(due, MINUTE)
        );
    }

    #[test]
    fn retry_after_beyond_the_window_fails_after_one_call() {
        let (calls, reason) = simulate(&e2e(), ms(10), Some(21_600 * SECOND));
        assert_eq!(calls.len(), 1);
        assert_eq!(reason, FailReason::WindowExceeded);
    }

    #[test]
    fn retry_after_is_capped_at_six_hours() {
        let p = defaults();
        let done = at(SECOND);
        let times = CallTimes {
            t0: t0(),
            due: t0(),
            start: t0(),
            done,
        };
        for wait in [6 * HOUR, 7 * HOUR, Duration::from_secs(u64::MAX), Duration::MAX] {
            assert_eq!(
                retry_at(after_call(
                    &p,
                    1,
                    &times,
                    AttemptOutcome::RetryableFailure,
                    Some(wait)
                )),
                plus(done, 6 * HOUR),
                "{wait:?}"
            );
        }
    }

    // ---- precheck ----

    #[test]
    fn precheck_refuses_only_what_changed() {
        let p = policy(SECOND, HOUR, 3 * SECOND, 3);
        assert_eq!(precheck(&p, 0, None, t0()), None);
        assert_eq!(precheck(&p, 2, Some(t0()), at(3 * SECOND)), None);
        assert_eq!(
            precheck(&p, 2, Some(t0()), plus(at(3 * SECOND), Duration::from_micros(1))),
            Some(FailReason::WindowExceeded)
        );
        assert_eq!(
            precheck(&p, 3, Some(t0()), at(SECOND)),
            Some(FailReason::MaxAttempts)
        );
        // The cap takes precedence, as after a call.
        assert_eq!(
            precheck(&p, 3, Some(t0()), at(HOUR)),
            Some(FailReason::MaxAttempts)
        );
        // No cap, and no window before the first call however late it is.
        let uncapped = policy(SECOND, HOUR, 3 * SECOND, 0);
        assert_eq!(precheck(&uncapped, 1_000_000, Some(t0()), t0()), None);
        assert_eq!(precheck(&uncapped, 0, None, at(1000 * HOUR)), None);
    }

    #[test]
    fn lowered_settings_stop_a_scheduled_retry() {
        // Scheduled under a 1h window, checked under 3s.
        let due = retry_at(after_call(
            &policy(SECOND, HOUR, HOUR, 0),
            3,
            &CallTimes {
                t0: t0(),
                due: at(3 * SECOND),
                start: at(3 * SECOND),
                done: at(3 * SECOND),
            },
            AttemptOutcome::RetryableFailure,
            None,
        ));
        assert_eq!(due, at(7 * SECOND));
        assert_eq!(
            precheck(&e2e(), 3, Some(t0()), due),
            Some(FailReason::WindowExceeded)
        );
    }

    #[test]
    fn huge_settings_saturate_instead_of_panicking() {
        let p = policy(Duration::MAX, Duration::MAX, Duration::MAX, 0);
        let times = CallTimes {
            t0: t0(),
            due: t0(),
            start: t0(),
            done: t0(),
        };
        assert_eq!(
            after_call(
                &p,
                u64::MAX,
                &times,
                AttemptOutcome::RetryableFailure,
                Some(Duration::MAX)
            ),
            Next::Retry {
                at: DateTime::<Utc>::MAX_UTC
            }
        );
        let short_window = policy(Duration::MAX, Duration::MAX, HOUR, 0);
        assert_eq!(
            after_call(&short_window, 1, &times, AttemptOutcome::RetryableFailure, None),
            Next::Failed {
                reason: FailReason::WindowExceeded
            }
        );
        assert_eq!(precheck(&p, 5, Some(t0()), DateTime::<Utc>::MAX_UTC), None);
    }

    #[test]
    fn sub_microsecond_settings_are_truncated() {
        let p = policy(Duration::from_nanos(1_500), HOUR, HOUR, 0);
        let times = CallTimes {
            t0: t0(),
            due: t0(),
            start: t0(),
            done: t0(),
        };
        assert_eq!(
            retry_at(after_call(&p, 1, &times, AttemptOutcome::RetryableFailure, None)),
            at(Duration::from_micros(1))
        );
    }

    #[test]
    fn fail_reason_messages() {
        assert_eq!(FailReason::Permanent.to_string(), "permanent failure");
        assert_eq!(FailReason::MaxAttempts.to_string(), "max attempts reached");
        assert_eq!(FailReason::WindowExceeded.to_string(), "retry window exceeded");
    }

    // ---- parse_retry_after ----

    /// 1994-11-06T08:49:37Z minus two minutes: the RFC 9110 example date is 120 s ahead.
    fn before_example() -> DateTime<Utc> {
        DateTime::from_timestamp(784_111_777 - 120, 0).unwrap_or_else(|| panic!("valid timestamp"))
    }

    #[test]
    fn retry_after_seconds() {
        let now = t0();
        assert_eq!(parse_retry_after("120", now), Some(120 * SECOND));
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("007", now), Some(7 * SECOND));
        assert_eq!(parse_retry_after(" 120\t", now), Some(120 * SECOND));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in [
            "-1", "+5", "abc", "", " ", "1.5", "1e3", "12 3", "0x10", "１２", "120s",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_http_dates_in_the_future() {
        let now = before_example();
        let forms = [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun Nov 6 08:49:37 1994",
            "Sun Nov 06 08:49:37 1994",
            // Go matches names case-insensitively and does not check the weekday.
            "sun, 06 NOV 1994 08:49:37 GMT",
            "Wed, 06 Nov 1994 08:49:37 GMT",
        ];
        for form in forms {
            assert_eq!(parse_retry_after(form, now), Some(120 * SECOND), "{form:?}");
        }
        // Sub-second `now` (microsecond timestamps) gives a sub-second remainder.
        let now = plus(now, ms(250));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(120 * SECOND - ms(250))
        );
    }

    #[test]
    fn retry_after_http_dates_not_in_the_future_are_ignored() {
        let example = "Sun, 06 Nov 1994 08:49:37 GMT";
        let exactly = plus(before_example(), 120 * SECOND);
        assert_eq!(parse_retry_after(example, exactly), None);
        assert_eq!(parse_retry_after(example, plus(exactly, SECOND)), None);
        assert_eq!(parse_retry_after(example, t0()), None);
    }

    #[test]
    fn rfc850_two_digit_years_follow_go() {
        let now = before_example();
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-68 08:49:37 GMT", now).map(|d| d > 70 * 365 * 24 * HOUR),
            Some(true)
        );
        assert_eq!(parse_retry_after("Thursday, 06-Nov-69 08:49:37 GMT", now), None);
    }

    #[test]
    fn malformed_http_dates_are_ignored() {
        let now = before_example();
        let bad = [
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37 gmt",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06 Nov 1994 08:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 1995 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:37 GMT",
            "Sun, 06 Nov 1994 08:49:60 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
            "Sun, 06-Nov-94 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sunday, 6-Nov-94 08:49:37 GMT",
            "Sunday, 06-Nov-94-1 08:49:37 GMT",
            "Sun Nov 123 08:49:37 1994",
            "Sun Nov  6 08:49:37 94",
            "Sun Nov  6 08:49:37 1994 GMT",
            "Nov  6 08:49:37 1994",
            "Sun, +6 Nov 1994 08:49:37 GMT",
            "2024-05-01T10:00:00Z",
        ];
        for value in bad {
            assert_eq!(parse_retry_after(value, now), None, "{value:?}");
        }
    }
}
