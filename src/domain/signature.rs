//! The `formance-webhook-signature` header value: `v1,` + standard padded base64 of
//! HMAC-SHA256 over `<id>.<timestamp>.<body>`; during a secret overlap (spec §2.5, §4.6) one
//! such signature per secret, newest first, separated by one space (the Standard Webhooks
//! multi-signature form), so a receiver holding either secret verifies the request.
//!
//! Receivers written against the Go service verify with these exact bytes, so two details are
//! load-bearing: the key is the secret string's own bytes (the 32 base64 characters, never
//! decoded), and the timestamp is plain decimal Unix seconds. The body is fed to the MAC in place
//! because this runs for every delivery attempt and bodies can be large.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::digest::Key;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Header prefix naming the signature scheme; the only version there is.
const VERSION_PREFIX: &str = "v1,";

/// `v1,` + 44 characters of base64 for the 32-byte MAC.
const SIGNATURE_LEN: usize = 3 + 44;

/// Signs one request: `v1,<base64(HMAC-SHA256(secret bytes, id + "." + timestamp + "." + body))>`,
/// followed by ` v1,<…>` with `previous` when a replaced secret still signs (the caller passes
/// it only while its overlap lasts). A `previous` equal to `secret` adds nothing.
pub fn sign(secret: &str, previous: Option<&str>, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut digits = [0u8; 20];
    let timestamp = decimal(timestamp, &mut digits);
    let previous = previous.filter(|p| *p != secret);
    let mut header = String::with_capacity(SIGNATURE_LEN * (1 + usize::from(previous.is_some())) + 1);
    push_signature(&mut header, secret, id, timestamp, body);
    if let Some(previous) = previous {
        header.push(' ');
        push_signature(&mut header, previous, id, timestamp, body);
    }
    header
}

fn push_signature(header: &mut String, secret: &str, id: &str, timestamp: &[u8], body: &[u8]) {
    let mut mac = keyed_mac(secret.as_bytes());
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp);
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    header.push_str(VERSION_PREFIX);
    STANDARD.encode_string(tag, header);
}

/// The MAC keyed as RFC 2104 prescribes: keys longer than SHA-256's 64-byte block are hashed
/// first, shorter ones zero-padded. Doing it here yields a block-sized key, which the infallible
/// `KeyInit::new` takes; `new_from_slice` would give the same MAC but returns a `Result` whose
/// error cannot happen, and we would rather not carry an unreachable panic on the hot path.
fn keyed_mac(secret: &[u8]) -> HmacSha256 {
    let mut key = Key::<HmacSha256>::default();
    if secret.len() <= key.len() {
        key[..secret.len()].copy_from_slice(secret);
    } else {
        let digest = Sha256::digest(secret);
        key[..digest.len()].copy_from_slice(&digest);
    }
    <HmacSha256 as hmac::digest::KeyInit>::new(&key)
}

