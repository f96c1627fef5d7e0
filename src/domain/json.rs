//! Span-preserving JSON parsing and Go-compatible request-body decoding.
//!
//! The service replaces a Go implementation whose clients see (and some parse)
//! the exact error strings produced by Go's `encoding/json` decoder with
//! `DisallowUnknownFields`. `serde_json` reports errors as line/column pairs,
//! checks types while it is still parsing, and cannot tell us where a value
//! started, so we could not reproduce Go's byte offsets or its error order with
//! it. This module therefore has two layers:
//!
//! * [`parse_first`]: a strict RFC 8259 parser that keeps the byte span of every
//!   value, decodes strings the way Go does (invalid UTF-8 and lone surrogates
//!   become U+FFFD), and reports syntax errors with Go's 1-based offsets. It is
//!   iterative, so hostile nesting cannot overflow the stack.
//! * [`decode_object`]: Go's "decode body into a struct" semantics on top of
//!   that tree, producing [`BodyError`]s whose `Display` output is
//!   byte-for-byte what the Go handler sent.

use std::fmt;

/// Go's `encoding/json` scanner refuses documents nested deeper than this.
const MAX_DEPTH: usize = 10_000;

/// One parsed JSON value and the exact bytes it came from.
///
/// `Drop` is implemented iteratively because a tree may legitimately be
/// [`MAX_DEPTH`] levels deep, and the compiler-generated recursive drop would
/// overflow small (e.g. 2 MiB worker) stacks. The derived `Debug`/`PartialEq`
/// do recurse; they are meant for tests and shallow trees. Because of the
/// `Drop` impl, move contents out with `std::mem::take(&mut node.kind)`
/// rather than by destructuring.
#[derive(Debug, PartialEq, Eq)]
pub struct Node {
    /// Index of the value's first byte in the parsed body.
    pub start: usize,
    /// Index just past the value's last byte.
    pub end: usize,
    pub kind: Kind,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub enum Kind {
    #[default]
    Null,
    Bool(bool),
    /// The digits are left in the body (see [`Node::raw`]) so callers can
    /// choose their own precision instead of us silently rounding.
    Number,
    String(String),
    Array(Vec<Node>),
    /// Members in document order, duplicates included, so callers can apply
    /// Go's "last one wins" and "first error wins" rules themselves.
    Object(Vec<(String, Node)>),
}

impl Node {
    /// The value's source bytes; empty if `body` is not the parsed input.
    pub fn raw<'b>(&self, body: &'b [u8]) -> &'b [u8] {
        body.get(self.start..self.end).unwrap_or(&[])
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let mut pending = Vec::new();
        detach_children(&mut self.kind, &mut pending);
        while let Some(mut node) = pending.pop() {
            // Emptying the child first means its own drop has nothing to
            // recurse into, keeping stack use constant at any depth.
            detach_children(&mut node.kind, &mut pending);
        }
    }
}

fn detach_children(kind: &mut Kind, out: &mut Vec<Node>) {
    match kind {
        Kind::Array(items) => out.append(items),
        Kind::Object(members) => out.extend(members.drain(..).map(|(_, node)| node)),
        _ => {}
    }
}

/// Mirrors the two ways Go's decoder can reject malformed input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntaxError {
    /// Input ended inside a value (Go: `io.ErrUnexpectedEOF`). Also returned
    /// for empty or whitespace-only input; callers that distinguish "empty"
    /// check [`rest_is_whitespace`] first.
    UnexpectedEnd,
    /// `pos` is 1-based: the number of bytes read including the offending
    /// one, exactly Go's `json.SyntaxError.Offset`.
    Invalid { pos: usize },
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnexpectedEnd => f.write_str("unexpected end of JSON input"),
            Self::Invalid { pos } => write!(f, "invalid JSON at position {pos}"),
        }
    }
}

impl std::error::Error for SyntaxError {}

fn invalid_at(index: usize) -> SyntaxError {
    SyntaxError::Invalid { pos: index + 1 }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_ws(body: &[u8], mut i: usize) -> usize {
    while body.get(i).is_some_and(|&b| is_ws(b)) {
        i += 1;
    }
    i
}

/// True if nothing but JSON whitespace follows `from` (or `from` is past the end).
pub fn rest_is_whitespace(body: &[u8], from: usize) -> bool {
    body.iter().skip(from).all(|&b| is_ws(b))
}

/// An open container while its contents are being parsed; an explicit stack
/// of these replaces recursion.
enum Frame {
    Array {
        start: usize,
        items: Vec<Node>,
    },
    Object {
        start: usize,
        members: Vec<(String, Node)>,
        /// Key whose value is currently being parsed.
        key: String,
    },
}

/// Parses the first JSON value in `body`, returning it and the index just
/// after it.
///
/// Like Go's streaming decoder, a top-level value ends as soon as its grammar
/// is complete: `01` yields `0` with the next index pointing at `1`. Whatever
/// follows is the caller's business (see [`rest_is_whitespace`]).
pub fn parse_first(body: &[u8]) -> Result<(Node, usize), SyntaxError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut pos = 0;
    'value: loop {
        pos = skip_ws(body, pos);
        let start = pos;
        let &first = body.get(pos).ok_or(SyntaxError::UnexpectedEnd)?;
        let mut node = match first {
            b'[' | b'{' => {
                // Go checks depth on the opening bracket itself, before it
                // knows whether the container is empty.
                if stack.len() >= MAX_DEPTH {
                    return Err(invalid_at(pos));
                }
                let is_object = first == b'{';
                pos = skip_ws(body, pos + 1);
                match body.get(pos) {
                    None => return Err(SyntaxError::UnexpectedEnd),
                    Some(b']') if !is_object => {
                        pos += 1;
                        Node {
                            start,
                            end: pos,
                            kind: Kind::Array(Vec::new()),
                        }
                    }
                    Some(b'}') if is_object => {
                        pos += 1;
                        Node {
                            start,
                            end: pos,
                            kind: Kind::Object(Vec::new()),
                        }
                    }
                    Some(_) if !is_object => {
                        stack.push(Frame::Array {
                            start,
                            items: Vec::new(),
                        });
                        continue 'value;
                    }
                    Some(b'"') => {
                        let (key, after) = scan_key(body, pos)?;
                        pos = after;
                        stack.push(Frame::Object {
                            start,
                            members: Vec::new(),
                            key,
                        });
                        continue 'value;
                    }
                    Some(_) => return Err(invalid_at(pos)),
                }
            }
            b'"' => {
                let (text, after) = scan_string(body, pos)?;
                pos = after;
                Node {
                    start,
                    end: pos,
                    kind: Kind::String(text),
                }
            }
            b'-' | b'0'..=b'9' => {
                pos = scan_number(body, pos)?;
                Node {
                    start,
                    end: pos,
                    kind: Kind::Number,
                }
            }
            b't' | b'f' | b'n' => {
                let (literal, kind): (&[u8], Kind) = match first {
                    b't' => (b"true", Kind::Bool(true)),
                    b'f' => (b"false", Kind::Bool(false)),
                    _ => (b"null", Kind::Null),
                };
                pos = scan_literal(body, pos, literal)?;
                Node {
                    start,
                    end: pos,
                    kind,
                }
            }
            _ => return Err(invalid_at(pos)),
        };

        // A finished value may finish its parents too (`]]}`), so keep
        // attaching and closing until a separator asks for another value.
        loop {
            let Some(frame) = stack.last_mut() else {
                return Ok((node, pos));
            };
            pos = skip_ws(body, pos);
            let next = body.get(pos).copied();
            let (container_start, kind) = match frame {
                Frame::Array { start, items } => {
                    items.push(node);
                    match next {
                        Some(b',') => {
                            pos += 1;
                            continue 'value;
                        }
                        Some(b']') => (*start, Kind::Array(std::mem::take(items))),
                        Some(_) => return Err(invalid_at(pos)),
                        None => return Err(SyntaxError::UnexpectedEnd),
                    }
                }
                Frame::Object { start, members, key } => {
                    members.push((std::mem::take(key), node));
                    match next {
                        Some(b',') => {
                            pos = skip_ws(body, pos + 1);
                            match body.get(pos) {
                                Some(b'"') => {}
                                Some(_) => return Err(invalid_at(pos)),
                                None => return Err(SyntaxError::UnexpectedEnd),
                            }
                            let (next_key, after) = scan_key(body, pos)?;
                            *key = next_key;
                            pos = after;
                            continue 'value;
                        }
                        Some(b'}') => (*start, Kind::Object(std::mem::take(members))),
                        Some(_) => return Err(invalid_at(pos)),
                        None => return Err(SyntaxError::UnexpectedEnd),
                    }
                }
            };
            stack.pop();
            pos += 1;
            node = Node {
                start: container_start,
                end: pos,
                kind,
            };
        }
    }
}

