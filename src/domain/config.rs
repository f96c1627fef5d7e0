//! Webhook configs: the API object and the validation of insert/update bodies (spec §2.3, §2.4).

use serde::Serialize;

use crate::domain::endpoint::validate_endpoint;
use crate::domain::secret::{validate_secret, SecretError};
use crate::domain::time::Timestamp;

/// A registered endpoint, serialised with exactly the keys and order of spec §2.3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub endpoint: String,
    pub secret: String,
    pub event_types: Vec<String>,
    pub id: String,
    pub active: bool,
    #[serde(serialize_with = "null_as_empty")]
    pub name: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The secret replaced by the last secret change, while its overlap may last (spec §2.5).
    /// Never serialised: the API returns only the current secret.
    #[serde(skip)]
    pub previous_secret: Option<PreviousSecret>,
}

/// A replaced secret that keeps signing, after the current one, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    pub secret: String,
    pub expires_at: Timestamp,
}

impl PreviousSecret {
    /// From the two nullable columns; None unless both are set.
    pub fn from_columns(secret: Option<String>, expires_at: Option<Timestamp>) -> Option<Self> {
        Some(PreviousSecret {
            secret: secret?,
            expires_at: expires_at?,
        })
    }

    /// The secret, when an attempt starting at `now` still signs with it.
    pub fn signing_at(&self, now: Timestamp) -> Option<&str> {
        signing_previous_secret(Some(&self.secret), Some(self.expires_at), now)
    }
}

/// A previous secret and the end of its overlap, as two nullable columns: the secret when an
/// attempt starting at `now` still signs with it (the overlap ends at `expires_at`, excluded).
pub fn signing_previous_secret(
    secret: Option<&str>,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Option<&str> {
    secret.filter(|_| expires_at.is_some_and(|end| now < end))
}

impl Config {
    /// The previous secret an attempt starting at `now` also signs with (spec §4.6).
    pub fn previous_secret_at(&self, now: Timestamp) -> Option<&str> {
        self.previous_secret.as_ref().and_then(|p| p.signing_at(now))
    }
}

fn null_as_empty<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_deref().unwrap_or(""))
}

/// A validated insert/update body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigInput {
    pub endpoint: String,
    /// `None`: generate on insert, keep the current one on update.
    pub secret: Option<String>,
    pub event_types: Vec<String>,
}

/// What is wrong with a supplied secret, as the secret-change route words it (§2.5); the
/// config routes prefix it with `invalid config: `.
pub fn secret_problem(e: &SecretError) -> String {
    match e {
        SecretError::WrongSize => e.to_string(),
        SecretError::IllegalBase64 { .. } => format!("secret should be base64 encoded: {e}"),
    }
}

/// The validation failures of spec §2.4, in checking order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid config: endpoint should be a valid url")]
    Endpoint,
    #[error("invalid config: {}", secret_problem(.0))]
    Secret(SecretError),
    #[error("invalid config: eventTypes should be filled")]
    EventTypes,
}

