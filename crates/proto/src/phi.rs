//! A wrapper for protected health information.
//!
//! Names, phone numbers, emails, chat text and intake answers travel in [`Phi`]. It serializes
//! transparently (the wire format is the bare value) but its `Debug` and `Display` never show
//! the value, so a `tracing` field or a `{:?}` can not leak it into a log.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Phi<T>(T);

impl<T> Phi<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The protected value. Call sites of this method are the places to review for leaks.
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Phi<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Phi<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[phi redacted]")
    }
}

impl<T> fmt::Display for Phi<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[phi redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let name = Phi::new("Ada Lovelace".to_string());
        assert!(!format!("{name:?} {name} {:#?}", Some(&name)).contains("Ada"));
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"Ada Lovelace\"");
        let back: Phi<String> = serde_json::from_str("\"Grace\"").unwrap();
        assert_eq!(back.expose(), "Grace");
    }
}
