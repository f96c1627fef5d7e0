//! Static API keys (`--auth-api-keys`, spec §11): each item is the key itself or `sha256:<hex>` of
//! it. Both are kept as SHA-256 digests, so every comparison is between two 32-byte digests, in
//! constant time, and a plain key's length never shows in the timing either.

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::cli::SecretString;

pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

impl ApiKeys {
    /// The `sha256:` items were checked for 64 hex digits when the flags were parsed; an item
    /// that still fails to decode is kept as a plain key rather than dropped.
    pub fn new(items: &[SecretString]) -> ApiKeys {
        let digests = items
            .iter()
            .map(|item| {
                item.0
                    .strip_prefix("sha256:")
                    .and_then(decode_hex)
                    .unwrap_or_else(|| Sha256::digest(item.0.as_bytes()).into())
            })
            .collect();
        ApiKeys { digests }
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether `credential` is one of the keys. Every key is compared, whatever matched, so
    /// the time taken does not tell which one (or how many) did.
    pub fn accepts(&self, credential: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        let mut found = Choice::from(0);
        for key in &self.digests {
            found |= key.ct_eq(&digest);
        }
        found.into()
    }
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let digit = |b: u8| char::from(b).to_digit(16);
        let (hi, lo) = (digit(pair[0])?, digit(pair[1])?);
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(items: &[&str]) -> ApiKeys {
        ApiKeys::new(
            &items
                .iter()
                .map(|s| SecretString((*s).to_owned()))
                .collect::<Vec<_>>(),
        )
    }

    /// `printf %s hashed-key | sha256sum`
    const HASHED_KEY_DIGEST: &str = "a4ae87b73fa5645e6aee415a6f72be4dcbd99d057a7b40cb1b867c181d179260";

    #[test]
    fn plain_and_hashed_keys_are_accepted() {
        let digest = format!("sha256:{}", hex_of("hashed-key"));
        let k = keys(&["plain-key", &digest]);
        assert_eq!(k.len(), 2);
        assert!(k.accepts("plain-key"));
        assert!(k.accepts("hashed-key"));
    }

    #[test]
    fn near_misses_and_the_digest_itself_are_refused() {
        let hex = hex_of("hashed-key");
        let digest = format!("sha256:{hex}");
        let k = keys(&["plain-key", &digest]);
        for wrong in [
            "",
            "plain-key ",
            "plain-ke",
            "Plain-key",
            "hashed-key\n",
            &digest,
            &hex,
        ] {
            assert!(!k.accepts(wrong), "{wrong:?}");
        }
        assert!(!keys(&[]).accepts(""));
    }

    #[test]
    fn upper_case_hex_digests_work() {
        let digest = format!("sha256:{}", hex_of("k").to_uppercase());
        assert!(keys(&[&digest]).accepts("k"));
    }

    #[test]
    fn an_independent_digest_vector() {
        // Computed with sha256sum, not with the code under test.
        assert_eq!(hex_of("hashed-key"), HASHED_KEY_DIGEST);
    }

    #[test]
    fn debug_shows_no_key_material() {
        let shown = format!("{:?}", keys(&["plain-key"]));
        assert_eq!(shown, "ApiKeys(1 keys)");
    }

    fn hex_of(key: &str) -> String {
        Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}
