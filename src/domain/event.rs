//! Kafka record → normalised event → the exact outbound body (contract §4.2–§4.5), plus the
//! event and delivery identities (§4.3) and event-type matching (§4.4).
//!
//! The body is built here, once per record, and then stored and re-sent byte for byte by every
//! attempt, so this module decides what receivers see and what they sign over. Two things shape
//! it:
//!
//! * **Compatibility with the Go reference.** The envelope's keys are decoded with the semantics
//!   of Go's `encoding/json` (case-insensitive keys, last duplicate wins, `null` leaves a string
//!   field untouched, a wrongly typed member rejects the record) and its strings are re-encoded
//!   the way Go's `json.Marshal` does (HTML-safe escapes, Go ≥ 1.22 spelling of `\b` and `\f`).
//! * **Not re-encoding what we do not own.** The reference decodes `payload` into Go values and
//!   encodes it again (sorted keys, numbers through `float64`); we copy the payload's source bytes
//!   instead, using the byte spans kept by [`parse_first`], and forward `date` as received.
//!
//! Decoding is on the consumer's hot path: apart from the parse tree itself, a record costs one
//! allocation for the normalised type and one for the body; decoded strings are moved out of the
//! tree rather than copied.

use std::fmt;

use uuid::Uuid;

// Both modules sit side by side in `domain/`, so `super::json` resolves in the main crate too.
use super::json::{parse_first, rest_is_whitespace, Kind};

/// One decoded record, ready to be matched against configs and sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `""` when the record has none; callers send the idempotency header only when non-empty.
    pub idempotency_key: String,
    /// Normalised (§4.4): what configs' `event_types` are matched against.
    pub event_type: String,
    /// The exact outbound body (§4.5); valid UTF-8 JSON.
    pub body: Vec<u8>,
}

/// Why a record is skipped (§4.2). Skips are final: the record is logged, counted and its offset
/// becomes committable.
///
/// `Display` is the reason logged with the record's coordinates. It is hand-written to keep this
/// module free of dependencies; in the main crate a `thiserror` derive (`#[error("invalid {0}")]`
/// etc.) would fit just as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Absent or zero-length value (a tombstone).
    Empty,
    /// Not UTF-8, a syntax error, or more than one JSON value.
    InvalidJson,
    NotObject,
    /// `type` absent, `null` or `""`.
    MissingType,
    /// `date` is a string but not RFC 3339 as §4.2 spells it.
    InvalidDate,
    /// A string-valued envelope key holds another JSON type; carries the key's canonical name.
    InvalidKey(&'static str),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty record"),
            Self::InvalidJson => f.write_str("invalid JSON"),
            Self::NotObject => f.write_str("not a JSON object"),
            Self::MissingType => f.write_str("missing type"),
            Self::InvalidDate => f.write_str("invalid date"),
            Self::InvalidKey(key) => write!(f, "invalid {key}"),
        }
    }
}

impl std::error::Error for SkipReason {}

/// `date` when the record has none: Go's zero `time.Time`, as the reference renders it.
const ZERO_DATE: &str = "0001-01-01T00:00:00Z";

/// Name-based UUID namespace of delivery ids (§4.3).
const DELIVERY_NAMESPACE: Uuid = Uuid::from_u128(0x9261fc23_d017_5136_8151_88dd792780bb);

/// The envelope keys that hold strings, in body order; indexes into [`Envelope::strings`].
const STRING_KEYS: [&str; 5] = ["idempotency_key", "date", "app", "version", "type"];

enum Field {
    /// `name` is the canonical spelling, reported by [`SkipReason::InvalidKey`].
    String {
        index: usize,
        name: &'static str,
    },
    Payload,
}

/// Maps a record key to its envelope field the way Go matches JSON keys to struct fields: an
/// exact match, else a Unicode simple-fold match. No two envelope names fold alike, so exact
/// matches need no precedence of their own; every spelling of a name feeds the same field.
fn field_of(key: &str) -> Option<Field> {
    if folds_to(key, "payload") {
        return Some(Field::Payload);
    }
    STRING_KEYS
        .iter()
        .enumerate()
        .find(|(_, name)| folds_to(key, name))
        .map(|(index, &name)| Field::String { index, name })
}

