//! Webhook endpoint URLs: validating one a client registers, checking a `GET /configs?endpoint=`
//! filter, and showing one in logs.
//!
//! Clients were written against a Go service, and what it accepted was decided by Go's
//! `net/url.Parse`. Two consequences shape this module:
//!
//! * The filter check ([`is_url_reference`]) is a port of `url.Parse`'s acceptance, Go 1.26
//!   defaults included (bracketed hosts must be IPv6 addresses; an `http`/`https` host may hold
//!   only one colon, the port's).
//! * The endpoint check ([`validate_endpoint`]) requires that Go parse *and* adds what the Go
//!   service lacked (an absolute `http(s)` URL with a host). It also requires the `url` crate to
//!   parse the URL, since that is what delivers to it; but the `url` crate is never the judge
//!   alone, because its WHATWG parser trims, strips tabs and newlines, and repairs (`http:x`,
//!   `http:///path`) what Go refuses.

use std::net::Ipv6Addr;

use url::Url;

/// Shown in logs in place of an endpoint that cannot be parsed (or safely shortened).
pub const INVALID_ENDPOINT: &str = "<invalid endpoint>";

/// Whether `s` may be registered as a webhook endpoint: an absolute `http` or `https` URL (scheme
/// in any case) with a non-empty host; no surrounding whitespace; no ASCII control character or
/// space anywhere; every `%` followed by two hex digits (query and fragment included, unlike Go);
/// a numeric port up to 65535 (an empty port, `http://x:/`, means the default, as in Go); an IPv6
/// literal only when it is a well-formed address without zone. The string is stored as sent, so
/// nothing is normalised here.
pub fn validate_endpoint(s: &str) -> bool {
    if s.trim() != s {
        return false;
    }
    if s.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return false;
    }
    if unescape(s.as_bytes(), Escapes::Plain).is_err() {
        return false;
    }

    let Ok(parsed) = go_parse(s) else {
        return false;
    };
    let scheme_ok = parsed.scheme.eq_ignore_ascii_case("http") || parsed.scheme.eq_ignore_ascii_case("https");
    let Some(authority) = parsed.authority.filter(|_| scheme_ok) else {
        return false;
    };
    if authority.host.is_empty() {
        return false;
    }
    if let Some(literal) = authority.host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        // Go also takes a zone (`[fe80::1%25eth0]`), but nothing downstream can dial one.
        if literal.parse::<Ipv6Addr>().is_err() {
            return false;
        }
    }
    if let Some(port) = authority.port.filter(|p| !p.is_empty()) {
        if port.parse::<u16>().is_err() {
            return false;
        }
    }

    Url::parse(s).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty())
    })
}

/// Whether Go's `url.Parse` accepts `s`. Relative references count (`foo`, `/a/b`,
/// `example.com`, even `""`), as the Go service's `GET /configs` filter accepted them.
///
/// Refused, as Go refuses them: an ASCII control character before the fragment; a `%` not
/// followed by two hex digits in the userinfo, host, path or fragment; a non-numeric port; a
/// bracketed host that is not an IPv6 address or a `[` elsewhere in the host; a host character
/// outside what Go allows; a second colon in an `http(s)` host; a colon in the first path segment
/// of a reference without scheme (`:foo`, `a b:c`).
///
/// Accepted, as Go accepts them: anything in the query (`?a=%zz`) or after `scheme:` without
/// `/` (`mailto:%zz`), which Go keeps unparsed, and control characters inside the fragment, which
/// Go checks only for `%` escapes.
pub fn is_url_reference(s: &str) -> bool {
    go_parse(s).is_ok()
}

/// `s` without userinfo, query and fragment, for logs and traces (`https://host:8443/hook`).
/// Uses the `url` crate's serialisation, so the result is normalised (lower-case scheme and host,
/// percent-encoded path) and never carries a control character. Anything unparsable, and opaque
/// URLs like `mailto:user:pw@host` whose whole rest could hide credentials, give
/// [`INVALID_ENDPOINT`].
pub fn redact_endpoint(s: &str) -> String {
    let Ok(mut url) = Url::parse(s) else {
        return INVALID_ENDPOINT.to_owned();
    };
    if url.cannot_be_a_base() {
        return INVALID_ENDPOINT.to_owned();
    }
    // Both fail only for URLs that cannot carry credentials at all (no host, `file:`).
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    if !url.username().is_empty() || url.password().is_some() {
        return INVALID_ENDPOINT.to_owned();
    }
    url.into()
}