/// Scans an object key starting at its opening quote, plus the following
/// colon; returns the decoded key and the index after the colon.
fn scan_key(body: &[u8], open: usize) -> Result<(String, usize), SyntaxError> {
    let (key, after) = scan_string(body, open)?;
    let colon = skip_ws(body, after);
    match body.get(colon) {
        Some(b':') => Ok((key, colon + 1)),
        Some(_) => Err(invalid_at(colon)),
        None => Err(SyntaxError::UnexpectedEnd),
    }
}

/// Scans a string starting at its opening quote; returns the decoded text and
/// the index after the closing quote.
fn scan_string(body: &[u8], open: usize) -> Result<(String, usize), SyntaxError> {
    let mut out = String::new();
    let mut i = open + 1;
    // Unescaped bytes are copied in runs rather than one at a time.
    let mut run = i;
    loop {
        let &b = body.get(i).ok_or(SyntaxError::UnexpectedEnd)?;
        match b {
            b'"' => {
                push_lossy_like_go(&mut out, &body[run..i]);
                return Ok((out, i + 1));
            }
            b'\\' => {
                push_lossy_like_go(&mut out, &body[run..i]);
                i = scan_escape(body, i, &mut out)?;
                run = i;
            }
            0x00..=0x1F => return Err(invalid_at(i)),
            _ => i += 1,
        }
    }
}

/// Appends `bytes`, replacing each byte of an invalid UTF-8 sequence with
/// U+FFFD. Go substitutes per byte, whereas `String::from_utf8_lossy`
/// substitutes per maximal invalid subsequence (`E2 82` is two U+FFFD in Go,
/// one in std), so the lossy std helper would not match.
fn push_lossy_like_go(out: &mut String, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(std::iter::repeat_n(
            char::REPLACEMENT_CHARACTER,
            chunk.invalid().len(),
        ));
    }
}

/// Decodes the escape whose backslash is at `backslash`; returns the index
/// after it.
fn scan_escape(body: &[u8], backslash: usize, out: &mut String) -> Result<usize, SyntaxError> {
    let at = backslash + 1;
    let &e = body.get(at).ok_or(SyntaxError::UnexpectedEnd)?;
    let decoded = match e {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => return scan_unicode_escape(body, backslash, out),
        _ => return Err(invalid_at(at)),
    };
    out.push(decoded);
    Ok(at + 1)
}

fn scan_unicode_escape(body: &[u8], backslash: usize, out: &mut String) -> Result<usize, SyntaxError> {
    let unit = scan_hex4(body, backslash + 2)?;
    let mut next = backslash + 6;
    let decoded = if (0xD800..=0xDBFF).contains(&unit) {
        // Go pairs a high surrogate only with an immediately following valid
        // low-surrogate escape. Otherwise the high half alone becomes U+FFFD
        // and whatever follows is scanned (and syntax-checked) normally.
        match peek_low_surrogate(body, next) {
            Some(low) => {
                next += 6;
                char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
            }
            None => None,
        }
    } else {
        // A lone low surrogate is not a `char`, which yields U+FFFD below.
        char::from_u32(unit)
    };
    out.push(decoded.unwrap_or(char::REPLACEMENT_CHARACTER));
    Ok(next)
}

fn scan_hex4(body: &[u8], at: usize) -> Result<u32, SyntaxError> {
    let mut value = 0;
    for i in at..at + 4 {
        let &b = body.get(i).ok_or(SyntaxError::UnexpectedEnd)?;
        let digit = hex_value(b).ok_or(invalid_at(i))?;
        value = value * 16 + digit;
    }
    Ok(value)
}

fn peek_low_surrogate(body: &[u8], at: usize) -> Option<u32> {
    if body.get(at..at + 2)? != b"\\u" {
        return None;
    }
    let mut value = 0;
    for &b in body.get(at + 2..at + 6)? {
        value = value * 16 + hex_value(b)?;
    }
    (0xDC00..=0xDFFF).contains(&value).then_some(value)
}

fn hex_value(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

/// Scans `-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?` and returns the end index.
/// Stops at the first byte that cannot extend the number; judging that byte
/// is left to the enclosing context, as in Go (`[01]` fails at the `1`).
fn scan_number(body: &[u8], start: usize) -> Result<usize, SyntaxError> {
    let mut i = start;
    if body.get(i) == Some(&b'-') {
        i += 1;
    }
    match body.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = skip_digits(body, i + 1),
        Some(_) => return Err(invalid_at(i)),
        None => return Err(SyntaxError::UnexpectedEnd),
    }
    if body.get(i) == Some(&b'.') {
        i = require_digits(body, i + 1)?;
    }
    if matches!(body.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(body.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = require_digits(body, i)?;
    }
    Ok(i)
}

fn skip_digits(body: &[u8], mut i: usize) -> usize {
    while body.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

fn require_digits(body: &[u8], i: usize) -> Result<usize, SyntaxError> {
    match body.get(i) {
        Some(b) if b.is_ascii_digit() => Ok(skip_digits(body, i + 1)),
        Some(_) => Err(invalid_at(i)),
        None => Err(SyntaxError::UnexpectedEnd),
    }
}

/// Checks that `literal` (whose first byte is already known to match) starts
/// at `start`; returns the end index.
fn scan_literal(body: &[u8], start: usize, literal: &[u8]) -> Result<usize, SyntaxError> {
    for (offset, &expected) in literal.iter().enumerate().skip(1) {
        match body.get(start + offset) {
            Some(&b) if b == expected => {}
            Some(_) => return Err(invalid_at(start + offset)),
            None => return Err(SyntaxError::UnexpectedEnd),
        }
    }
    Ok(start + literal.len())
}

/// The Go field type a [`FieldSpec`] stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Go `string`.
    String,
    /// Go `[]string`; `null` elements decode to `""`.
    StringList,
    /// Go `int64`.
    Integer,
}

/// One accepted member of the request object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// Canonical (Go struct tag) name, e.g. `"eventTypes"`. Reported in
    /// [`BodyError::InvalidValue`] whatever casing the client used.
    pub name: &'static str,
    pub kind: FieldKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    String(String),
    StringList(Vec<String>),
    Integer(i64),
}