/// Whether `key` simple-folds to `name`, which must be ASCII lower case.
///
/// Go folds with `unicode.SimpleFold` orbits, and the only non-ASCII runes whose orbit holds an
/// ASCII letter are KELVIN SIGN (k) and LONG S (s); both occur in envelope names
/// (`idempotency_key`, `version`), so they are accepted like Go does.
fn folds_to(key: &str, name: &str) -> bool {
    let mut chars = key.chars();
    for expected in name.bytes() {
        let matched = match chars.next() {
            Some('\u{212A}') => expected == b'k',
            Some('\u{17F}') => expected == b's',
            Some(c) => c.is_ascii() && c.to_ascii_lowercase() == char::from(expected),
            None => false,
        };
        if !matched {
            return false;
        }
    }
    chars.next().is_none()
}

#[derive(Default)]
struct Envelope {
    strings: [Option<String>; 5],
    /// Byte span of the last `payload` member's value in the record.
    payload: Option<(usize, usize)>,
}

/// Decodes a Kafka record value into an [`Event`] (§4.2), or says why the record is skipped.
///
/// Checks run in this order: emptiness, UTF-8 and syntax of the whole value (trailing data
/// included), object-ness, then the envelope members in document order (the first wrongly typed
/// member or invalid date wins, even if a later duplicate would be fine, because Go's decoder
/// also fails the whole record), and finally the presence of `type`.
pub fn decode_record(value: Option<&[u8]>) -> Result<Event, SkipReason> {
    let value = match value {
        Some(v) if !v.is_empty() => v,
        _ => return Err(SkipReason::Empty),
    };
    // The parser would turn invalid UTF-8 inside strings into U+FFFD, as Go does; the contract
    // rejects such records instead, which also guarantees the forwarded payload is UTF-8.
    if std::str::from_utf8(value).is_err() {
        return Err(SkipReason::InvalidJson);
    }
    let (mut root, end) = parse_first(value).map_err(|_| SkipReason::InvalidJson)?;
    if !rest_is_whitespace(value, end) {
        return Err(SkipReason::InvalidJson);
    }
    let Kind::Object(members) = std::mem::take(&mut root.kind) else {
        return Err(SkipReason::NotObject);
    };

    let mut envelope = Envelope::default();
    for (key, mut node) in members {
        match field_of(&key) {
            None => {}
            // Go sets an `any`/map field to nil on `null`, so a later `null` payload does win.
            Some(Field::Payload) => envelope.payload = Some((node.start, node.end)),
            Some(Field::String { index, name }) => match &mut node.kind {
                // Go leaves a string field untouched on `null`: an earlier value survives.
                Kind::Null => {}
                Kind::String(text) => {
                    let source = value.get(node.start..node.end).unwrap_or_default();
                    if name == "date" && !is_rfc3339(string_source(source)) {
                        return Err(SkipReason::InvalidDate);
                    }
                    if let Some(slot) = envelope.strings.get_mut(index) {
                        *slot = Some(std::mem::take(text));
                    }
                }
                _ => return Err(SkipReason::InvalidKey(name)),
            },
        }
    }

    let [idempotency_key, date, app, version, event_type] = envelope.strings;
    let event_type = match event_type {
        Some(t) if !t.is_empty() => t,
        _ => return Err(SkipReason::MissingType),
    };
    let event_type = normalize_type(app.as_deref().unwrap_or(""), &event_type);
    let idempotency_key = idempotency_key.unwrap_or_default();
    let payload = match envelope.payload {
        Some((start, stop)) => value.get(start..stop).unwrap_or(b"null"),
        None => b"null",
    };
    let body = build_body(
        &[
            &idempotency_key,
            date.as_deref().unwrap_or(ZERO_DATE),
            app.as_deref().unwrap_or(""),
            version.as_deref().unwrap_or(""),
            &event_type,
        ],
        payload,
    );
    Ok(Event {
        idempotency_key,
        event_type,
        body,
    })
}

/// Writes `{"idempotency_key":S,"date":S,"app":S,"version":S,"type":S,"payload":P}`.
fn build_body(strings: &[&str; 5], payload: &[u8]) -> Vec<u8> {
    // Keys and punctuation take 70 bytes; a few spare bytes absorb typical escaping so the
    // buffer is allocated once.
    let capacity = 96 + payload.len() + strings.iter().map(|s| s.len()).sum::<usize>();
    let mut body = Vec::with_capacity(capacity);
    let mut separator = b'{';
    for (name, text) in STRING_KEYS.iter().zip(strings) {
        body.push(separator);
        separator = b',';
        body.push(b'"');
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(b"\":");
        push_json_string(&mut body, text);
    }
    body.extend_from_slice(b",\"payload\":");
    body.extend_from_slice(payload);
    body.push(b'}');
    body
}

