//! Text as storage takes it (spec §3): UTF-8 without NUL. PostgreSQL refuses U+0000 in text
//! outright, so a NUL from outside (a record's keys and headers, a response body, an error) is
//! replaced by U+FFFD, identically for both backends.

/// `s` with every NUL replaced by U+FFFD; no copy when there is none.
pub fn storable(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_becomes_the_replacement_character() {
        assert_eq!(storable("a\0b\0".to_owned()), "a\u{FFFD}b\u{FFFD}");
        assert_eq!(storable("plain".to_owned()), "plain");
        assert_eq!(storable(String::new()), "");
    }
}
