//! Boolean flag and environment values, spelled as Go's `strconv.ParseBool` spells them.
//!
//! Deployments written for the Go service set values like `ALLOW_PRIVATE_ENDPOINTS=T` or `=1`;
//! they must keep working, and anything Go refused (`yes`, `on`, `tRuE`, ` true`) must keep
//! failing rather than silently meaning something.

use std::fmt;

/// The value is not one of the twelve accepted spellings.
///
/// With `thiserror` (main crate): `#[error("parsing {input:?}: invalid syntax")]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoolError {
    pub input: String,
}

impl fmt::Display for BoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Go's text minus its `strconv.ParseBool: ` prefix; Rust's `{:?}` quoting matches Go's
        // `strconv.Quote` for printable input.
        write!(f, "parsing {:?}: invalid syntax", self.input)
    }
}

impl std::error::Error for BoolError {}

/// Accepts exactly `1 t T true TRUE True` and `0 f F false FALSE False`; no trimming.
pub fn parse_bool(s: &str) -> Result<bool, BoolError> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(BoolError { input: s.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_go_spellings() {
        for s in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_bool(s), Ok(true), "{s}");
        }
        for s in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_bool(s), Ok(false), "{s}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for s in [
            "",
            " ",
            "tRUE",
            "TRue",
            "fALSE",
            "yes",
            "no",
            "on",
            "off",
            "y",
            "n",
            "2",
            "-1",
            "01",
            "10",
            " true",
            "true ",
            "true\n",
            "t ",
            "ｔｒｕｅ",
            "\u{0}",
        ] {
            assert_eq!(parse_bool(s), Err(BoolError { input: s.to_owned() }), "{s:?}");
        }
    }

    #[test]
    fn message_names_the_input() {
        let err = BoolError {
            input: "yes".to_owned(),
        };
        assert_eq!(err.to_string(), r#"parsing "yes": invalid syntax"#);
    }
}