/// Appends `text` as a JSON string exactly as Go (≥ 1.22) `json.Marshal` writes it: `"` and `\`
/// backslash-escaped; `\b \f \n \r \t` in short form (Go before 1.22 wrote `\u0008` and
/// `\u000c`); other control characters, `<`, `>` and `&` as `\u00xx` with lower-case hex; U+2028
/// and U+2029 as `\u2028` `\u2029`; everything else, DEL and non-ASCII included, verbatim.
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    out.push(b'"');
    // Bytes that need no escaping are copied in runs.
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: [u8; 6];
        let replacement: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0C => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1F | b'<' | b'>' | b'&' => {
                escaped = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0x0F)],
                ];
                &escaped
            }
            // U+2028 and U+2029 are E2 80 A8 and E2 80 A9; the continuation bytes that follow
            // never need escaping themselves, so skipping past them keeps the run logic simple.
            0xE2 => match bytes.get(i + 1..i + 3) {
                Some([0x80, 0xA8]) => b"\\u2028",
                Some([0x80, 0xA9]) => b"\\u2029",
                _ => continue,
            },
            _ => continue,
        };
        out.extend_from_slice(bytes.get(run..i).unwrap_or_default());
        out.extend_from_slice(replacement);
        run = if b == 0xE2 { i + 3 } else { i + 1 };
    }
    out.extend_from_slice(bytes.get(run..).unwrap_or_default());
    out.push(b'"');
}