/// Fields that were present with a non-null value, keyed by canonical name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decoded {
    values: Vec<(&'static str, Value)>,
}

impl Decoded {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values
            .iter()
            .find(|(field, _)| *field == name)
            .map(|(_, value)| value)
    }

    /// Removes and returns a value, so callers can build their request types
    /// without cloning.
    pub fn take(&mut self, name: &str) -> Option<Value> {
        let index = self.values.iter().position(|(field, _)| *field == name)?;
        Some(self.values.swap_remove(index).1)
    }

    pub fn string(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn string_list(&self, name: &str) -> Option<&[String]> {
        match self.get(name)? {
            Value::StringList(list) => Some(list),
            _ => None,
        }
    }

    pub fn integer(&self, name: &str) -> Option<i64> {
        match self.get(name)? {
            Value::Integer(n) => Some(*n),
            _ => None,
        }
    }

    fn set(&mut self, name: &'static str, value: Value) {
        match self.values.iter_mut().find(|(field, _)| *field == name) {
            Some(slot) => slot.1 = value,
            None => self.values.push((name, value)),
        }
    }

    fn unset(&mut self, name: &str) {
        self.values.retain(|(field, _)| *field != name);
    }
}

/// Why a request body was rejected; `Display` reproduces the Go service's
/// client-facing messages exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    Empty,
    /// `pos` is Go's 1-based syntax error offset.
    BadlyFormed {
        pos: usize,
    },
    UnexpectedEnd,
    /// `field` is the canonical name (`""` when the body itself is not an
    /// object); `pos` is Go's `UnmarshalTypeError.Offset`.
    InvalidValue {
        field: String,
        pos: usize,
    },
    /// The key as the client wrote it (after JSON unescaping).
    UnknownField(String),
    NotSingle,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("Request body must not be empty"),
            Self::BadlyFormed { pos } => {
                write!(f, "Request body contains badly-formed JSON (at position {pos})")
            }
            Self::UnexpectedEnd => f.write_str("Request body contains badly-formed JSON"),
            Self::InvalidValue { field, pos } => write!(
                f,
                "Request body contains an invalid value for the {} field (at position {pos})",
                go_quote(field)
            ),
            Self::UnknownField(key) => {
                write!(f, "Request body contains unknown field {}", go_quote(key))
            }
            Self::NotSingle => f.write_str("Request body must only contain a single JSON object"),
        }
    }
}

impl std::error::Error for BodyError {}

impl From<SyntaxError> for BodyError {
    fn from(err: SyntaxError) -> Self {
        match err {
            SyntaxError::UnexpectedEnd => Self::UnexpectedEnd,
            SyntaxError::Invalid { pos } => Self::BadlyFormed { pos },
        }
    }
}

/// Decodes `body` as a single JSON object whose members must all be in
/// `fields`, with the semantics of Go's `json.Decoder` +
/// `DisallowUnknownFields` decoding into a struct.
///
/// Errors are reported in Go's order: emptiness, then syntax of the whole
/// first value, then the first offending member (wrong type or unknown key,
/// whichever comes first in the document), and only then trailing data.
/// Keys match canonical names case-insensitively (exact match preferred);
/// for duplicates the last one wins, and `null` leaves a field unset.
pub fn decode_object(body: &[u8], fields: &[FieldSpec]) -> Result<Decoded, BodyError> {
    if rest_is_whitespace(body, 0) {
        return Err(BodyError::Empty);
    }
    let (mut root, end) = parse_first(body)?;
    let members = match std::mem::take(&mut root.kind) {
        Kind::Null => Vec::new(),
        Kind::Object(members) => members,
        other => {
            root.kind = other;
            return Err(invalid_value("", &root));
        }
    };
    let mut decoded = Decoded::default();
    for (key, value) in members {
        let Some(spec) = find_field(fields, &key) else {
            return Err(BodyError::UnknownField(key));
        };
        match decode_value(body, spec, value)? {
            Some(v) => decoded.set(spec.name, v),
            None => decoded.unset(spec.name),
        }
    }
    if !rest_is_whitespace(body, end) {
        return Err(BodyError::NotSingle);
    }
    Ok(decoded)
}

/// `Ok(None)` means the member was `null`.
fn decode_value(body: &[u8], spec: &FieldSpec, mut node: Node) -> Result<Option<Value>, BodyError> {
    let value = match (spec.kind, &mut node.kind) {
        (_, Kind::Null) => return Ok(None),
        (FieldKind::String, Kind::String(s)) => Value::String(std::mem::take(s)),
        (FieldKind::StringList, Kind::Array(items)) => {
            let mut list = Vec::with_capacity(items.len());
            for item in items.iter_mut() {
                match &mut item.kind {
                    Kind::String(s) => list.push(std::mem::take(s)),
                    Kind::Null => list.push(String::new()),
                    _ => return Err(invalid_value(spec.name, item)),
                }
            }
            Value::StringList(list)
        }
        (FieldKind::Integer, Kind::Number) => {
            // Go's ParseInt rejects fractions, exponents and overflow alike,
            // and so does `i64::from_str`.
            let parsed = std::str::from_utf8(node.raw(body))
                .ok()
                .and_then(|digits| digits.parse::<i64>().ok());
            match parsed {
                Some(n) => Value::Integer(n),
                None => return Err(invalid_value(spec.name, &node)),
            }
        }
        _ => return Err(invalid_value(spec.name, &node)),
    };
    Ok(Some(value))
}

/// Go reports a container type error right after its opening bracket and a
/// scalar type error right after the scalar.
fn invalid_value(field: &str, node: &Node) -> BodyError {
    let pos = match node.kind {
        Kind::Array(_) | Kind::Object(_) => node.start + 1,
        _ => node.end,
    };
    BodyError::InvalidValue {
        field: field.to_owned(),
        pos,
    }
}

/// Go tries an exact name match first, then a case-insensitive one.
fn find_field<'f>(fields: &'f [FieldSpec], key: &str) -> Option<&'f FieldSpec> {
    fields
        .iter()
        .find(|f| f.name == key)
        .or_else(|| fields.iter().find(|f| fold_eq(f.name, key)))
}