impl ConfigInput {
    /// Checks endpoint, then secret, then event types; lower-cases the event types.
    pub fn validate(
        endpoint: Option<&str>,
        secret: Option<&str>,
        event_types: Option<&[String]>,
    ) -> Result<Self, ConfigError> {
        let endpoint = endpoint.unwrap_or_default();
        if !validate_endpoint(endpoint) {
            return Err(ConfigError::Endpoint);
        }
        let secret = match secret {
            None | Some("") => None,
            Some(s) => {
                validate_secret(s).map_err(ConfigError::Secret)?;
                Some(s.to_owned())
            }
        };
        let event_types = event_types.unwrap_or_default();
        // A NUL could not be stored as sent (spec §3): such a type is refused like an empty one.
        if event_types.is_empty() || event_types.iter().any(|t| t.is_empty() || t.contains('\0')) {
            return Err(ConfigError::EventTypes);
        }
        Ok(ConfigInput {
            endpoint: endpoint.to_owned(),
            secret,
            event_types: event_types
                .iter()
                .map(|t| crate::domain::event::to_lower(t))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn an_event_type_with_nul_is_refused() {
        let t = types(&["a\0"]);
        assert!(matches!(
            ConfigInput::validate(Some("https://example.com/hook"), None, Some(&t)),
            Err(ConfigError::EventTypes)
        ));
    }

    #[test]
    fn lower_cases_event_types_and_keeps_order() {
        let t = types(&[
            "LEDGER.Committed_Transactions",
            "Ä.b",
            "ledger.committed_transactions",
        ]);
        let c = ConfigInput::validate(Some("https://example.com/hook"), None, Some(&t));
        let c = c.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.event_types,
            [
                "ledger.committed_transactions",
                "ä.b",
                "ledger.committed_transactions"
            ]
        );
        assert_eq!(c.secret, None);
    }

    #[test]
    fn messages_follow_the_spec_and_its_order() {
        let a = types(&["a"]);
        let err = |e: Option<&str>, s: Option<&str>, t: Option<&[String]>| {
            ConfigInput::validate(e, s, t).err().map(|e| e.to_string())
        };
        let endpoint = Some("invalid config: endpoint should be a valid url".to_owned());
        for bad in ["", "example.com", "ftp://x", "https://", " http://x"] {
            assert_eq!(err(Some(bad), Some("invalid"), None), endpoint, "{bad:?}");
        }
        assert_eq!(err(None, None, Some(&a)), endpoint);
        assert_eq!(
            err(Some("https://x"), Some("invalid"), None).as_deref(),
            Some("invalid config: secret should be base64 encoded: illegal base64 data at input byte 4")
        );
        assert_eq!(
            err(
                Some("https://x"),
                Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRY="),
                Some(&a)
            )
            .as_deref(),
            Some("invalid config: decoded secret should be of size 24")
        );
        let filled = Some("invalid config: eventTypes should be filled".to_owned());
        assert_eq!(err(Some("https://x"), None, Some(&[])), filled);
        assert_eq!(err(Some("https://x"), None, Some(&types(&[""]))), filled);
        assert_eq!(err(Some("https://x"), Some(""), None), filled);
        assert_eq!(
            err(
                Some("https://x"),
                Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"),
                Some(&a)
            ),
            None
        );
    }

    #[test]
    fn serialises_keys_in_contract_order() {
        let t =
            Timestamp::parse_storage_text("2024-05-01T10:00:00.100000Z").unwrap_or_else(|e| panic!("{e}"));
        let c = Config {
            endpoint: "https://x".into(),
            secret: "s".into(),
            event_types: types(&["a"]),
            id: "i".into(),
            active: true,
            name: None,
            created_at: t,
            updated_at: t,
            previous_secret: Some(PreviousSecret {
                secret: "old".into(),
                expires_at: t,
            }),
        };
        // The previous secret stays out of the JSON.
        assert_eq!(
            serde_json::to_string(&c).unwrap_or_default(),
            r#"{"endpoint":"https://x","secret":"s","eventTypes":["a"],"id":"i","active":true,"name":"","createdAt":"2024-05-01T10:00:00.1Z","updatedAt":"2024-05-01T10:00:00.1Z"}"#
        );
    }

    #[test]
    fn a_previous_secret_signs_until_it_expires() {
        let at = |s: &str| Timestamp::parse_storage_text(s).unwrap_or_else(|e| panic!("{e}"));
        let expires_at = at("2024-05-01T10:00:00.000000Z");
        let p = PreviousSecret {
            secret: "old".into(),
            expires_at,
        };
        assert_eq!(p.signing_at(at("2024-05-01T09:59:59.999999Z")), Some("old"));
        assert_eq!(p.signing_at(expires_at), None);
        assert_eq!(p.signing_at(at("2024-05-01T10:00:00.000001Z")), None);
        assert_eq!(
            PreviousSecret::from_columns(Some("old".into()), Some(expires_at)),
            Some(p)
        );
        assert_eq!(PreviousSecret::from_columns(Some("old".into()), None), None);
        assert_eq!(PreviousSecret::from_columns(None, Some(expires_at)), None);
    }
}
