//! Durations in Go's `time.ParseDuration` syntax (`500ms`, `1m30s`, `1.5h`, `720h`) and Go's
//! `Duration.String()` rendering (`1m0s`, `720h0m0s`).
//!
//! Flags and environment variables must accept exactly what the Go service accepted, so the parser
//! mirrors Go's algorithm step by step, including how it computes fractions (see
//! [`parse_duration`]). Two restrictions are ours: no sign (a negative timeout or period makes no
//! sense and `+` was never documented) and no value above Go's maximum of `i64::MAX` nanoseconds
//! (about 292 years), so every accepted value is one Go could hold too.

use std::fmt;
use std::time::Duration;

/// Go's `1<<63`: the largest magnitude its parser tolerates while accumulating (the final value
/// must still fit an `i64`).
const ACCUMULATOR_LIMIT: u64 = 1 << 63;

/// Largest value a Go `time.Duration` can hold, in nanoseconds.
const MAX_NANOS: u64 = i64::MAX as u64;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Why a duration was refused. Each variant keeps the input so the message can name it.
///
/// With `thiserror` (main crate), the hand-written `Display` below becomes `#[error(...)]`
/// attributes; the `go_quote` helper would be called from a field like `quoted`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// Not of the form `<decimal><unit>...` (includes the empty string).
    Invalid { input: String },
    /// Starts with `+` or `-`; Go accepts a sign, we do not.
    SignNotAllowed { input: String },
    /// A number with no unit after it (`10`, `1s5`).
    MissingUnit { input: String },
    /// A unit outside `ns us µs μs ms s m h` (`1d`, `1S`, `1s ` with its trailing space).
    UnknownUnit { unit: String, input: String },
    /// Larger than 2562047h47m16.854775807s, Go's maximum.
    Overflow { input: String },
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Go's texts without its `time: ` package prefix, which means nothing in this program.
        match self {
            Self::Invalid { input } => write!(f, "invalid duration {}", go_quote(input)),
            Self::SignNotAllowed { input } => {
                write!(f, "invalid duration {}: a sign is not allowed", go_quote(input))
            }
            Self::MissingUnit { input } => {
                write!(f, "missing unit in duration {}", go_quote(input))
            }
            Self::UnknownUnit { unit, input } => write!(
                f,
                "unknown unit {} in duration {}",
                go_quote(unit),
                go_quote(input)
            ),
            Self::Overflow { input } => write!(
                f,
                "invalid duration {}: larger than the maximum 2562047h47m16.854775807s",
                go_quote(input)
            ),
        }
    }
}

impl std::error::Error for DurationError {}

/// Parses a Go duration: one or more `<decimal><unit>` (`1h30m`, `1.5h`, `.5s`, `1.s`), or a bare
/// `0`. Units: `ns`, `us`, `µs` (U+00B5), `μs` (U+03BC), `ms`, `s`, `m`, `h`. No sign, no
/// whitespace, no `d`.
///
/// A fraction is converted the way Go converts it, through an `f64` product truncated to whole
/// nanoseconds. That is exact for every realistic input (Go documents it as nanosecond-accurate
/// even for hours) and, more importantly, gives the same nanosecond as Go on the odd inputs where
/// float rounding shows, so both services agree on every value.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid { input: s.to_owned() };
    let overflow = || DurationError::Overflow { input: s.to_owned() };

    if s.starts_with(['+', '-']) {
        return Err(DurationError::SignNotAllowed { input: s.to_owned() });
    }
    // Go's special case: a unitless zero is the only number allowed without a unit.
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }

    let mut rest = s;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }

        let (int_part, after_int) = leading_int(rest).ok_or_else(invalid)?;
        let has_int_digits = after_int.len() != rest.len();
        rest = after_int;

        let mut fraction = Fraction::NONE;
        let mut has_frac_digits = false;
        if let Some(after_dot) = rest.strip_prefix('.') {
            let (parsed, after_frac) = leading_fraction(after_dot);
            has_frac_digits = after_frac.len() != after_dot.len();
            fraction = parsed;
            rest = after_frac;
        }
        // `.s` or `1.` followed by nothing numeric on either side of the dot.
        if !has_int_digits && !has_frac_digits {
            return Err(invalid());
        }

        // Like Go, the unit is everything up to the next number, so `1s ` yields unit `s `.
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit { input: s.to_owned() });
        }
        let (unit_text, after_unit) = rest.split_at(unit_len);
        rest = after_unit;
        let unit = unit_nanos(unit_text).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit_text.to_owned(),
            input: s.to_owned(),
        })?;

        if int_part > ACCUMULATOR_LIMIT / unit {
            return Err(overflow());
        }
        let mut value = int_part * unit;
        if fraction.digits > 0 {
            value += fraction.nanos(unit);
            if value > ACCUMULATOR_LIMIT {
                return Err(overflow());
            }
        }
        // Go adds without a check here and can wrap to a small value (`2^63ns` twice gives 0);
        // a checked add turns that into the overflow it is.
        total = total.checked_add(value).ok_or_else(overflow)?;
        if total > ACCUMULATOR_LIMIT {
            return Err(overflow());
        }
    }

    if total > MAX_NANOS {
        return Err(overflow());
    }
    Ok(Duration::from_nanos(total))
}