/// Why Go's `url.Parse` refuses a string. Only tests look at the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GoUrlError {
    ControlCharacter,
    MissingScheme,
    ColonInFirstSegment,
    InvalidEscape,
    InvalidHostCharacter,
    InvalidPort,
    MissingCloseBracket,
    InvalidIpLiteral,
    InvalidUserinfo,
}

/// The parts of a Go-parsed URL that the checks above need, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GoUrl<'a> {
    /// As written; empty when there is none.
    scheme: &'a str,
    /// Present when the URL has `//`, even an empty one (`http:///path`).
    authority: Option<Authority<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Authority<'a> {
    /// Brackets included for an IP literal; still percent-encoded.
    host: &'a str,
    /// The digits after the port colon (possibly none); `None` without a colon.
    port: Option<&'a str>,
}

/// Port of Go's `url.Parse` (1.26), keeping only the acceptance decision and the authority.
fn go_parse(raw: &str) -> Result<GoUrl<'_>, GoUrlError> {
    let (before_fragment, fragment) = match raw.split_once('#') {
        Some((url, fragment)) => (url, Some(fragment)),
        None => (raw, None),
    };
    let parsed = go_parse_without_fragment(before_fragment)?;
    if let Some(fragment) = fragment {
        unescape(fragment.as_bytes(), Escapes::Plain)?;
    }
    Ok(parsed)
}

fn go_parse_without_fragment(raw: &str) -> Result<GoUrl<'_>, GoUrlError> {
    if raw.bytes().any(|b| b < b' ' || b == 0x7f) {
        return Err(GoUrlError::ControlCharacter);
    }
    let mut parsed = GoUrl {
        scheme: "",
        authority: None,
    };
    if raw == "*" {
        return Ok(parsed);
    }

    let (scheme, rest) = split_scheme(raw)?;
    parsed.scheme = scheme;
    // Go never looks inside the query.
    let rest = rest.split_once('?').map_or(rest, |(before, _)| before);

    if !rest.starts_with('/') {
        if !scheme.is_empty() {
            // `scheme:opaque`, kept as is by Go.
            return Ok(parsed);
        }
        // RFC 3986 §4.2: otherwise `a:b` would be read as a scheme.
        let first_segment = rest.split_once('/').map_or(rest, |(first, _)| first);
        if first_segment.contains(':') {
            return Err(GoUrlError::ColonInFirstSegment);
        }
    }

    let mut path = rest;
    if (!scheme.is_empty() || !rest.starts_with("///")) && rest.starts_with("//") {
        let after_slashes = &rest[2..];
        let (authority, after_authority) = after_slashes
            .find('/')
            .map_or((after_slashes, ""), |i| after_slashes.split_at(i));
        let lower_scheme = scheme.to_ascii_lowercase();
        parsed.authority = Some(parse_authority(&lower_scheme, authority)?);
        path = after_authority;
    }
    unescape(path.as_bytes(), Escapes::Plain)?;
    Ok(parsed)
}

/// Go's `getScheme`: `[a-zA-Z][a-zA-Z0-9+.-]*` before the first `:`, if the string starts so.
fn split_scheme(raw: &str) -> Result<(&str, &str), GoUrlError> {
    for (i, b) in raw.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i == 0 => return Ok(("", raw)),
            b'0'..=b'9' | b'+' | b'-' | b'.' => {}
            b':' if i == 0 => return Err(GoUrlError::MissingScheme),
            b':' => return Ok((&raw[..i], &raw[i + 1..])),
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

/// Go's `parseAuthority`: the userinfo ends at the last `@`; the host is checked first.
fn parse_authority<'a>(scheme: &str, authority: &'a str) -> Result<Authority<'a>, GoUrlError> {
    let (userinfo, host_port) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let parsed = parse_host(scheme, host_port)?;
    if let Some(userinfo) = userinfo {
        if !userinfo.bytes().all(is_userinfo_byte) {
            return Err(GoUrlError::InvalidUserinfo);
        }
        // Go unescapes user and password separately; an escape cannot span the `:`, so checking
        // the whole is the same.
        unescape(userinfo.as_bytes(), Escapes::Plain)?;
    }
    Ok(parsed)
}