/// The bytes between a string value's quotes, escapes left as written.
fn string_source(raw: &[u8]) -> &[u8] {
    raw.get(1..raw.len().saturating_sub(1)).unwrap_or_default()
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` with calendar-valid fields, i.e. what Go's strict
/// RFC 3339 parser accepts.
///
/// It is applied to the string's source bytes, not its decoded text, because Go's
/// `time.Time.UnmarshalJSON` does the same: a date spelt with JSON escapes is invalid there too.
/// Go falls back to its lenient layout parser when the strict one fails (accepting e.g. a
/// one-digit hour or a comma before the fraction); the contract does not, so neither do we.
fn is_rfc3339(s: &[u8]) -> bool {
    let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1, b'T', h0, h1, b':', i0, i1, b':', s0, s1, rest @ ..] = s
    else {
        return false;
    };
    let fields = (
        decimal(&[*y0, *y1, *y2, *y3]),
        decimal(&[*m0, *m1]),
        decimal(&[*d0, *d1]),
        decimal(&[*h0, *h1]),
        decimal(&[*i0, *i1]),
        decimal(&[*s0, *s1]),
    );
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = fields else {
        return false;
    };
    if !((1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour <= 23
        && minute <= 59
        && second <= 59)
    {
        return false;
    }
    let zone = match rest {
        [b'.', fraction @ ..] => {
            let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return false;
            }
            fraction.get(digits..).unwrap_or_default()
        }
        _ => rest,
    };
    match zone {
        [b'Z'] => true,
        [b'+' | b'-', h0, h1, b':', m0, m1] => {
            decimal(&[*h0, *h1]).is_some_and(|h| h <= 23) && decimal(&[*m0, *m1]).is_some_and(|m| m <= 59)
        }
        _ => false,
    }
}

/// Parses ASCII digits only (no sign, no spaces).
fn decimal(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The normalised event type (§4.4): `lower(app) + "." + lower(type)`, or `lower(type)` when
/// `app` is empty. See [`to_lower`] for what "lower" means.
pub fn normalize_type(app: &str, event_type: &str) -> String {
    let mut out = String::with_capacity(app.len() + 1 + event_type.len());
    if !app.is_empty() {
        push_lower(&mut out, app);
        out.push('.');
    }
    push_lower(&mut out, event_type);
    out
}

/// Per-character Unicode lower case, as Go's `strings.ToLower` (the contract's "lower", used for
/// event types here and for configs' `event_types`).
///
/// Unlike `str::to_lowercase` it has no context rule for a word-final capital sigma (`Σ` is
/// always `σ`), and it maps `İ` (U+0130) to a plain `i` rather than `i` + U+0307. Configs and
/// events must be lowered by the same function or such types would never match.
pub fn to_lower(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_lower(&mut out, s);
    out
}

fn push_lower(out: &mut String, s: &str) {
    if s.is_ascii() {
        let start = out.len();
        out.push_str(s);
        if let Some(tail) = out.get_mut(start..) {
            tail.make_ascii_lowercase();
        }
    } else {
        // `char::to_lowercase` is the full mapping, which differs from the simple (Go) one only
        // for U+0130, whose simple lower case is the first char of the full one.
        out.extend(s.chars().map(|c| c.to_lowercase().next().unwrap_or(c)));
    }
}

/// Whether a config's event-type element selects `event_type` (§4.4): equality, `*` for
/// everything, or a `<prefix>.*` element for every type starting with `<prefix>.`.
///
/// Both sides are expected to be lower-cased already; the comparison itself is exact.
pub fn matches(pattern: &str, event_type: &str) -> bool {
    if pattern == "*" || pattern == event_type {
        return true;
    }
    match pattern.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('.') => event_type.starts_with(prefix),
        _ => false,
    }
}

/// The event id (§4.3): the `_watermill_message_uuid` header when it is present, non-empty and
/// UTF-8, else the record's coordinates `<topic>/<partition>/<offset>`.
pub fn event_id(header_uuid: Option<&[u8]>, topic: &str, partition: i32, offset: i64) -> String {
    match header_uuid
        .filter(|h| !h.is_empty())
        .and_then(|h| std::str::from_utf8(h).ok())
    {
        Some(id) => id.to_owned(),
        None => format!("{topic}/{partition}/{offset}"),
    }
}

/// The delivery id (§4.3): UUIDv5 of `<event_id>/<config_id>`, lower-case hyphenated.
///
/// Deterministic so that a re-consumed record maps onto the same delivery row and the same
/// `formance-webhook-id`, which is what receivers deduplicate on.
pub fn delivery_id(event_id: &str, config_id: &str) -> String {
    let mut name = String::with_capacity(event_id.len() + 1 + config_id.len());
    name.push_str(event_id);
    name.push('/');
    name.push_str(config_id);
    Uuid::new_v5(&DELIVERY_NAMESPACE, name.as_bytes())
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(record: &str) -> Event {
        decode_record(Some(record.as_bytes())).unwrap_or_else(|reason| panic!("{record:?} skipped: {reason}"))
    }

    fn body(record: &str) -> String {
        let event = decode(record);
        String::from_utf8(event.body).unwrap_or_else(|e| panic!("{record:?}: body is not UTF-8: {e}"))
    }

    fn skip(record: &[u8]) -> Result<Event, SkipReason> {
        decode_record(Some(record))
    }

    fn quoted(text: &str) -> String {
        let mut out = Vec::new();
        push_json_string(&mut out, text);
        String::from_utf8(out).unwrap_or_else(|e| panic!("{text:?}: not UTF-8: {e}"))
    }

    /// A body with every string key empty except `type`, and the given date and payload.
    fn envelope(date: &str, event_type: &str, payload: &str) -> String {
        format!(
            r#"{{"idempotency_key":"","date":"{date}","app":"","version":"","type":"{event_type}","payload":{payload}}}"#
        )
    }

    // ---- §9.2 vectors ----

    #[test]
    fn reference_delivery_vector() {
        let event = decode(
            r#"{"app":"ledger","version":"v2","type":"COMMITTED_TRANSACTIONS","date":"2024-05-01T10:00:00Z","ledger":"default","payload":{"b":1,"a":2}}"#,
        );
        assert_eq!(event.event_type, "ledger.committed_transactions");
        assert_eq!(event.idempotency_key, "");
        assert_eq!(
            String::from_utf8_lossy(&event.body),
            r#"{"idempotency_key":"","date":"2024-05-01T10:00:00Z","app":"ledger","version":"v2","type":"ledger.committed_transactions","payload":{"b":1,"a":2}}"#
        );
    }

    #[test]
    fn minimal_record_gets_defaults() {
        assert_eq!(
            body(r#"{"type":"foo"}"#),
            r#"{"idempotency_key":"","date":"0001-01-01T00:00:00Z","app":"","version":"","type":"foo","payload":null}"#
        );
    }

    #[test]
    fn payload_is_forwarded_byte_for_byte() {
        let payloads = [
            r#"{"n":12345678901234567890,"x":1.50}"#,
            r#"{ "a" : [1, 2] }"#,
            r#"{"z":1,"a":{"y":[],"b":{}},"e":-0.0e+10}"#,
            r#"{"s":"\u00e9\/\"<&>\u2028"}"#,
            r#""just a string""#,
            "[1,\n\t2]",
            "12345678901234567890123",
            "true",
            "null",
        ];
        for payload in payloads {
            let record = format!(r#"{{"type":"t","payload":{payload}}}"#);
            assert_eq!(body(&record), envelope(ZERO_DATE, "t", payload), "{payload}");
        }
        // Whitespace around the payload value is not part of it.
        assert_eq!(
            body("{\"type\":\"t\",\"payload\" :\n { \"a\" : 1 } \n}"),
            envelope(ZERO_DATE, "t", r#"{ "a" : 1 }"#)
        );
    }

    #[test]
    fn payload_with_deep_nesting_is_forwarded() {
        let depth = 5_000;
        let payload = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let record = format!(r#"{{"type":"t","payload":{payload}}}"#);
        assert_eq!(body(&record), envelope(ZERO_DATE, "t", &payload));
    }

    #[test]
    fn idempotency_key_is_in_event_and_body() {
        let event = decode(r#"{"idempotency_key":"abc","type":"t"}"#);
        assert_eq!(event.idempotency_key, "abc");
        assert_eq!(
            String::from_utf8_lossy(&event.body),
            r#"{"idempotency_key":"abc","date":"0001-01-01T00:00:00Z","app":"","version":"","type":"t","payload":null}"#
        );
    }

    #[test]
    fn keys_match_case_insensitively_and_app_keeps_its_case() {
        let event = decode(
            r#"{"APP":"Ledger","Type":"X","VeRsIoN":"V2","Idempotency_Key":"K","DATE":"2024-05-01T10:00:00Z","PayLoad":[1]}"#,
        );
        assert_eq!(event.event_type, "ledger.x");
        assert_eq!(event.idempotency_key, "K");
        assert_eq!(
            String::from_utf8_lossy(&event.body),
            r#"{"idempotency_key":"K","date":"2024-05-01T10:00:00Z","app":"Ledger","version":"V2","type":"ledger.x","payload":[1]}"#
        );
    }

    #[test]
    fn keys_fold_like_go() {
        // KELVIN SIGN and LONG S simple-fold to ASCII k and s in Go.
        let event = decode("{\"type\":\"t\",\"idempotency_\u{212A}ey\":\"k\",\"ver\u{17F}ion\":\"v\"}");
        assert_eq!(event.idempotency_key, "k");
        assert!(String::from_utf8_lossy(&event.body).contains(r#""version":"v""#));
        // Other look-alikes do not match: dotted capital I has no simple fold to `i`.
        let event = decode("{\"type\":\"t\",\"\u{130}dempotency_key\":\"k\"}");
        assert_eq!(event.idempotency_key, "");
    }

    #[test]
    fn unknown_and_near_miss_keys_are_ignored() {
        assert_eq!(
            body(
                r#"{"types":"a","typ":"b","type ":"c","ledger":{"x":1},"payloads":2,"type":"t","extra":[1,{}]}"#
            ),
            envelope(ZERO_DATE, "t", "null")
        );
        // Unknown keys may hold any type, including ones that would be invalid for known keys.
        assert_eq!(decode(r#"{"type":"t","application":5}"#).event_type, "t");
    }

    #[test]
    fn last_duplicate_wins_whatever_its_spelling() {
        assert_eq!(decode(r#"{"type":"a","TYPE":"b"}"#).event_type, "b");
        assert_eq!(decode(r#"{"TYPE":"b","type":"a"}"#).event_type, "a");
        assert_eq!(
            decode(r#"{"type":"t","app":"x","App":"y","aPP":"z"}"#).event_type,
            "z.t"
        );
        assert_eq!(
            body(r#"{"type":"t","payload":1,"Payload":{"a":2}}"#),
            envelope(ZERO_DATE, "t", r#"{"a":2}"#)
        );
    }

    #[test]
    fn null_leaves_strings_unchanged_but_sets_payload() {
        assert_eq!(decode(r#"{"type":"a","type":null}"#).event_type, "a");
        assert_eq!(decode(r#"{"type":"t","app":"x","app":null}"#).event_type, "x.t");
        assert_eq!(
            decode(r#"{"idempotency_key":"k","idempotency_key":null,"type":"t"}"#).idempotency_key,
            "k"
        );
        assert_eq!(
            body(r#"{"type":"t","payload":{"a":1},"payload":null}"#),
            envelope(ZERO_DATE, "t", "null")
        );
        assert_eq!(
            body(r#"{"type":"t","payload":null,"payload":{"a":1}}"#),
            envelope(ZERO_DATE, "t", r#"{"a":1}"#)
        );
        assert_eq!(
            body(r#"{"type":"t","date":null,"app":null,"version":null,"idempotency_key":null}"#),
            envelope(ZERO_DATE, "t", "null")
        );
    }

    #[test]
    fn decoded_strings_are_reencoded() {
        // JSON escapes in the record are decoded, then written the Go way.
        assert_eq!(
            body(r#"{"type":"t","app":"a\u003cb\u003e\u0026\u2028","version":"\/\u0041\t"}"#),
            r#"{"idempotency_key":"","date":"0001-01-01T00:00:00Z","app":"a\u003cb\u003e\u0026\u2028","version":"/A\t","type":"a\u003cb\u003e\u0026\u2028.t","payload":null}"#
        );
        assert_eq!(
            body(r#"{"type":"t","idempotency_key":"a<b>&\u2028"}"#),
            r#"{"idempotency_key":"a\u003cb\u003e\u0026\u2028","date":"0001-01-01T00:00:00Z","app":"","version":"","type":"t","payload":null}"#
        );
        // Non-ASCII text is kept as UTF-8, even when the record escaped it.
        assert_eq!(decode(r#"{"type":"\u00c9t\u00e9"}"#).event_type, "été");
        // A lone surrogate decodes to U+FFFD, as in Go.
        assert_eq!(decode(r#"{"type":"a\ud800b"}"#).event_type, "a\u{FFFD}b");
    }

    #[test]
    fn json_strings_are_escaped_like_go() {
        let cases = [
            ("", r#""""#),
            ("plain text", r#""plain text""#),
            ("q\"b\\s/", r#""q\"b\\s/""#),
            ("\u{8}\u{c}\n\r\t", r#""\b\f\n\r\t""#),
            ("\0\u{1}\u{b}\u{1b}\u{1f}", r#""\u0000\u0001\u000b\u001b\u001f""#),
            ("a<b>&c", r#""a\u003cb\u003e\u0026c""#),
            ("\u{2028}\u{2029}", r#""\u2028\u2029""#),
            ("x\u{2028}y\u{2029}z", r#""x\u2028y\u2029z""#),
            // Other E2-led characters and DEL stay verbatim.
            (
                "\u{2027}\u{202A}\u{20AC}\u{7f}",
                "\"\u{2027}\u{202A}\u{20AC}\u{7f}\"",
            ),
            ("é中😀\u{FFFD}\u{85}\u{a0}", "\"é中😀\u{FFFD}\u{85}\u{a0}\""),
        ];
        for (input, expected) in cases {
            assert_eq!(quoted(input), expected, "{input:?}");
        }
    }

    #[test]
    fn escaped_strings_round_trip_through_the_parser() {
        let input = "\"\\/\u{0}\u{8}\u{c}\n\r\t\u{1f}<>&\u{2028}\u{2029}é😀";
        let encoded = quoted(input);
        let (mut node, end) = parse_first(encoded.as_bytes()).unwrap_or_else(|e| panic!("{encoded}: {e}"));
        assert_eq!(end, encoded.len());
        assert_eq!(std::mem::take(&mut node.kind), Kind::String(input.to_owned()));
    }

    // ---- dates ----

    #[test]
    fn valid_dates_are_forwarded_as_received() {
        let dates = [
            "2024-05-01T10:00:00Z",
            "2024-05-01T10:00:00.1Z",
            "2024-05-01T10:00:00.123456789123Z",
            "2024-05-01T10:00:00+05:30",
            "2024-05-01T10:00:00.5-23:59",
            "2024-05-01T10:00:00+00:00",
            "2024-02-29T23:59:59Z",
            "2000-02-29T00:00:00Z",
            "2023-12-31T00:00:00Z",
            "2023-04-30T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
        ];
        for date in dates {
            let record = format!(r#"{{"type":"t","date":"{date}"}}"#);
            assert_eq!(body(&record), envelope(date, "t", "null"), "{date}");
        }
    }

    #[test]
    fn invalid_dates_skip_the_record() {
        let dates = [
            "",
            "2024-13-01T00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2024-01-00T00:00:00Z",
            "2024-01-32T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T10:60:00Z",
            "2024-05-01T10:00:60Z",
            "2024-05-01t10:00:00Z",
            "2024-05-01T10:00:00z",
            "2024-05-01 10:00:00Z",
            "2024-05-01T10:00:00",
            "2024-05-01T10:00:00.Z",
            "2024-05-01T10:00:00,5Z",
            "2024-05-01T10:00:00+24:00",
            "2024-05-01T10:00:00+05:60",
            "2024-05-01T10:00:00+0530",
            "2024-05-01T10:00:00+05",
            "2024-05-01T10:00:00 Z",
            "2024-05-01T10:00:00Zx",
            "2024-05-01T9:00:00Z",
            "2024-5-01T10:00:00Z",
            "24-05-01T10:00:00Z",
            " 2024-05-01T10:00:00Z",
            "+2024-05-01T10:00:00Z",
            "2024-05-01",
            "2024-05-01T10:00:00.1.2Z",
            "１２３４-05-01T10:00:00Z",
        ];
        for date in dates {
            let record = format!(r#"{{"type":"t","date":"{date}"}}"#);
            assert_eq!(skip(record.as_bytes()), Err(SkipReason::InvalidDate), "{date:?}");
        }
        // Go validates the date's source text, so an escaped but otherwise valid date fails.
        assert_eq!(
            skip(br#"{"type":"t","date":"2024-05-01T10:00:00\u005a"}"#),
            Err(SkipReason::InvalidDate)
        );
    }

    // ---- skips ----

    #[test]
    fn skip_reasons() {
        assert_eq!(decode_record(None), Err(SkipReason::Empty));
        let cases: [(&[u8], SkipReason); 24] = [
            (b"", SkipReason::Empty),
            (b"not json", SkipReason::InvalidJson),
            (b" ", SkipReason::InvalidJson),
            (b"{", SkipReason::InvalidJson),
            (br#"{"type":"x",}"#, SkipReason::InvalidJson),
            (br#"{"type":"x"} x"#, SkipReason::InvalidJson),
            (br#"{"type":"x"}{}"#, SkipReason::InvalidJson),
            (br#"[] x"#, SkipReason::InvalidJson),
            (b"{\"type\":\"\xff\"}", SkipReason::InvalidJson),
            (b"{\"type\":\"x\",\"payload\":\"\xc3\"}", SkipReason::InvalidJson),
            (b"\xef\xbb\xbf{\"type\":\"x\"}", SkipReason::InvalidJson),
            (b"[]", SkipReason::NotObject),
            (b"null", SkipReason::NotObject),
            (b"\"{}\"", SkipReason::NotObject),
            (b"42", SkipReason::NotObject),
            (b"{}", SkipReason::MissingType),
            (br#"{"type":""}"#, SkipReason::MissingType),
            (br#"{"type":null}"#, SkipReason::MissingType),
            (br#"{"Type":"x","type":""}"#, SkipReason::MissingType),
            (
                br#"{"app":"ledger","payload":{"type":"x"}}"#,
                SkipReason::MissingType,
            ),
            (br#"{"type":1}"#, SkipReason::InvalidKey("type")),
            (
                br#"{"type":"x","date":"2024-13-01T00:00:00Z"}"#,
                SkipReason::InvalidDate,
            ),
            (br#"{"type":"x","app":5}"#, SkipReason::InvalidKey("app")),
            (br#"{"type":"x","APP":["a"]}"#, SkipReason::InvalidKey("app")),
        ];
        for (record, reason) in cases {
            assert_eq!(skip(record), Err(reason), "{:?}", String::from_utf8_lossy(record));
        }
        // Trailing whitespace is not trailing data.
        assert!(skip(b" {\"type\":\"x\"} \r\n\t").is_ok());
    }

    #[test]
    fn every_string_key_must_hold_a_string() {
        for key in STRING_KEYS {
            for value in ["1", "true", "{}", "[\"x\"]", "-0.5"] {
                let record = format!(r#"{{"type":"t","{key}":{value}}}"#);
                assert_eq!(
                    skip(record.as_bytes()),
                    Err(SkipReason::InvalidKey(key)),
                    "{record}"
                );
            }
        }
    }

    #[test]
    fn first_offending_member_wins() {
        // A later good duplicate does not excuse an earlier bad value (Go fails the record).
        assert_eq!(
            skip(br#"{"type":1,"type":"x"}"#),
            Err(SkipReason::InvalidKey("type"))
        );
        assert_eq!(
            skip(br#"{"app":1,"date":"bad","type":"x"}"#),
            Err(SkipReason::InvalidKey("app"))
        );
        assert_eq!(
            skip(br#"{"date":"bad","app":1,"type":"x"}"#),
            Err(SkipReason::InvalidDate)
        );
        assert_eq!(
            skip(br#"{"date":"bad","date":"2024-05-01T10:00:00Z","type":"x"}"#),
            Err(SkipReason::InvalidDate)
        );
        // Member errors come before a missing type.
        assert_eq!(skip(br#"{"version":2}"#), Err(SkipReason::InvalidKey("version")));
    }

    #[test]
    fn skip_reason_messages() {
        let cases = [
            (SkipReason::Empty, "empty record"),
            (SkipReason::InvalidJson, "invalid JSON"),
            (SkipReason::NotObject, "not a JSON object"),
            (SkipReason::MissingType, "missing type"),
            (SkipReason::InvalidDate, "invalid date"),
            (SkipReason::InvalidKey("app"), "invalid app"),
            (
                SkipReason::InvalidKey("idempotency_key"),
                "invalid idempotency_key",
            ),
        ];
        for (reason, message) in cases {
            assert_eq!(reason.to_string(), message);
        }
    }

    // ---- types ----

    #[test]
    fn type_normalisation() {
        let cases = [
            (
                "ledger",
                "COMMITTED_TRANSACTIONS",
                "ledger.committed_transactions",
            ),
            ("", "Foo", "foo"),
            ("Ledger", "X", "ledger.x"),
            ("LEDGER", "saved.Metadata", "ledger.saved.metadata"),
            ("", "", ""),
            ("ÉVÉNEMENT", "Ünïcode", "événement.ünïcode"),
            // Per character, like Go: no final-sigma rule, and İ lowers to a plain i.
            ("", "ΟΔΟΣ", "οδοσ"),
            ("İSTANBUL", "x", "istanbul.x"),
            // Characters without a lower case are kept.
            ("", "ß_ǅ_😀", "ß_ǆ_😀"),
        ];
        for (app, event_type, expected) in cases {
            assert_eq!(
                normalize_type(app, event_type),
                expected,
                "{app:?} {event_type:?}"
            );
        }
        assert_eq!(to_lower("A.Σ.İ"), "a.σ.i");
    }

    #[test]
    fn pattern_matching() {
        let cases = [
            (
                "ledger.committed_transactions",
                "ledger.committed_transactions",
                true,
            ),
            (
                "ledger.committed_transactions",
                "ledger.committed_transaction",
                false,
            ),
            ("*", "ledger.committed_transactions", true),
            ("*", "foo", true),
            ("ledger.*", "ledger.committed_transactions", true),
            ("ledger.*", "ledger.saved_metadata", true),
            ("ledger.*", "ledger.a.b", true),
            ("ledger.*", "ledger", false),
            ("ledger.*", "ledgers.x", false),
            ("ledger.*", "payments.ledger.x", false),
            // Only a trailing `.*` is a wildcard.
            ("ledger*", "ledger.x", false),
            ("ledger*", "ledger*", true),
            ("*.x", "ledger.x", false),
            ("led*.x", "ledger.x", false),
            ("ledger.**", "ledger.x", false),
            // Exact: lower-casing happens before matching, not during.
            ("ledger.x", "Ledger.x", false),
            ("", "", true),
            ("", "x", false),
        ];
        for (pattern, event_type, expected) in cases {
            assert_eq!(
                matches(pattern, event_type),
                expected,
                "{pattern:?} vs {event_type:?}"
            );
        }
    }

    // ---- identity ----

    #[test]
    fn event_id_prefers_the_header() {
        let uuid = "5f1a2b3c-4d5e-4f60-8a71-92b3c4d5e6f7";
        assert_eq!(event_id(Some(uuid.as_bytes()), "default", 0, 42), uuid);
        assert_eq!(event_id(None, "default", 0, 42), "default/0/42");
        assert_eq!(event_id(Some(b""), "foo", 3, 7), "foo/3/7");
        assert_eq!(event_id(Some(b"\xff\xfe"), "foo", 1, 0), "foo/1/0");
        assert_eq!(
            event_id(None, "t", i32::MAX, i64::MAX),
            "t/2147483647/9223372036854775807"
        );
    }

    #[test]
    fn delivery_id_vectors() {
        let config = "0b6f3c2e-8d4a-4b1f-9c3e-2a7d5e6f8a90";
        assert_eq!(
            delivery_id("default/0/42", config),
            "856209b9-f438-5a5c-8aa4-1d4fdd8d070e"
        );
        assert_eq!(
            delivery_id("5f1a2b3c-4d5e-4f60-8a71-92b3c4d5e6f7", config),
            "614df6be-50b3-5444-969a-0937fee54cf6"
        );
    }

    #[test]
    fn delivery_id_is_a_deterministic_v5_uuid() {
        let id = delivery_id("foo/0/1", "c");
        assert_eq!(id, delivery_id("foo/0/1", "c"));
        assert_ne!(id, delivery_id("foo/0/2", "c"));
        assert_ne!(id, delivery_id("foo/0/1", "d"));
        // The name is a plain concatenation, so these collide; harmless, as config ids are UUIDs.
        assert_eq!(delivery_id("a/b", "c"), delivery_id("a", "b/c"));
        let parsed = Uuid::parse_str(&id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(parsed.get_version_num(), 5);
        assert_eq!(id, id.to_lowercase());
        assert_eq!(id.len(), 36);
    }
}
