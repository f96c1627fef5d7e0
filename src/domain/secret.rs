//! Webhook secrets: generating one, and validating one a client supplies.
//!
//! A secret is the standard base64 text of 24 random bytes (32 characters). The text itself is the
//! HMAC key (see `signature`), so validation only guards the shape. The API reports the first bad
//! byte exactly as the Go service did (`illegal base64 data at input byte N`), and that offset is
//! an artefact of Go's `encoding/base64` decoder, quirks included. The decoder below therefore
//! mirrors Go's `decodeQuantum` step by step instead of relying on the `base64` crate, whose error
//! offsets and padding rules differ.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;

/// Decoded length of a valid secret.
pub const SECRET_BYTES: usize = 24;

/// Why a supplied secret was refused.
///
/// With `thiserror` (main crate): `#[error("illegal base64 data at input byte {byte}")]` and
/// `#[error("decoded secret should be of size 24")]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretError {
    /// Not valid standard base64; `byte` is Go's 0-based offset into the text as sent, counting
    /// ignored CR/LF.
    IllegalBase64 { byte: usize },
    /// Valid base64 that does not decode to exactly 24 bytes (the empty string included).
    WrongSize,
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IllegalBase64 { byte } => write!(f, "illegal base64 data at input byte {byte}"),
            Self::WrongSize => write!(f, "decoded secret should be of size {SECRET_BYTES}"),
        }
    }
}

impl std::error::Error for SecretError {}

/// A new secret: 24 bytes from the operating system's CSPRNG, standard base64 (32 characters,
/// no padding needed).
///
/// Panics only if the OS cannot provide randomness, like Go's `crypto/rand` which treats that as
/// fatal: there is no safe fallback for a signing key.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    OsRng.fill_bytes(&mut bytes);
    STANDARD.encode(bytes)
}

/// Checks a supplied secret the way the Go service did: `base64.StdEncoding.DecodeString`
/// (standard alphabet, `=` padding mandatory for a partial last group, CR and LF skipped anywhere,
/// non-canonical trailing bits tolerated), then exactly 24 decoded bytes.
///
/// Callers treat an empty secret as "generate one"; given `""` this returns `WrongSize`.
pub fn validate_secret(s: &str) -> Result<(), SecretError> {
    let decoded = decode_go_std(s.as_bytes()).map_err(|byte| SecretError::IllegalBase64 { byte })?;
    if decoded.len() == SECRET_BYTES {
        Ok(())
    } else {
        Err(SecretError::WrongSize)
    }
}

/// Go's `StdEncoding.Decode`: the decoded bytes, or Go's `CorruptInputError` offset.
fn decode_go_std(src: &[u8]) -> Result<Vec<u8>, usize> {
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    // Go's fast paths only handle clean 4- and 8-byte groups and hand everything else to
    // `decodeQuantum`, so calling it alone gives the same bytes and the same errors.
    while si < src.len() {
        si = decode_quantum(src, si, &mut out)?;
    }
    Ok(out)
}

/// Go's `decodeQuantum` for a padded encoding: decodes one group of up to four symbols starting at
/// `si`, appends its bytes and returns where the next group starts.
///
/// The error offsets are Go's, including its odd ones: an unfinished group reports
/// `si - j` (its start only when no CR/LF sits inside it), and a bad second pad reports the byte
/// before it (which is a CR/LF, not the first `=`, when one sits between them).
fn decode_quantum(src: &[u8], mut si: usize, out: &mut Vec<u8>) -> Result<usize, usize> {
    let mut symbols = [0u8; 4];
    let mut len = symbols.len();
    let mut j = 0;
    while j < symbols.len() {
        let Some(&byte) = src.get(si) else {
            if j == 0 {
                return Ok(si);
            }
            // Padding is mandatory, so input may not end inside a group.
            return Err(si - j);
        };
        si += 1;

        if let Some(value) = symbol_value(byte) {
            symbols[j] = value;
            j += 1;
            continue;
        }
        if is_newline(byte) {
            continue;
        }
        if byte != b'=' {
            return Err(si - 1);
        }

        // Padding: it ends the input, only CR/LF may follow.
        match j {
            0 | 1 => return Err(si - 1),
            2 => {
                // Two symbols carry one byte and need `==`; the first `=` is consumed.
                si = skip_newlines(src, si);
                match src.get(si) {
                    None => return Err(src.len()),
                    Some(b'=') => si += 1,
                    Some(_) => return Err(si - 1),
                }
            }
            _ => {}
        }
        si = skip_newlines(src, si);
        if si < src.len() {
            return Err(si);
        }
        len = j;
        break;
    }

    let packed = symbols
        .iter()
        .fold(0u32, |acc, &symbol| (acc << 6) | u32::from(symbol));
    // `len` symbols carry `len - 1` bytes; Go's non-strict mode ignores the leftover bits.
    out.extend_from_slice(&packed.to_be_bytes()[1..len]);
    Ok(si)
}