/// Go's `parseHost` with the Go 1.26 rules.
fn parse_host<'a>(scheme: &str, host: &'a str) -> Result<Authority<'a>, GoUrlError> {
    match host.rfind('[') {
        Some(0) => {
            let close = host.rfind(']').ok_or(GoUrlError::MissingCloseBracket)?;
            let colon_port = &host[close + 1..];
            let port = optional_port(colon_port)?;
            let literal = &host[1..close];
            // RFC 6874: `%25` starts a zone, which has its own escaping rules.
            let unescaped = match literal.find("%25") {
                Some(zone) => {
                    let mut address = unescape(&literal.as_bytes()[..zone], Escapes::Host)?;
                    address.extend(unescape(&literal.as_bytes()[zone..], Escapes::Zone)?);
                    address
                }
                None => unescape(literal.as_bytes(), Escapes::Host)?,
            };
            if !is_go_ipv6_literal(&unescaped) {
                return Err(GoUrlError::InvalidIpLiteral);
            }
            Ok(Authority {
                host: &host[..=close],
                port,
            })
        }
        Some(_) => Err(GoUrlError::InvalidIpLiteral),
        None => {
            let mut authority = Authority { host, port: None };
            if let Some(first_colon) = host.find(':') {
                // Go 1.26 (`urlstrictcolons=1`): for http(s) the first colon starts the port, so
                // `a:b:80` fails; other schemes keep the old last-colon rule (database URLs list
                // several hosts).
                let colon = if scheme == "http" || scheme == "https" {
                    first_colon
                } else {
                    host.rfind(':').unwrap_or(first_colon)
                };
                authority = Authority {
                    host: &host[..colon],
                    port: optional_port(&host[colon..])?,
                };
            }
            unescape(host.as_bytes(), Escapes::Host)?;
            Ok(authority)
        }
    }
}

/// Go's `validOptionalPort` (`""` or `:` followed by digits, no range check), returning the
/// digits.
fn optional_port(colon_port: &str) -> Result<Option<&str>, GoUrlError> {
    if colon_port.is_empty() {
        return Ok(None);
    }
    match colon_port.strip_prefix(':') {
        Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(digits)),
        _ => Err(GoUrlError::InvalidPort),
    }
}

/// Go's check after unescaping a bracketed host: `netip.ParseAddr` must succeed and not give an
/// IPv4 address. A zone after `%` is accepted if non-empty.
fn is_go_ipv6_literal(unescaped: &[u8]) -> bool {
    // `netip.ParseAddr` picks the family from the first `.`, `:` or `%`: only `:` leads to IPv6.
    if unescaped.iter().find(|b| matches!(b, b'.' | b':' | b'%')) != Some(&b':') {
        return false;
    }
    let (address, zone) = match unescaped.iter().position(|&b| b == b'%') {
        Some(i) => (&unescaped[..i], Some(&unescaped[i + 1..])),
        None => (unescaped, None),
    };
    if zone.is_some_and(<[u8]>::is_empty) {
        return false;
    }
    std::str::from_utf8(address).is_ok_and(|a| a.parse::<Ipv6Addr>().is_ok())
}

/// Which of Go's `unescape` modes applies: the host and zone modes also police raw characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escapes {
    /// Path, fragment, userinfo: only `%XX` well-formedness.
    Plain,
    /// Host: ASCII may not be escaped (except `%25`), raw ASCII limited to host characters.
    Host,
    /// IPv6 zone: escapes may only produce host characters, a space or `%`.
    Zone,
}