/// Renders like Go's `Duration.String()`: `0s`, `1ns`, `1.5µs`, `500ms`, `1.5s`, `1m30s`,
/// `1h0m0s`, `720h0m0s`. Used for defaults in `--help`, which must read as the Go service's did.
///
/// Values beyond Go's range (more than `i64::MAX` nanoseconds) are rendered with the same rules
/// instead of failing; [`parse_duration`] refuses them.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }

    let mut out = String::new();
    if nanos < NANOS_PER_SECOND {
        // Below a second Go switches to the largest sub-second unit that keeps an integer part.
        let (fraction_digits, unit) = if nanos < 1_000 {
            (0, "ns")
        } else if nanos < 1_000_000 {
            (3, "\u{b5}s")
        } else {
            (6, "ms")
        };
        push_decimal(&mut out, nanos, fraction_digits);
        out.push_str(unit);
        return out;
    }

    let whole_seconds = nanos / NANOS_PER_SECOND;
    let hours = whole_seconds / 3600;
    let minutes = whole_seconds / 60 % 60;
    // Go prints every unit below the largest non-zero one, hence `1h0m0s`.
    if hours > 0 {
        out.push_str(&format!("{hours}h{minutes}m"));
    } else if minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    push_decimal(&mut out, nanos % (60 * NANOS_PER_SECOND), 9);
    out.push('s');
    out
}

/// Appends `value / 10^fraction_digits` with the fraction's trailing zeros (and a bare dot)
/// removed, as Go's `fmtFrac` does.
fn push_decimal(out: &mut String, value: u128, fraction_digits: u32) {
    let scale = 10u128.pow(fraction_digits);
    out.push_str(&(value / scale).to_string());
    let fraction = value % scale;
    if fraction != 0 {
        let padded = format!("{fraction:0width$}", width = fraction_digits as usize);
        out.push('.');
        out.push_str(padded.trim_end_matches('0'));
    }
}

fn unit_nanos(unit: &str) -> Option<u64> {
    match unit {
        "ns" => Some(1),
        // ASCII `us`, MICRO SIGN (U+00B5) and GREEK SMALL LETTER MU (U+03BC), as Go accepts.
        "us" | "\u{b5}s" | "\u{3bc}s" => Some(1_000),
        "ms" => Some(1_000_000),
        "s" => Some(1_000_000_000),
        "m" => Some(60_000_000_000),
        "h" => Some(3_600_000_000_000),
        _ => None,
    }
}

/// Go's `leadingInt`: the leading `[0-9]*` as a number, `None` once it exceeds `1<<63`.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let mut x: u64 = 0;
    for b in s.bytes().take(digits) {
        if x > ACCUMULATOR_LIMIT / 10 {
            return None;
        }
        x = x * 10 + u64::from(b - b'0');
        if x > ACCUMULATOR_LIMIT {
            return None;
        }
    }
    Some((x, &s[digits..]))
}

/// The digits after a decimal point, kept as Go keeps them: an integer and its power-of-ten
/// scale as an `f64`.
struct Fraction {
    digits: u64,
    scale: f64,
}

impl Fraction {
    const NONE: Fraction = Fraction {
        digits: 0,
        scale: 1.0,
    };

    /// Go's `uint64(float64(f) * (float64(unit) / scale))`: `as` truncates toward zero like Go's
    /// conversion, and the operands are at most 3.6e12 so nothing saturates.
    fn nanos(&self, unit: u64) -> u64 {
        (self.digits as f64 * (unit as f64 / self.scale)) as u64
    }
}

/// Go's `leadingFraction`: consumes every leading digit but stops accumulating once another one
/// would overflow, so excess precision is silently dropped rather than refused.
fn leading_fraction(s: &str) -> (Fraction, &str) {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let mut fraction = Fraction::NONE;
    for b in s.bytes().take(digits) {
        if fraction.digits > (ACCUMULATOR_LIMIT - 1) / 10 {
            break;
        }
        let next = fraction.digits * 10 + u64::from(b - b'0');
        if next > ACCUMULATOR_LIMIT {
            break;
        }
        fraction.digits = next;
        fraction.scale *= 10.0;
    }
    (fraction, &s[digits..])
}