fn fold_eq(a: &str, b: &str) -> bool {
    a.chars().map(simple_fold).eq(b.chars().map(simple_fold))
}

/// Approximates Unicode simple case folding (what Go's `foldName` uses)
/// with std's case mappings: lower(upper(c)) sends every member of an orbit
/// such as {K, k, U+212A KELVIN SIGN} or {S, s, U+017F LONG S} to one char.
/// Multi-char mappings are not simple folds, so such chars stay as they are.
fn simple_fold(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut upper = c.to_uppercase();
    let (Some(u), None) = (upper.next(), upper.next()) else {
        return c;
    };
    let mut lower = u.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// Go's `strconv.Quote`, because the Go handler formatted field names with
/// `%q`; Rust's `{:?}` escapes differently (`\u{1b}` vs `\x1b`).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ if go_is_print(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\0'..='\u{1f}' | '\u{7f}' => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            '\u{80}'..='\u{ffff}' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            _ => out.push_str(&format!("\\U{:08x}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and
/// ASCII space. std has no general-category tables, so this lists the
/// non-printable assigned ranges (Unicode 15, as in current Go) plus the
/// unassigned planes. Unassigned code points scattered through planes 0-2
/// are treated as printable, where Go would escape them.
fn go_is_print(c: char) -> bool {
    let cp = u32::from(c);
    if cp <= 0xFF {
        // Latin-1: C0/C1 controls, DEL, NO-BREAK SPACE and SOFT HYPHEN are out.
        return matches!(cp, 0x20..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
    }
    if cp & 0xFFFE == 0xFFFE {
        // Noncharacters U+xxFFFE and U+xxFFFF in every plane.
        return false;
    }
    !matches!(
        cp,
        // Space, line and paragraph separators other than U+0020.
        0x1680 | 0x2000..=0x200A | 0x2028 | 0x2029 | 0x202F | 0x205F | 0x3000
        // Format characters.
        | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064
        | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD
        | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        // Private use.
        | 0xE000..=0xF8FF
        // Noncharacters in the BMP.
        | 0xFDD0..=0xFDEF
        // Unassigned tail of plane 3 and planes 4-13.
        | 0x3134B..=0x3134F | 0x323B0..=0xDFFFF
        // Plane 14 except its variation selectors (its tags are format chars).
        | 0xE0000..=0xE00FF | 0xE01F0..=0xEFFFF
        // Private use planes 15 and 16.
        | 0xF0000..=0x10FFFF
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8]) -> (Node, usize) {
        match parse_first(body) {
            Ok(parsed) => parsed,
            Err(err) => panic!("{:?} failed to parse: {err:?}", String::from_utf8_lossy(body)),
        }
    }

    fn parse_err(body: &[u8]) -> SyntaxError {
        match parse_first(body) {
            Ok((node, _)) => panic!("{:?} parsed as {:?}", String::from_utf8_lossy(body), node.kind),
            Err(err) => err,
        }
    }

    fn string_of(body: &[u8]) -> String {
        match parse(body).0.kind {
            Kind::String(ref s) => s.clone(),
            ref other => panic!("not a string: {other:?}"),
        }
    }

    fn object_keys(body: &[u8]) -> Vec<String> {
        match parse(body).0.kind {
            Kind::Object(ref members) => members.iter().map(|(k, _)| k.clone()).collect(),
            ref other => panic!("not an object: {other:?}"),
        }
    }

    fn invalid(pos: usize) -> SyntaxError {
        SyntaxError::Invalid { pos }
    }

    // ---- parse_first: scalars, spans and the end index ----

    #[test]
    fn scalars_have_exact_spans_and_end_index() {
        let cases: &[(&[u8], Kind, usize, usize)] = &[
            (b"null", Kind::Null, 0, 4),
            (b"true", Kind::Bool(true), 0, 4),
            (b"false", Kind::Bool(false), 0, 5),
            (b"0", Kind::Number, 0, 1),
            (b"-12.5e+3", Kind::Number, 0, 8),
            (b"\"hi\"", Kind::String("hi".into()), 0, 4),
            (b" \t\r\n 42 ", Kind::Number, 5, 7),
        ];
        for (body, kind, start, end) in cases {
            let (node, next) = parse(body);
            assert_eq!(&node.kind, kind, "{body:?}");
            assert_eq!((node.start, node.end), (*start, *end), "{body:?}");
            assert_eq!(next, *end, "{body:?}");
        }
    }

    #[test]
    fn numbers_keep_exact_source_text() {
        let body = b"[12345678901234567890, 1.50, -0.0e+05, 0, -0, 1E3]";
        let (node, _) = parse(body);
        let Kind::Array(items) = &node.kind else {
            panic!("not an array")
        };
        let raws: Vec<&[u8]> = items.iter().map(|n| n.raw(body)).collect();
        let expected: Vec<&[u8]> = vec![b"12345678901234567890", b"1.50", b"-0.0e+05", b"0", b"-0", b"1E3"];
        assert_eq!(raws, expected);
        assert!(items.iter().all(|n| n.kind == Kind::Number));
    }

    #[test]
    fn nested_spans_slice_out_exact_source() {
        let body = br#"{"payload":{"b":1, "a":2}}"#;
        let (root, next) = parse(body);
        assert_eq!((root.start, root.end, next), (0, body.len(), body.len()));
        let Kind::Object(members) = &root.kind else {
            panic!("not an object")
        };
        assert_eq!(members.len(), 1);
        let (key, payload) = &members[0];
        assert_eq!(key, "payload");
        assert_eq!(payload.raw(body), br#"{"b":1, "a":2}"#);
        let Kind::Object(inner) = &payload.kind else {
            panic!("payload not an object")
        };
        let inner: Vec<(&str, &[u8])> = inner.iter().map(|(k, v)| (k.as_str(), v.raw(body))).collect();
        assert_eq!(inner, vec![("b", &b"1"[..]), ("a", &b"2"[..])]);
    }

    #[test]
    fn spans_with_whitespace_inside_containers() {
        let body = b" [ \"a\\n\" , [ ] , { } , null ] ";
        let (root, next) = parse(body);
        assert_eq!(root.raw(body), &body[1..body.len() - 1]);
        assert_eq!(next, body.len() - 1);
        let Kind::Array(items) = &root.kind else {
            panic!("not an array")
        };
        let raws: Vec<&[u8]> = items.iter().map(|n| n.raw(body)).collect();
        let expected: Vec<&[u8]> = vec![b"\"a\\n\"", b"[ ]", b"{ }", b"null"];
        assert_eq!(raws, expected);
        assert_eq!(items[0].kind, Kind::String("a\n".into()));
    }

    #[test]
    fn object_members_keep_document_order_and_duplicates() {
        assert_eq!(
            object_keys(br#"{"z":1,"a":2,"z":3,"":4}"#),
            vec!["z", "a", "z", ""]
        );
    }

    #[test]
    fn raw_with_foreign_body_is_empty() {
        let (node, _) = parse(b"[1,2,3]");
        assert_eq!(node.raw(b"[]"), b"");
    }

    #[test]
    fn top_level_value_ends_where_its_grammar_ends() {
        let cases: &[(&[u8], usize)] = &[
            (b"01", 1),
            (b"1.5.", 3),
            (b"truex", 4),
            (b"nullnull", 4),
            (b"{}{}", 2),
            (b"[] x", 2),
            (b"\"a\"\"b\"", 3),
            (b"-0-", 2),
        ];
        for (body, next) in cases {
            assert_eq!(parse(body).1, *next, "{body:?}");
        }
    }

    // ---- parse_first: syntax errors ----

    #[test]
    fn syntax_error_positions_match_go() {
        let cases: &[(&[u8], SyntaxError)] = &[
            (br#"{"endpoint":}"#, invalid(13)),
            (br#"{"a":1,}"#, invalid(8)),
            (b"[1,]", invalid(4)),
            (b"[01]", invalid(3)),
            (b"[1 2]", invalid(4)),
            (br#"{"a" 1}"#, invalid(6)),
            (br#"{"a":1 "b":2}"#, invalid(8)),
            (b"{1:2}", invalid(2)),
            (b"{'a':1}", invalid(2)),
            (br#"{"a":1,,}"#, invalid(8)),
            (b"[,]", invalid(2)),
            (b"]", invalid(1)),
            (b"}", invalid(1)),
            (b"  x", invalid(3)),
            (b"/* c */ {}", invalid(1)),
            (b"trux", invalid(4)),
            (b"True", invalid(1)),
            (b"nulL", invalid(4)),
            (b"fals3", invalid(5)),
            (b"+1", invalid(1)),
            (b".5", invalid(1)),
            (b"-a", invalid(2)),
            (b"- 1", invalid(2)),
            (b"1.x", invalid(3)),
            (b"1.e5", invalid(3)),
            (b"1ex", invalid(3)),
            (b"1e+x", invalid(4)),
            (b"[1.]", invalid(4)),
            (b"[-]", invalid(3)),
            (b"[1e]", invalid(4)),
            (b"[NaN]", invalid(2)),
            (b"[Infinity]", invalid(2)),
            (br#""\x""#, invalid(3)),
            (br#""\U0041""#, invalid(3)),
            (br#""\u12G4""#, invalid(6)),
            (br#"["a" : 1]"#, invalid(6)),
            (br#"{"a":1]"#, invalid(7)),
            (b"[1}", invalid(3)),
            // Go does not skip a UTF-8 byte order mark either.
            (b"\xef\xbb\xbf{}", invalid(1)),
        ];
        for (body, expected) in cases {
            assert_eq!(parse_err(body), *expected, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn input_ending_inside_a_value_is_unexpected_end() {
        let cases: &[&[u8]] = &[
            b"",
            b" \t\r\n",
            br#"{"endpoint":"https://x""#,
            b"tru",
            b"f",
            b"nul",
            b"-",
            b"1.",
            b"1e",
            b"1E-",
            b"[",
            b"[ ",
            b"[1",
            b"[1,",
            b"[1, ",
            b"{",
            b"{ ",
            br#"{"a""#,
            br#"{"a" "#,
            br#"{"a":"#,
            br#"{"a":1"#,
            br#"{"a":1,"#,
            br#"{"a":1, "#,
            br#""abc"#,
            br#""a\"#,
            br#""\u12"#,
            br#""\uD83D\uDE0"#,
            b"[[[[",
        ];
        for body in cases {
            assert_eq!(
                parse_err(body),
                SyntaxError::UnexpectedEnd,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn control_characters_in_strings_are_rejected_at_that_byte() {
        assert_eq!(parse_err(b"\"ab\tc\""), invalid(4));
        assert_eq!(parse_err(b"\"\n\""), invalid(2));
        assert_eq!(parse_err(b"{\"k\x00\":1}"), invalid(4));
        assert_eq!(parse_err(b"[\"ok\", \"x\x1f\"]"), invalid(10));
        // DEL and bytes >= 0x80 are not control characters for JSON.
        assert_eq!(string_of(b"\"\x7f\""), "\u{7f}");
    }

    #[test]
    fn first_error_wins_over_later_ones() {
        // The bad escape comes before the missing close.
        assert_eq!(parse_err(br#"["\q", "#), invalid(4));
    }

    // ---- parse_first: string decoding ----

    #[test]
    fn simple_escapes_decode() {
        assert_eq!(string_of(br#""\"\\\/\b\f\n\r\t""#), "\"\\/\u{8}\u{c}\n\r\t");
    }

    #[test]
    fn unicode_escapes_and_surrogate_pairs_decode() {
        assert_eq!(string_of(br#""\u0041\u00e9\u00E9\u4e2d""#), "Aéé中");
        assert_eq!(string_of(br#""\uD83D\uDE00""#), "😀");
        assert_eq!(string_of(br#""\ud83d\ude00!""#), "😀!");
        assert_eq!(string_of(br#""\uDBFF\uDFFF""#), "\u{10FFFF}");
        assert_eq!(string_of(br#""\u0000""#), "\0");
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        assert_eq!(string_of(br#""\uD800""#), "\u{FFFD}");
        assert_eq!(string_of(br#""\uD800x""#), "\u{FFFD}x");
        assert_eq!(string_of(br#""\uDC00""#), "\u{FFFD}");
        // Reversed pair: two lone halves.
        assert_eq!(string_of(br#""\uDE00\uD83D""#), "\u{FFFD}\u{FFFD}");
        // The second high half can still pair with what follows it.
        assert_eq!(string_of(br#""\uD800\uD83D\uDE00""#), "\u{FFFD}😀");
        assert_eq!(string_of(br#""\uD800\n""#), "\u{FFFD}\n");
        assert_eq!(string_of(br#""\uD800\u0041""#), "\u{FFFD}A");
    }

    #[test]
    fn escape_after_high_surrogate_is_still_syntax_checked() {
        assert_eq!(parse_err(br#""\uD800\uZZZZ""#), invalid(10));
        assert_eq!(parse_err(br#""\uD800\q""#), invalid(9));
    }

    #[test]
    fn invalid_utf8_becomes_one_replacement_per_byte_like_go() {
        assert_eq!(string_of(b"\"a\xffb\""), "a\u{FFFD}b");
        // Truncated 3-byte sequence: Go emits one U+FFFD per byte.
        assert_eq!(string_of(b"\"\xe2\x82\""), "\u{FFFD}\u{FFFD}");
        // UTF-8-encoded surrogate and overlong encodings are invalid too.
        assert_eq!(string_of(b"\"\xed\xa0\x80\""), "\u{FFFD}".repeat(3));
        assert_eq!(string_of(b"\"\xc0\xaf\""), "\u{FFFD}".repeat(2));
        // Valid multi-byte text passes through untouched.
        assert_eq!(string_of("\"é中😀\"".as_bytes()), "é中😀");
        // Mixed with escapes.
        assert_eq!(string_of(b"\"\xff\\n\xfe\""), "\u{FFFD}\n\u{FFFD}");
    }

    #[test]
    fn keys_are_decoded_like_strings() {
        assert_eq!(
            object_keys(b"{\"\\u0065ndpoint\":1,\"\\uD83D\\uDE00\":2,\"a\\\"b\":3,\"\xff\":4}"),
            vec!["endpoint", "😀", "a\"b", "\u{FFFD}"]
        );
    }

    // ---- parse_first: nesting depth ----

    fn nested_arrays(depth: usize) -> Vec<u8> {
        let mut body = vec![b'['; depth];
        body.extend(std::iter::repeat_n(b']', depth));
        body
    }

    fn nested_objects(depth: usize) -> Vec<u8> {
        let mut body = br#"{"a":"#.repeat(depth);
        body.extend_from_slice(b"null");
        body.extend(std::iter::repeat_n(b'}', depth));
        body
    }

    /// Runs `f` on a thread with a small stack, so any recursion proportional
    /// to nesting depth (parsing or dropping) would crash the test.
    fn on_small_stack(f: impl FnOnce() + Send + 'static) {
        let handle = std::thread::Builder::new().stack_size(128 * 1024).spawn(f);
        match handle.map(|h| h.join()) {
            Ok(Ok(())) => {}
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(err) => panic!("could not spawn thread: {err}"),
        }
    }

    #[test]
    fn max_depth_is_accepted_and_dropped_without_recursion() {
        on_small_stack(|| {
            let body = nested_arrays(MAX_DEPTH);
            let (node, next) = parse(&body);
            assert_eq!((node.start, node.end, next), (0, body.len(), body.len()));
            drop(node);

            let body = nested_objects(MAX_DEPTH);
            let (node, next) = parse(&body);
            assert_eq!((node.end, next), (body.len(), body.len()));
            drop(node);

            let mut body = b"[{\"a\":".repeat(MAX_DEPTH / 2);
            body.extend_from_slice(b"1");
            body.extend(b"}]".repeat(MAX_DEPTH / 2));
            assert_eq!(parse(&body).1, body.len());
        });
    }

    #[test]
    fn depth_beyond_limit_is_a_syntax_error_at_the_extra_bracket() {
        on_small_stack(|| {
            assert_eq!(parse_err(&nested_arrays(MAX_DEPTH + 1)), invalid(MAX_DEPTH + 1));
            // Even an empty innermost container counts.
            let mut body = vec![b'['; MAX_DEPTH];
            body.extend_from_slice(b"{}");
            assert_eq!(parse_err(&body), invalid(MAX_DEPTH + 1));
            let body = nested_objects(MAX_DEPTH + 1);
            assert_eq!(parse_err(&body), invalid(5 * MAX_DEPTH + 1));
        });
    }

    #[test]
    fn very_deep_unclosed_nesting_is_an_error_not_a_crash() {
        on_small_stack(|| {
            assert_eq!(parse_err(&vec![b'['; 100_000]), invalid(MAX_DEPTH + 1));
            assert_eq!(
                decode_object(&vec![b'['; 100_000], FIELDS),
                Err(BodyError::BadlyFormed { pos: MAX_DEPTH + 1 })
            );
        });
    }

    #[test]
    fn error_path_drops_deep_partial_trees_without_recursion() {
        on_small_stack(|| {
            // A fully built deep subtree sits on the frame stack when the
            // error is found.
            let mut body = b"[".to_vec();
            body.extend(nested_arrays(MAX_DEPTH - 1));
            body.extend_from_slice(b",x]");
            assert_eq!(parse_err(&body), invalid(body.len() - 1));
        });
    }

    // ---- rest_is_whitespace ----

    #[test]
    fn rest_is_whitespace_cases() {
        assert!(rest_is_whitespace(b"", 0));
        assert!(rest_is_whitespace(b"{} \t\r\n", 2));
        assert!(!rest_is_whitespace(b"{} x", 2));
        assert!(!rest_is_whitespace(b"{}\x0c", 2));
        assert!(rest_is_whitespace(b"{}", 2));
        assert!(rest_is_whitespace(b"{}", 99));
    }

    // ---- decode_object ----

    const FIELDS: &[FieldSpec] = &[
        FieldSpec {
            name: "endpoint",
            kind: FieldKind::String,
        },
        FieldSpec {
            name: "secret",
            kind: FieldKind::String,
        },
        FieldSpec {
            name: "eventTypes",
            kind: FieldKind::StringList,
        },
    ];

    const WITH_INT: &[FieldSpec] = &[
        FieldSpec {
            name: "endpoint",
            kind: FieldKind::String,
        },
        FieldSpec {
            name: "maxRetries",
            kind: FieldKind::Integer,
        },
    ];

    fn decode(body: &str) -> Decoded {
        match decode_object(body.as_bytes(), FIELDS) {
            Ok(decoded) => decoded,
            Err(err) => panic!("{body:?} rejected: {err}"),
        }
    }

    fn message(body: &[u8], fields: &[FieldSpec]) -> String {
        match decode_object(body, fields) {
            Ok(decoded) => panic!("{:?} accepted: {decoded:?}", String::from_utf8_lossy(body)),
            Err(err) => err.to_string(),
        }
    }

    fn msg(body: &str) -> String {
        message(body.as_bytes(), FIELDS)
    }

    fn invalid_value_msg(field: &str, pos: usize) -> String {
        format!("Request body contains an invalid value for the \"{field}\" field (at position {pos})")
    }

    const BADLY_FORMED: &str = "Request body contains badly-formed JSON";
    const EMPTY: &str = "Request body must not be empty";
    const NOT_SINGLE: &str = "Request body must only contain a single JSON object";

    #[test]
    fn display_messages_are_exact() {
        let cases = [
            (BodyError::Empty, EMPTY.to_owned()),
            (
                BodyError::BadlyFormed { pos: 13 },
                "Request body contains badly-formed JSON (at position 13)".to_owned(),
            ),
            (BodyError::UnexpectedEnd, BADLY_FORMED.to_owned()),
            (
                BodyError::InvalidValue {
                    field: "endpoint".into(),
                    pos: 13,
                },
                "Request body contains an invalid value for the \"endpoint\" field (at position 13)"
                    .to_owned(),
            ),
            (
                BodyError::UnknownField("name".into()),
                "Request body contains unknown field \"name\"".to_owned(),
            ),
            (BodyError::NotSingle, NOT_SINGLE.to_owned()),
        ];
        for (err, expected) in cases {
            assert_eq!(err.to_string(), expected);
        }
    }

    #[test]
    fn wrong_scalar_type_reports_position_after_it() {
        assert_eq!(
            msg(r#"{"endpoint":1,"eventTypes":["a"]}"#),
            invalid_value_msg("endpoint", 13)
        );
        assert_eq!(msg(r#"{"eventTypes":"a"}"#), invalid_value_msg("eventTypes", 17));
        assert_eq!(msg(r#"{"endpoint": true}"#), invalid_value_msg("endpoint", 17));
    }

    #[test]
    fn wrong_container_type_reports_position_of_opening_bracket() {
        assert_eq!(msg(r#"{"eventTypes":{}}"#), invalid_value_msg("eventTypes", 15));
        assert_eq!(msg(r#"{"endpoint": ["x"]}"#), invalid_value_msg("endpoint", 14));
    }

    #[test]
    fn bad_list_element_reports_list_field_and_element_position() {
        assert_eq!(
            msg(r#"{"eventTypes":["a",2]}"#),
            invalid_value_msg("eventTypes", 20)
        );
        assert_eq!(
            msg(r#"{"eventTypes":["a",{}]}"#),
            invalid_value_msg("eventTypes", 20)
        );
        assert_eq!(
            msg(r#"{"eventTypes":["a", ["b"], 3]}"#),
            invalid_value_msg("eventTypes", 21)
        );
        assert_eq!(
            msg(r#"{"eventTypes":[false]}"#),
            invalid_value_msg("eventTypes", 20)
        );
    }

    #[test]
    fn syntax_errors_are_badly_formed() {
        assert_eq!(
            msg(r#"{"endpoint":}"#),
            "Request body contains badly-formed JSON (at position 13)"
        );
        assert_eq!(msg(r#"{"endpoint":"https://x""#), BADLY_FORMED);
        assert_eq!(
            message(b"{\"endpoint\":\"a\x01\"}", FIELDS),
            "Request body contains badly-formed JSON (at position 15)"
        );
    }

    #[test]
    fn syntax_is_checked_before_types_and_fields() {
        assert_eq!(
            msg(r#"{"endpoint":1,}"#),
            "Request body contains badly-formed JSON (at position 15)"
        );
        assert_eq!(msg(r#"{"name":1,"endpoint":"x""#), BADLY_FORMED);
        assert_eq!(
            msg(r#"[1,]"#),
            "Request body contains badly-formed JSON (at position 4)"
        );
    }

    #[test]
    fn empty_bodies() {
        assert_eq!(msg(""), EMPTY);
        assert_eq!(msg("  \n "), EMPTY);
        assert_eq!(msg("\t\r\n"), EMPTY);
    }

    #[test]
    fn trailing_data_is_not_single() {
        assert_eq!(
            msg(r#"{"endpoint":"https://x","eventTypes":["a"]}{}"#),
            NOT_SINGLE
        );
        assert_eq!(msg("{} x"), NOT_SINGLE);
        assert_eq!(msg(r#"{"endpoint":"x"}{"#), NOT_SINGLE);
        assert_eq!(msg("null null"), NOT_SINGLE);
        assert_eq!(msg("nullx"), NOT_SINGLE);
        assert!(decode_object(b"{} \r\n\t", FIELDS).is_ok());
    }

    #[test]
    fn member_errors_come_before_trailing_data() {
        assert_eq!(msg(r#"{"endpoint":1}{}"#), invalid_value_msg("endpoint", 13));
        assert_eq!(
            msg(r#"{"name":1} x"#),
            "Request body contains unknown field \"name\""
        );
        assert_eq!(msg("[] x"), invalid_value_msg("", 1));
    }

    #[test]
    fn unknown_fields() {
        assert_eq!(
            msg(r#"{"endpoint":"https://x","name":"x","eventTypes":["a"]}"#),
            "Request body contains unknown field \"name\""
        );
        // The key is reported as written, after unescaping.
        assert_eq!(
            msg(r#"{"Na\u006de":1}"#),
            "Request body contains unknown field \"Name\""
        );
        // Unknown keys are rejected whatever their value's type.
        assert_eq!(
            msg(r#"{"extra":{"deep":[1,2]}}"#),
            "Request body contains unknown field \"extra\""
        );
        assert_eq!(
            msg(r#"{"extra":null}"#),
            "Request body contains unknown field \"extra\""
        );
    }

    #[test]
    fn unknown_field_names_are_quoted_like_go() {
        assert_eq!(
            msg(r#"{"a\nb\"c\\":1}"#),
            r#"Request body contains unknown field "a\nb\"c\\""#
        );
        assert_eq!(
            msg(r#"{"\u001b\u007f\u00a0\u200b":1}"#),
            r#"Request body contains unknown field "\x1b\x7f\u00a0\u200b""#
        );
        assert_eq!(
            message(b"{\"\xff\xc3\xa9\":1}", FIELDS),
            "Request body contains unknown field \"\u{FFFD}é\""
        );
    }

    #[test]
    fn first_offending_member_wins() {
        assert_eq!(
            msg(r#"{"name":"x","endpoint":1}"#),
            "Request body contains unknown field \"name\""
        );
        assert_eq!(
            msg(r#"{"endpoint":1,"name":"x"}"#),
            invalid_value_msg("endpoint", 13)
        );
        assert_eq!(
            msg(r#"{"eventTypes":["a",1],"endpoint":2}"#),
            invalid_value_msg("eventTypes", 20)
        );
        // An earlier bad value is not excused by a later good duplicate.
        assert_eq!(
            msg(r#"{"endpoint":1,"endpoint":"x"}"#),
            invalid_value_msg("endpoint", 13)
        );
    }

    #[test]
    fn non_object_top_level_values() {
        assert_eq!(msg("[]"), invalid_value_msg("", 1));
        assert_eq!(msg(r#""x""#), invalid_value_msg("", 3));
        assert_eq!(msg("  5"), invalid_value_msg("", 3));
        assert_eq!(msg("true"), invalid_value_msg("", 4));
        assert_eq!(msg(" [1, 2]"), invalid_value_msg("", 2));
        assert_eq!(msg("01"), invalid_value_msg("", 1));
        assert_eq!(
            decode_object(b"[]", FIELDS),
            Err(BodyError::InvalidValue {
                field: String::new(),
                pos: 1
            })
        );
    }

    #[test]
    fn valid_body_decodes() {
        let d = decode(r#"{"endpoint":"https://x","secret":"s3cr\u0065t","eventTypes":["a","b"]}"#);
        assert_eq!(d.string("endpoint"), Some("https://x"));
        assert_eq!(d.string("secret"), Some("s3cret"));
        assert_eq!(
            d.string_list("eventTypes"),
            Some(&["a".to_owned(), "b".to_owned()][..])
        );
    }

    #[test]
    fn keys_match_case_insensitively() {
        let d = decode(r#"{"Endpoint":"https://x","EVENTTYPES":["A"]}"#);
        assert_eq!(d.string("endpoint"), Some("https://x"));
        assert_eq!(d.string_list("eventTypes"), Some(&["A".to_owned()][..]));
        // Values are stored under the canonical name only.
        assert_eq!(d.string("Endpoint"), None);
    }

    #[test]
    fn case_folding_follows_unicode_simple_folds() {
        assert!(fold_eq("eventTypes", "EVENTTYPES"));
        // KELVIN SIGN and LONG S fold to ASCII letters in Go too.
        assert!(fold_eq("key", "\u{212A}ey"));
        assert!(fold_eq("secret", "\u{17F}ecret"));
        assert!(fold_eq("σς", "ΣΣ"));
        // Dotted capital I has no simple fold to ASCII i.
        assert!(!fold_eq("i", "\u{130}"));
        assert!(!fold_eq("secret", "secrets"));
        let d = decode("{\"\u{17F}ecret\":\"x\"}");
        assert_eq!(d.string("secret"), Some("x"));
    }

    #[test]
    fn exact_name_match_is_preferred_over_folded() {
        const CLASHING: &[FieldSpec] = &[
            FieldSpec {
                name: "id",
                kind: FieldKind::Integer,
            },
            FieldSpec {
                name: "ID",
                kind: FieldKind::String,
            },
        ];
        let d = match decode_object(br#"{"ID":"x","iD":1}"#, CLASHING) {
            Ok(d) => d,
            Err(err) => panic!("{err}"),
        };
        assert_eq!(d.string("ID"), Some("x"));
        assert_eq!(d.integer("id"), Some(1));
    }

    #[test]
    fn duplicates_last_wins_and_null_unsets() {
        assert_eq!(
            decode(r#"{"endpoint":"a","endpoint":"b"}"#).string("endpoint"),
            Some("b")
        );
        assert_eq!(
            decode(r#"{"endpoint":"a","endpoint":null}"#).string("endpoint"),
            None
        );
        assert_eq!(
            decode(r#"{"endpoint":null,"endpoint":"c"}"#).string("endpoint"),
            Some("c")
        );
        assert_eq!(
            decode(r#"{"eventTypes":["a","b"],"EventTypes":["c"]}"#).string_list("eventTypes"),
            Some(&["c".to_owned()][..])
        );
    }

    #[test]
    fn null_body_and_null_values() {
        let d = decode("null");
        assert_eq!(d, Decoded::default());
        let d = decode(" null ");
        assert_eq!(d.string("endpoint"), None);
        let d = decode(r#"{"endpoint":null,"secret":null,"eventTypes":null}"#);
        assert_eq!(d, Decoded::default());
        let d = decode("{}");
        assert_eq!(d.string_list("eventTypes"), None);
    }

    #[test]
    fn string_list_elements() {
        assert_eq!(
            decode(r#"{"eventTypes":["a",null]}"#).string_list("eventTypes"),
            Some(&["a".to_owned(), String::new()][..])
        );
        assert_eq!(
            decode(r#"{"eventTypes":[]}"#).string_list("eventTypes"),
            Some(&[][..])
        );
    }

    #[test]
    fn integer_fields() {
        let int = |body: &str| match decode_object(body.as_bytes(), WITH_INT) {
            Ok(d) => d.integer("maxRetries"),
            Err(err) => panic!("{body:?}: {err}"),
        };
        assert_eq!(int(r#"{"maxRetries":5}"#), Some(5));
        assert_eq!(int(r#"{"maxRetries":-0}"#), Some(0));
        assert_eq!(int(r#"{"MAXRETRIES":-12}"#), Some(-12));
        assert_eq!(int(r#"{"maxRetries":9223372036854775807}"#), Some(i64::MAX));
        assert_eq!(int(r#"{"maxRetries":-9223372036854775808}"#), Some(i64::MIN));
        assert_eq!(int(r#"{"maxRetries":3,"maxRetries":null}"#), None);
        assert_eq!(int(r#"{"maxRetries":null}"#), None);
    }

    #[test]
    fn integer_fields_reject_non_integers_at_end_of_value() {
        let cases = [
            (r#"{"maxRetries":1.5}"#, 17),
            (r#"{"maxRetries":1.0}"#, 17),
            (r#"{"maxRetries":1e2}"#, 17),
            (r#"{"maxRetries":1e400}"#, 19),
            (r#"{"maxRetries":9223372036854775808}"#, 33),
            (r#"{"maxRetries":-9223372036854775809}"#, 34),
            (r#"{"maxRetries":12345678901234567890}"#, 34),
            (r#"{"maxRetries":"5"}"#, 17),
            (r#"{"maxRetries":true}"#, 18),
            (r#"{"maxRetries":[5]}"#, 15),
        ];
        for (body, pos) in cases {
            assert_eq!(
                message(body.as_bytes(), WITH_INT),
                invalid_value_msg("maxRetries", pos),
                "{body}"
            );
        }
    }

    #[test]
    fn take_moves_values_out() {
        let mut d = decode(r#"{"endpoint":"e","eventTypes":["x"]}"#);
        assert_eq!(d.take("endpoint"), Some(Value::String("e".into())));
        assert_eq!(d.take("endpoint"), None);
        assert_eq!(d.take("eventTypes"), Some(Value::StringList(vec!["x".into()])));
        assert_eq!(d, Decoded::default());
    }

    #[test]
    fn accessors_ignore_kind_mismatch() {
        let d = decode(r#"{"endpoint":"e","eventTypes":["x"]}"#);
        assert_eq!(d.string_list("endpoint"), None);
        assert_eq!(d.integer("endpoint"), None);
        assert_eq!(d.string("eventTypes"), None);
        assert_eq!(d.string("nope"), None);
    }

    #[test]
    fn unknown_field_payload_with_large_nesting_is_parsed_then_rejected() {
        let mut body = br#"{"endpoint":"x","payload":"#.to_vec();
        body.extend(nested_arrays(MAX_DEPTH - 1));
        body.push(b'}');
        on_small_stack(move || {
            assert_eq!(
                decode_object(&body, FIELDS),
                Err(BodyError::UnknownField("payload".into()))
            );
        });
    }

    // ---- go_quote ----

    #[test]
    fn go_quote_matches_strconv_quote() {
        let cases = [
            ("", r#""""#),
            ("plain", r#""plain""#),
            ("q\"b\\", r#""q\"b\\""#),
            ("\u{7}\u{8}\u{c}\n\r\t\u{b}", r#""\a\b\f\n\r\t\v""#),
            ("\0\u{1}\u{1f}\u{7f}", r#""\x00\x01\x1f\x7f""#),
            ("\u{80}\u{9f}\u{a0}\u{ad}", r#""\u0080\u009f\u00a0\u00ad""#),
            ("é¡ÿ中😀\u{FFFD}", "\"é¡ÿ中😀\u{FFFD}\""),
            ("\u{2028}\u{3000}\u{feff}", r#""\u2028\u3000\ufeff""#),
            ("\u{e000}\u{fdd0}\u{ffff}", r#""\ue000\ufdd0\uffff""#),
            (
                "\u{F0000}\u{E0001}\u{1FFFF}",
                r#""\U000f0000\U000e0001\U0001ffff""#,
            ),
            // Variation selectors are marks, hence printable.
            ("\u{E0100}", "\"\u{E0100}\""),
        ];
        for (input, expected) in cases {
            assert_eq!(go_quote(input), expected, "{input:?}");
        }
    }

    #[test]
    fn syntax_error_conversion() {
        assert_eq!(
            BodyError::from(SyntaxError::Invalid { pos: 3 }),
            BodyError::BadlyFormed { pos: 3 }
        );
        assert_eq!(
            BodyError::from(SyntaxError::UnexpectedEnd),
            BodyError::UnexpectedEnd
        );
    }
}