/// Go's `unescape`: the decoded bytes, or why Go refuses them.
fn unescape(s: &[u8], mode: Escapes) -> Result<Vec<u8>, GoUrlError> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if b != b'%' {
            if mode != Escapes::Plain && b.is_ascii() && !is_host_byte(b) {
                return Err(GoUrlError::InvalidHostCharacter);
            }
            out.push(b);
            i += 1;
            continue;
        }
        let high = s.get(i + 1).copied().and_then(hex_value);
        let low = s.get(i + 2).copied().and_then(hex_value);
        let (Some(high), Some(low)) = (high, low) else {
            return Err(GoUrlError::InvalidEscape);
        };
        let value = (high << 4) | low;
        let escaped_percent = value == b'%';
        let refused = match mode {
            Escapes::Plain => false,
            // RFC 3986 §3.2.2: a host escapes only non-ASCII bytes.
            Escapes::Host => value.is_ascii() && !escaped_percent,
            Escapes::Zone => !escaped_percent && value != b' ' && !is_host_byte(value),
        };
        if refused {
            return Err(GoUrlError::InvalidEscape);
        }
        out.push(value);
        i += 3;
    }
    Ok(out)
}

/// Bytes Go's `shouldEscape(c, encodeHost)` leaves alone: unreserved, sub-delims, and `:[]<>"`
/// which Go tolerates because it keeps `[ipv6]:port` in the host.
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:[]<>\"".contains(&b)
}