fn symbol_value(byte: u8) -> Option<u8> {
    match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

fn is_newline(byte: u8) -> bool {
    byte == b'\n' || byte == b'\r'
}

fn skip_newlines(src: &[u8], mut si: usize) -> usize {
    while src.get(si).copied().is_some_and(is_newline) {
        si += 1;
    }
    si
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn illegal(byte: usize) -> Result<(), SecretError> {
        Err(SecretError::IllegalBase64 { byte })
    }

    #[test]
    fn spec_vectors() {
        assert_eq!(validate_secret("invalid"), illegal(4));
        assert_eq!(validate_secret("AAAA!AAA"), illegal(4));
        assert_eq!(validate_secret("a==="), illegal(1));
        assert_eq!(validate_secret("ab="), illegal(3));
        assert_eq!(validate_secret("ab=c"), illegal(2));
        assert_eq!(validate_secret("ab==x"), illegal(4));
        assert_eq!(validate_secret("AAECAwQFBgcICQoLDA0ODxAREhMUFRY-"), illegal(31));
        assert_eq!(
            validate_secret("AAECAwQFBgcICQoLDA0ODxAREhMUFRY="),
            Err(SecretError::WrongSize)
        );
        assert_eq!(
            validate_secret("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGA=="),
            Err(SecretError::WrongSize)
        );
        assert_eq!(validate_secret("AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"), Ok(()));
    }

    #[test]
    fn messages() {
        assert_eq!(
            SecretError::IllegalBase64 { byte: 31 }.to_string(),
            "illegal base64 data at input byte 31"
        );
        assert_eq!(
            SecretError::WrongSize.to_string(),
            "decoded secret should be of size 24"
        );
    }

    #[test]
    fn empty_is_wrong_size() {
        assert_eq!(validate_secret(""), Err(SecretError::WrongSize));
        assert_eq!(validate_secret("\r\n"), Err(SecretError::WrongSize));
    }

    #[test]
    fn generated_secrets_are_32_chars_and_validate() {
        let a = generate_secret();
        let b = generate_secret();
        assert_eq!(a.len(), 32);
        assert!(!a.contains('='));
        assert_eq!(validate_secret(&a), Ok(()));
        assert_eq!(validate_secret(&b), Ok(()));
        assert_ne!(a, b);
    }

    #[test]
    fn newlines_are_skipped_anywhere_but_counted_in_offsets() {
        assert_eq!(validate_secret("AAECAwQFBgcI\r\nCQoLDA0ODxAREhMUFRYX\n"), Ok(()));
        assert_eq!(validate_secret("\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYX"), Ok(()));
        assert_eq!(validate_secret("\r\nAAAA!"), illegal(6));
        assert_eq!(validate_secret("AA\nAA\n!"), illegal(6));
    }

    #[test]
    fn unfinished_group_reports_si_minus_j() {
        assert_eq!(decode_go_std(b"a"), Err(0));
        assert_eq!(decode_go_std(b"AAAAab"), Err(4));
        assert_eq!(decode_go_std(b"AAAAabc"), Err(4));
        // Go subtracts the symbols read, not the CR/LF, so the offset lands inside the group.
        assert_eq!(decode_go_std(b"ab\nc"), Err(1));
        assert_eq!(decode_go_std(b"a\r\n"), Err(2));
        // Trailing newlines after complete groups are fine.
        assert_eq!(decode_go_std(b"AAAA\r\n\r\n"), Ok(vec![0, 0, 0]));
    }

    #[test]
    fn padding_rules() {
        assert_eq!(decode_go_std(b"ab=="), Ok(vec![0x69]));
        assert_eq!(decode_go_std(b"abc="), Ok(vec![0x69, 0xb7]));
        // `=` first or second in a group.
        assert_eq!(decode_go_std(b"="), Err(0));
        assert_eq!(decode_go_std(b"===="), Err(0));
        assert_eq!(decode_go_std(b"AAAA=AAA"), Err(4));
        assert_eq!(decode_go_std(b"AAAAa="), Err(5));
        // Three symbols need one `=`, and nothing may follow it.
        assert_eq!(decode_go_std(b"abc"), Err(0));
        assert_eq!(decode_go_std(b"abc=="), Err(4));
        assert_eq!(decode_go_std(b"abc=x"), Err(4));
        // Two symbols need `==`.
        assert_eq!(decode_go_std(b"ab=x="), Err(2));
        assert_eq!(decode_go_std(b"ab=="), Ok(vec![0x69]));
        assert_eq!(decode_go_std(b"ab===="), Err(4));
        // Data after padding, even a whole group.
        assert_eq!(decode_go_std(b"ab==AAAA"), Err(4));
        assert_eq!(decode_go_std(b"abc=AAAA"), Err(4));
    }

    #[test]
    fn newlines_inside_padding() {
        // Go skips CR/LF between the two `=` and after them.
        assert_eq!(decode_go_std(b"ab=\r\n="), Ok(vec![0x69]));
        assert_eq!(decode_go_std(b"ab=\n="), Ok(vec![0x69]));
        assert_eq!(decode_go_std(b"ab==\r\n"), Ok(vec![0x69]));
        assert_eq!(decode_go_std(b"abc=\n\n"), Ok(vec![0x69, 0xb7]));
        // Missing second `=` after newlines: offset is the input length.
        assert_eq!(decode_go_std(b"ab=\n"), Err(4));
        assert_eq!(decode_go_std(b"ab=\r\n"), Err(5));
        // Wrong byte after newlines: Go reports the byte just before it (here the `\n`).
        assert_eq!(decode_go_std(b"ab=\nc"), Err(3));
        assert_eq!(decode_go_std(b"ab=\r\nc"), Err(4));
        // Data after padding and newlines: its own index.
        assert_eq!(decode_go_std(b"ab==\nx"), Err(5));
        assert_eq!(decode_go_std(b"ab=\n=\nx"), Err(6));
    }

    #[test]
    fn padding_inside_a_secret_is_refused_with_go_offsets() {
        assert_eq!(
            validate_secret("AAECAwQFBgcICQoLDA0ODxAREhMUFRYX\n=="),
            illegal(33)
        );
        assert_eq!(
            validate_secret("AAECAwQFBgcICQ==CQoLDA0ODxAREhMUFRYX"),
            illegal(16)
        );
        assert_eq!(
            validate_secret("ab=\n=AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"),
            illegal(5)
        );
    }

    #[test]
    fn non_ascii_and_url_safe_bytes_are_illegal_at_their_byte_index() {
        assert_eq!(validate_secret("AAAA\u{e9}AAA"), illegal(4));
        assert_eq!(validate_secret("AA\u{e9}A"), illegal(2));
        assert_eq!(validate_secret("AAAA_AAA"), illegal(4));
        assert_eq!(validate_secret("AAAA AAA"), illegal(4));
        assert_eq!(validate_secret("AAAA\tAAA"), illegal(4));
    }

    #[test]
    fn non_canonical_trailing_bits_are_tolerated_like_go() {
        // `ab==` and `ac==` both decode to 0x69: Go's StdEncoding is not strict.
        assert_eq!(decode_go_std(b"ac=="), Ok(vec![0x69]));
        assert_eq!(decode_go_std(b"abd="), Ok(vec![0x69, 0xb7]));
    }

    #[test]
    fn agrees_with_the_base64_crate_on_canonical_input() -> Result<(), base64::DecodeError> {
        let mut rng = StdRng::seed_from_u64(24);
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let text = STANDARD.encode(&bytes);
            assert_eq!(STANDARD.decode(&text)?, bytes);
            assert_eq!(decode_go_std(text.as_bytes()), Ok(bytes.clone()), "{text}");

            // Sprinkle CR/LF anywhere: still the same bytes.
            let mut sprinkled = Vec::new();
            for &b in text.as_bytes() {
                if rng.gen_bool(0.2) {
                    sprinkled.push(if rng.gen() { b'\r' } else { b'\n' });
                }
                sprinkled.push(b);
            }
            if rng.gen() {
                sprinkled.extend_from_slice(b"\r\n");
            }
            assert_eq!(decode_go_std(&sprinkled), Ok(bytes));
        }
        Ok(())
    }
}