/// Go's `time.quote`: ASCII printable characters as they are (with `"` and `\` escaped), every
/// byte of anything else as `\xNN`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c.is_ascii() && c >= ' ' {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(n: u64) -> Result<Duration, DurationError> {
        Ok(Duration::from_nanos(n))
    }

    fn secs(n: u64) -> Result<Duration, DurationError> {
        Ok(Duration::from_secs(n))
    }

    #[test]
    fn parses_the_documented_examples() {
        assert_eq!(parse_duration("500ms"), ns(500_000_000));
        assert_eq!(parse_duration("1s"), secs(1));
        assert_eq!(parse_duration("1m30s"), secs(90));
        assert_eq!(parse_duration("1.5h"), secs(5400));
        assert_eq!(parse_duration("720h"), secs(720 * 3600));
        assert_eq!(parse_duration("30s"), secs(30));
    }

    #[test]
    fn bare_zero_and_zero_with_units() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0h0m0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0.0s"), Ok(Duration::ZERO));
        // Only the single character `0` is special.
        assert!(matches!(
            parse_duration("00"),
            Err(DurationError::MissingUnit { .. })
        ));
        assert!(matches!(
            parse_duration("0.0"),
            Err(DurationError::MissingUnit { .. })
        ));
    }

    #[test]
    fn every_unit() {
        assert_eq!(parse_duration("7ns"), ns(7));
        assert_eq!(parse_duration("7us"), ns(7_000));
        assert_eq!(parse_duration("7\u{b5}s"), ns(7_000));
        assert_eq!(parse_duration("7\u{3bc}s"), ns(7_000));
        assert_eq!(parse_duration("7ms"), ns(7_000_000));
        assert_eq!(parse_duration("7s"), secs(7));
        assert_eq!(parse_duration("7m"), secs(420));
        assert_eq!(parse_duration("7h"), secs(25_200));
    }

    #[test]
    fn fractions_like_go() {
        assert_eq!(parse_duration(".5s"), ns(500_000_000));
        assert_eq!(parse_duration("1.s"), secs(1));
        assert_eq!(parse_duration("1.0s"), secs(1));
        assert_eq!(parse_duration("1.000000001s"), ns(1_000_000_001));
        assert_eq!(parse_duration("1.1h"), secs(3960));
        assert_eq!(parse_duration("0.000000001h"), ns(3_600));
        assert_eq!(parse_duration("1.23456789h"), ns(4_444_444_404_000));
        assert_eq!(parse_duration("2.5m"), secs(150));
        assert_eq!(parse_duration("1.5us"), ns(1_500));
        assert_eq!(parse_duration("0.3ms"), ns(300_000));
        // Below a nanosecond truncates toward zero, as Go does.
        assert_eq!(parse_duration("0.9ns"), ns(0));
        assert_eq!(parse_duration("1.0000000009s"), ns(1_000_000_000));
        // Digits past what fits are read and ignored (Go's leadingFraction), not refused.
        assert_eq!(
            parse_duration("1.00000000000000000000000000000000000001s"),
            secs(1)
        );
    }

    #[test]
    fn several_groups_in_any_order() {
        assert_eq!(parse_duration("1h30m"), secs(5400));
        assert_eq!(parse_duration("1h1h"), secs(7200));
        assert_eq!(parse_duration("30s1h"), secs(3630));
        assert_eq!(parse_duration("1h2m3s4ms5us6ns"), ns(3_723_004_005_006));
        assert_eq!(parse_duration("1.5m1.5s"), ns(91_500_000_000));
    }

    #[test]
    fn refuses_signs() {
        for s in ["-1s", "+1s", "-0", "+0", "-", "+"] {
            assert_eq!(
                parse_duration(s),
                Err(DurationError::SignNotAllowed { input: s.to_owned() }),
                "{s}"
            );
        }
    }

    #[test]
    fn refuses_malformed_input() {
        for s in ["", ".", ".s", "s", "1.2.3s", "a1s", "1s.", "1s.s"] {
            let result = parse_duration(s);
            assert!(
                matches!(
                    result,
                    Err(DurationError::Invalid { .. } | DurationError::MissingUnit { .. })
                ),
                "{s}: {result:?}"
            );
        }
        assert_eq!(
            parse_duration(""),
            Err(DurationError::Invalid { input: String::new() })
        );
        assert_eq!(
            parse_duration("1s."),
            Err(DurationError::Invalid {
                input: "1s.".to_owned()
            })
        );
        assert_eq!(
            parse_duration("10"),
            Err(DurationError::MissingUnit {
                input: "10".to_owned()
            })
        );
        assert_eq!(
            parse_duration("1s5"),
            Err(DurationError::MissingUnit {
                input: "1s5".to_owned()
            })
        );
    }

    #[test]
    fn refuses_whitespace() {
        for s in [" 1s", "\t1s", "1 s"] {
            assert!(parse_duration(s).is_err(), "{s:?}");
        }
        assert_eq!(
            parse_duration("1s "),
            Err(DurationError::UnknownUnit {
                unit: "s ".to_owned(),
                input: "1s ".to_owned()
            })
        );
        assert_eq!(
            parse_duration("1 s"),
            Err(DurationError::UnknownUnit {
                unit: " s".to_owned(),
                input: "1 s".to_owned()
            })
        );
    }

    #[test]
    fn refuses_unknown_units() {
        for (s, unit) in [
            ("1d", "d"),
            ("1S", "S"),
            ("1H", "H"),
            ("1sec", "sec"),
            ("1Ms", "Ms"),
            ("1\u{b5}", "\u{b5}"),
            ("2w", "w"),
        ] {
            assert_eq!(
                parse_duration(s),
                Err(DurationError::UnknownUnit {
                    unit: unit.to_owned(),
                    input: s.to_owned()
                }),
                "{s}"
            );
        }
    }

    #[test]
    fn maximum_and_overflow() {
        assert_eq!(parse_duration("9223372036854775807ns"), ns(i64::MAX as u64));
        assert_eq!(parse_duration("2562047h47m16.854775807s"), ns(i64::MAX as u64));
        for s in [
            "9223372036854775808ns",
            "2562047h47m16.854775808s",
            "2562048h",
            "9223372036854775808ns9223372036854775808ns",
            "5124095576030431h",
            "99999999999999999999s",
            "1.5h2562047h",
        ] {
            let result = parse_duration(s);
            assert!(
                matches!(
                    result,
                    Err(DurationError::Overflow { .. } | DurationError::Invalid { .. })
                ),
                "{s}: {result:?}"
            );
        }
        // A leading integer too long even for Go's accumulator is Go's plain "invalid duration".
        assert_eq!(
            parse_duration("99999999999999999999s"),
            Err(DurationError::Invalid {
                input: "99999999999999999999s".to_owned()
            })
        );
    }

    #[test]
    fn error_messages_follow_go() {
        let msg = |s: &str| match parse_duration(s) {
            Ok(d) => format!("unexpectedly parsed as {d:?}"),
            Err(e) => e.to_string(),
        };
        assert_eq!(msg(""), r#"invalid duration """#);
        assert_eq!(msg("1d"), r#"unknown unit "d" in duration "1d""#);
        assert_eq!(msg("10"), r#"missing unit in duration "10""#);
        assert_eq!(msg("-1s"), r#"invalid duration "-1s": a sign is not allowed"#);
        assert_eq!(
            msg("3000000h"),
            r#"invalid duration "3000000h": larger than the maximum 2562047h47m16.854775807s"#
        );
        // Go's quoting: non-ASCII and control bytes as \x escapes, quotes escaped.
        assert_eq!(
            msg("1\u{e9}\n\""),
            r#"unknown unit "\xc3\xa9\x0a\"" in duration "1\xc3\xa9\x0a\"""#
        );
    }

    #[test]
    fn formats_like_go() {
        let cases: [(Duration, &str); 17] = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(999), "999ns"),
            (Duration::from_nanos(1_000), "1\u{b5}s"),
            (Duration::from_nanos(1_500), "1.5\u{b5}s"),
            (Duration::from_nanos(1_000_001), "1.000001ms"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_nanos(999_999_999), "999.999999ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(5400), "1h30m0s"),
            (Duration::from_secs(720 * 3600), "720h0m0s"),
            (Duration::from_nanos(3_600_000_000_001), "1h0m0.000000001s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(d), want, "{d:?}");
        }
        assert_eq!(
            format_duration(Duration::from_nanos(i64::MAX as u64)),
            "2562047h47m16.854775807s"
        );
        // Beyond Go's range: same rules, no failure.
        assert_eq!(
            format_duration(Duration::from_secs(u64::MAX)),
            "5124095576030431h0m15s"
        );
    }

    #[test]
    fn format_then_parse_round_trips() -> Result<(), DurationError> {
        let mut samples = vec![
            0u64,
            1,
            999,
            1_000,
            1_001,
            999_999,
            1_000_000,
            123_456_789,
            1_000_000_000,
            59_999_999_999,
            60_000_000_000,
            3_599_999_999_999,
            3_600_000_000_000,
            i64::MAX as u64,
        ];
        // A deterministic spread over the whole range without pulling in an RNG.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            samples.push(x >> (1 + x % 60));
        }
        for n in samples {
            let d = Duration::from_nanos(n);
            assert_eq!(parse_duration(&format_duration(d))?, d, "{n}");
        }
        Ok(())
    }
}