/// Writes `n` in decimal into the end of `buf` and returns the written part; 20 bytes hold
/// `i64::MIN`. Avoids a heap allocation per signature.
fn decimal(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    let mut rest = n.unsigned_abs();
    loop {
        start -= 1;
        // `rest % 10` is a single digit, so the narrowing is lossless.
        buf[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        start -= 1;
        buf[start] = b'-';
    }
    &buf[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";

    #[test]
    fn spec_vector_test_route() {
        let header = sign(
            SECRET,
            None,
            "3b1e6a62-0f6e-4c35-9d2e-1b5a1c0f7d11",
            1_700_000_000,
            br#"{"data":"test"}"#,
        );
        assert_eq!(header, "v1,WjC9Q2cbdLPSi372EC3LSmgxPoSZisW7EDwkpREpjtA=");
        // What a base64-decoded key would produce; the Go service never did that.
        assert_ne!(header, "v1,BEBpgNwntTOjUyqTGmvsrvfCHbO4yuEgDOO/oXh+jvU=");
        assert_eq!(header.len(), SIGNATURE_LEN);
    }

    #[test]
    fn spec_vector_delivery() {
        let body = br#"{"idempotency_key":"","date":"2024-05-01T10:00:00Z","app":"ledger","version":"v2","type":"ledger.committed_transactions","payload":{"b":1,"a":2}}"#;
        assert_eq!(
            sign(
                SECRET,
                None,
                "856209b9-f438-5a5c-8aa4-1d4fdd8d070e",
                1_714_557_600,
                body
            ),
            "v1,ocnbPBQAX5GaUrSPALIaMJTwy7LzRH6ru7qEgjzsiqM="
        );
    }

    #[test]
    fn matches_a_one_shot_mac_over_the_concatenated_message() -> Result<(), hmac::digest::InvalidLength> {
        let body = b"{\"k\":[1,2,3]}\n\x00\xff";
        for (id, ts) in [("a", 0), ("id", -5), ("x.y", i64::MIN), ("", i64::MAX)] {
            let message = [id.as_bytes(), b".", ts.to_string().as_bytes(), b".", body].concat();
            let mut mac = HmacSha256::new_from_slice(SECRET.as_bytes())?;
            mac.update(&message);
            let want = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes().as_slice()));
            assert_eq!(sign(SECRET, None, id, ts, body), want, "{id} {ts}");
        }
        Ok(())
    }

    #[test]
    fn independent_vectors_for_edge_keys_and_timestamps() {
        // Computed with Python's hmac module.
        assert_eq!(
            sign(SECRET, None, "id", -5, b"x"),
            "v1,+9JswUVtwrkWFIiDqMIpsGkJPs+vFZ4SYKRcxazO56w="
        );
        assert_eq!(
            sign(SECRET, None, "id", i64::MIN, b""),
            "v1,i/eSUFYhfVwKHlgfIucE9zRoj83PI+GcOg2mHD0sRTY="
        );
        assert_eq!(
            sign(&"k".repeat(100), None, "id", 0, b""),
            "v1,d5PnnUvlZ8ub8r7h2tRcpM+cOAj+01CaBSFSslsgHQk="
        );
        assert_eq!(
            sign("", None, "", 0, b""),
            "v1,A6f2nN49Jdcn19OedbQNRKGG/vX+magIZxOQBQRhZBM="
        );
    }

    #[test]
    fn key_preparation_matches_new_from_slice_for_every_length_class(
    ) -> Result<(), hmac::digest::InvalidLength> {
        for len in [0, 1, 32, 63, 64, 65, 128, 1000] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut ours = keyed_mac(&key);
            let mut reference = HmacSha256::new_from_slice(&key)?;
            ours.update(b"message");
            reference.update(b"message");
            assert_eq!(
                ours.finalize().into_bytes(),
                reference.finalize().into_bytes(),
                "key length {len}"
            );
        }
        Ok(())
    }

    #[test]
    fn decimal_matches_to_string() {
        let mut buf = [0u8; 20];
        for n in [0, 7, -7, 10, 1_700_000_000, -1_000, i64::MAX, i64::MIN] {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes(), "{n}");
        }
    }

    /// The second secret of the overlap vectors: base64 of bytes 24..47.
    const OTHER: &str = "GBkaGxwdHh8gISIjJCUmJygpKissLS4v";

    #[test]
    fn overlap_signs_with_both_secrets_newest_first() {
        let (id, ts, body) = (
            "3b1e6a62-0f6e-4c35-9d2e-1b5a1c0f7d11",
            1_700_000_000,
            br#"{"data":"test"}"#,
        );
        // Each part is the spec vector of its secret (the second computed with Python's hmac).
        assert_eq!(
            sign(SECRET, Some(OTHER), id, ts, body),
            "v1,WjC9Q2cbdLPSi372EC3LSmgxPoSZisW7EDwkpREpjtA= v1,bA0SBRz0s8/8qSbipaM59INMT0v8+KtIeTe8UOD9WIw="
        );
        assert_eq!(
            sign(OTHER, Some(SECRET), id, ts, body),
            "v1,bA0SBRz0s8/8qSbipaM59INMT0v8+KtIeTe8UOD9WIw= v1,WjC9Q2cbdLPSi372EC3LSmgxPoSZisW7EDwkpREpjtA="
        );
        assert_eq!(
            sign(SECRET, Some(SECRET), id, ts, body),
            sign(SECRET, None, id, ts, body)
        );
        assert_eq!(
            sign(SECRET, Some(OTHER), id, ts, body).len(),
            2 * SIGNATURE_LEN + 1
        );
    }

    #[test]
    fn signature_depends_on_every_part() {
        let base = sign(SECRET, None, "id", 1, b"body");
        assert_ne!(
            base,
            sign("AAECAwQFBgcICQoLDA0ODxAREhMUFRYY", None, "id", 1, b"body")
        );
        assert_ne!(base, sign(SECRET, None, "ie", 1, b"body"));
        assert_ne!(base, sign(SECRET, None, "id", 2, b"body"));
        assert_ne!(base, sign(SECRET, None, "id", 1, b"bodY"));
        // The dots separate the parts: moving a character across one changes the result.
        assert_ne!(
            sign(SECRET, None, "id1", 1, b"x"),
            sign(SECRET, None, "id", 11, b"x")
        );
    }
}
