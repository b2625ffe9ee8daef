//! A configured secret (the admin token, the external channel's token): read and written like
//! a string in TOML and the environment, but never printed by `Debug`.

use serde::{Deserialize, Serialize};

/// A secret value; empty means "not set".
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(unset)"
        } else {
            "Secret(***)"
        })
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::from("hunter2-admin-token");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{:?}", Secret::default()), "Secret(unset)");
        assert_eq!(s.expose(), "hunter2-admin-token");
    }

    #[test]
    fn reads_and_writes_as_a_plain_string() {
        #[derive(Serialize, Deserialize)]
        struct T {
            token: Secret,
        }
        let t: T = toml::from_str("token = \"abc\"").unwrap();
        assert_eq!(t.token.expose(), "abc");
        assert_eq!(toml::to_string(&t).unwrap().trim(), "token = \"abc\"");
    }
}