/// Go's `validUserinfo`: RFC 3986 userinfo characters plus `%` and `@`, ASCII only.
fn is_userinfo_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&b)
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_accepts_the_spec_examples() {
        for s in [
            "https://example.com/hook",
            "HTTP://Example.com:8080/a?b=c#d",
            "http://[::1]:9000/h",
            "http://127.0.0.1:1/",
            "https://user:pass@host/x",
            "http://x/%41",
        ] {
            assert!(validate_endpoint(s), "{s}");
        }
    }

    #[test]
    fn endpoint_refuses_the_spec_examples() {
        for s in [
            "example.com",
            "ftp://x",
            "https://",
            " http://x",
            "http://x ",
            "http://exa mple.com",
            "http://x/%zz",
            "http://x:abc/",
            "http://[::1/",
            "http://[zz]/",
            "http:///path",
            "http:x",
        ] {
            assert!(!validate_endpoint(s), "{s}");
        }
    }

    #[test]
    fn endpoint_accepts_other_ordinary_urls() {
        for s in [
            "http://x",
            "https://example.com",
            "hTTpS://EXAMPLE.com/Hook",
            "https://example.com:443/a/b/c?x=1&y=%20#frag",
            "https://example.com/a%2Fb",
            "http://x:/",
            "http://x:0/",
            "http://x:65535/",
            "http://x:00080/",
            "http://[2001:db8::1]/",
            "http://[::ffff:10.0.0.1]:80/",
            "https://user@host/",
            "https://us%40er:p%3Ass@host/",
            "https://b\u{fc}cher.example/",
            "https://example.com/\u{e9}t\u{e9}",
            "http://under_score.example.com/",
            "http://2130706433/",
        ] {
            assert!(validate_endpoint(s), "{s}");
        }
    }

    #[test]
    fn endpoint_refuses_what_the_url_crate_would_repair() {
        for s in [
            "",
            "http://x/\t",
            "http://x/a\tb",
            "http://x/\n",
            "\nhttp://x/",
            "http://x/\u{7f}",
            "http://x/#a b",
            "http://x/#a\u{1}",
            "http://x/?a=%zz",
            "http://x/#%zz",
            "http://x/%4",
            "http://x/%",
            "\u{a0}http://x/",
            "http://x/\u{3000}",
            "http:\\\\x\\",
            "http://x\\y/",
            "http:/x",
            "//x/path",
            "http://:80/",
            "http://user@/x",
            "http://x:65536/",
            "http://x:99999999999/",
            "http://a:1:2/",
            "http://::1/",
            "http://[::1]x/",
            "http://[fe80::1%25eth0]/",
            "http://[127.0.0.1]/",
            "http://[]/",
            "http://exa{mple.com/",
            "http://exa<mple.com/",
            "http://ex%41mple.com/",
            "http://us er@x/",
            "http://\u{fc}@x/",
            "mailto:a@example.com",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "ws://x/",
            "httpx://x/",
        ] {
            assert!(!validate_endpoint(s), "{s:?}");
        }
    }

    #[test]
    fn reference_accepts_relative_and_odd_but_go_valid_strings() {
        for s in [
            "",
            "*",
            "foo",
            "/a/b",
            "example.com",
            "example.com:8080/x",
            "a:b",
            "mailto:%zz",
            "./a:b",
            "a/b:c",
            "///x:abc",
            "//host/path",
            "//host:80",
            "http://x:65536",
            "http://x:",
            "http://x",
            "http:///path",
            "https://",
            "ftp://x",
            "http:x",
            "http://x/?a=%zz",
            "http://x/?a=b?c",
            "http://x/#a\u{1}",
            "http://x/#a b",
            "http://x/a b",
            "http://[::1]:80",
            "http://[::ffff:127.0.0.1]/",
            "http://[fe80::1%25en0]/",
            "http://[fe80::1%25en%200]/",
            "http://[fe80::1%25%41]/",
            "http://ex%C3%A9.com/",
            "http://b\u{fc}cher.example/",
            "http://x<y>/",
            "http://a!$&'()*+,;=b/",
            "foo://a:1:2/",
            "postgres://h1:5432,h2:5433/db",
            "http://u:p@x/",
            "http://a@b@c/",
            "http://u%20:p%40@x/",
            "HTTP://X:8080/",
        ] {
            assert_eq!(go_parse(s).map(|_| ()), Ok(()), "{s:?}");
            assert!(is_url_reference(s), "{s:?}");
        }
    }

    #[test]
    fn reference_refuses_what_go_refuses() {
        use GoUrlError::*;
        for (s, why) in [
            ("http://x\u{1}", ControlCharacter),
            ("\u{7f}", ControlCharacter),
            ("http://x/\n", ControlCharacter),
            ("a\tb", ControlCharacter),
            ("http://x/?a=\r", ControlCharacter),
            (":foo", MissingScheme),
            ("://x", MissingScheme),
            ("1a:b", ColonInFirstSegment),
            ("a b:c", ColonInFirstSegment),
            ("_x:y/z", ColonInFirstSegment),
            ("%zz", InvalidEscape),
            ("%4", InvalidEscape),
            ("%", InvalidEscape),
            ("http://x/%zz", InvalidEscape),
            ("http://x/%g0", InvalidEscape),
            ("http://x/#%zz", InvalidEscape),
            ("http://us%zzer@x/", InvalidEscape),
            ("http://x:abc", InvalidPort),
            ("http://x:80a/", InvalidPort),
            ("http://a:1:2/", InvalidPort),
            ("http://::1/", InvalidPort),
            ("//x:abc", InvalidPort),
            ("http://[::1]x/", InvalidPort),
            ("http://[::1]:8a/", InvalidPort),
            ("http://[::1", MissingCloseBracket),
            ("http://[::1/", MissingCloseBracket),
            ("http://[zz]/", InvalidIpLiteral),
            ("http://[]/", InvalidIpLiteral),
            ("http://[127.0.0.1]/", InvalidIpLiteral),
            ("http://[fe80::1%25]/", InvalidIpLiteral),
            ("http://[%25en0]/", InvalidIpLiteral),
            ("http://x[::1]/", InvalidIpLiteral),
            ("http://[::1][::2]/", InvalidIpLiteral),
            ("http://[::1%eth0]/", InvalidEscape),
            ("http://[fe80::1%25%0A]/", InvalidEscape),
            ("http://[fe80::1%25a%C3%A9]/", InvalidEscape),
            ("http://ex%41mple.com/", InvalidEscape),
            ("http://exa mple.com/", InvalidHostCharacter),
            ("http://exa{mple.com/", InvalidHostCharacter),
            ("http://x\\y/", InvalidHostCharacter),
            ("http://x|y/", InvalidHostCharacter),
            ("http://[fe80::1%25a|b]/", InvalidHostCharacter),
            ("http://us er@x/", InvalidUserinfo),
            ("http://\u{fc}@x/", InvalidUserinfo),
        ] {
            assert_eq!(go_parse(s), Err(why), "{s:?}");
            assert!(!is_url_reference(s), "{s:?}");
        }
    }

    #[test]
    fn authority_split_follows_go() {
        let authority = |s| go_parse(s).ok().and_then(|u| u.authority);
        assert_eq!(
            authority("http://u:p@[::1]:9000/x"),
            Some(Authority {
                host: "[::1]",
                port: Some("9000")
            })
        );
        assert_eq!(
            authority("http://h:/x"),
            Some(Authority {
                host: "h",
                port: Some("")
            })
        );
        assert_eq!(
            authority("foo://a:1:2/"),
            Some(Authority {
                host: "a:1",
                port: Some("2")
            })
        );
        assert_eq!(authority("http:///p"), Some(Authority { host: "", port: None }));
        assert_eq!(authority("http:x"), None);
        assert_eq!(authority("/x"), None);
    }

    #[test]
    fn ipv6_literal_rules_match_netip() {
        for ok in [
            "::1",
            "::",
            "2001:db8::1",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::ffff:1.2.3.4",
            "::1.2.3.4",
            "fe80::1%eth0",
            "fe80::1%25",
            "0000:0000::0001",
        ] {
            assert!(is_go_ipv6_literal(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "1.2.3.4",
            "1.2.3.4%x",
            "%x",
            "fe80::1%",
            ":::",
            "1::2::3",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7:8::",
            "12345::",
            "::ffff:01.2.3.4",
            "::ffff:1.2.3",
            "::g",
        ] {
            assert!(!is_go_ipv6_literal(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn unescape_decodes_like_go() {
        assert_eq!(
            unescape(b"a%41%c3%A9", Escapes::Plain),
            Ok(b"aA\xc3\xa9".to_vec())
        );
        assert_eq!(unescape(b"h%C3%A9", Escapes::Host), Ok(b"h\xc3\xa9".to_vec()));
        assert_eq!(unescape(b"a%25b", Escapes::Host), Ok(b"a%b".to_vec()));
        assert_eq!(unescape(b"%25en%200", Escapes::Zone), Ok(b"%en 0".to_vec()));
        assert_eq!(unescape(b"%7e", Escapes::Host), Err(GoUrlError::InvalidEscape));
        assert_eq!(unescape(b"%7e", Escapes::Plain), Ok(b"~".to_vec()));
    }

    #[test]
    fn redacts_userinfo_query_and_fragment() {
        for (input, want) in [
            ("https://user:pass@host/x?token=abc#frag", "https://host/x"),
            ("HTTP://Example.com:8080/a?b=c#d", "http://example.com:8080/a"),
            ("http://[::1]:9000/h?x=1", "http://[::1]:9000/h"),
            ("https://user@host", "https://host/"),
            ("https://host:443/a%20b/", "https://host/a%20b/"),
            ("http://u:p%40ss@host/x", "http://host/x"),
            ("http://a@b@c/", "http://c/"),
            ("https://example.com/hook", "https://example.com/hook"),
        ] {
            assert_eq!(redact_endpoint(input), want, "{input}");
        }
    }

    #[test]
    fn redaction_never_leaks_from_odd_input() {
        for input in [
            "",
            "not a url",
            "user:pass@host/x",
            "http://user:pass@/x",
            "mailto:user:secret@host",
            "http://[::1/",
        ] {
            assert_eq!(redact_endpoint(input), INVALID_ENDPOINT, "{input}");
        }
        // The url crate drops tabs and newlines; the result is a single clean line.
        let cleaned = redact_endpoint("http://user:secret@host/a\n\tb?q=secret");
        assert_eq!(cleaned, "http://host/ab");
        // Backslashes act as slashes for http, so this userinfo is found and dropped too.
        assert_eq!(redact_endpoint("http:\\\\user:secret@host\\x"), "http://host/x");
    }
}
