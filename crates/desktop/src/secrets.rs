//! Where the app keeps secrets: the OS keychain, and nowhere else.
//!
//! On Linux that is the Secret Service (GNOME Keyring, KWallet), on macOS the Keychain and
//! on Windows the Credential Manager, all through `keyring`. Each secret is an entry of
//! service [`SERVICE`], named by what it is and which server it belongs to, so signing in
//! to two servers keeps two refresh tokens apart. [`MemoryStore`] exists for tests of the
//! controller; the app itself only ever uses [`Keychain`].

use std::collections::HashMap;
use std::sync::Mutex;

/// The keychain service name of every Rounds secret.
pub const SERVICE: &str = "rounds-desktop";

/// Why the keychain could not be used, in words for the clinician.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SecretError(pub String);

/// A place for secrets. Calls may block (D-Bus round trips): call them off the async
/// runtime's worker threads.
pub trait SecretStore: Send + Sync + 'static {
    /// The secret named `name`, if there is one.
    fn get(&self, name: &str) -> Result<Option<String>, SecretError>;
    /// Stores `value` under `name`, replacing any previous one.
    fn set(&self, name: &str, value: &str) -> Result<(), SecretError>;
    /// Forgets `name`; forgetting what is not there is not an error.
    fn delete(&self, name: &str) -> Result<(), SecretError>;
    /// What this store is, for the settings screen ("the GNOME keyring", ...).
    fn describe(&self) -> &'static str;
}

/// The OS keychain.
#[derive(Debug, Default, Clone, Copy)]
pub struct Keychain;

fn unavailable(e: keyring::Error) -> SecretError {
    SecretError(format!(
        "The system keychain is not available ({e}). Rounds keeps your sign-in there and \
         nowhere else; unlock the keychain or ask IT to enable it, then sign in again."
    ))
}

impl Keychain {
    fn entry(name: &str) -> Result<keyring::Entry, SecretError> {
        keyring::Entry::new(SERVICE, name).map_err(unavailable)
    }
}

impl SecretStore for Keychain {
    fn get(&self, name: &str) -> Result<Option<String>, SecretError> {
        match Self::entry(name)?.get_password() {
            Ok(v) => Ok(Some(v)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn set(&self, name: &str, value: &str) -> Result<(), SecretError> {
        Self::entry(name)?.set_password(value).map_err(unavailable)
    }

    fn delete(&self, name: &str) -> Result<(), SecretError> {
        match Self::entry(name)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn describe(&self) -> &'static str {
        if cfg!(target_os = "macos") {
            "the macOS Keychain"
        } else if cfg!(windows) {
            "the Windows Credential Manager"
        } else {
            "the system keyring (Secret Service)"
        }
    }
}

/// Secrets in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    values: Mutex<HashMap<String, String>>,
}

impl SecretStore for MemoryStore {
    fn get(&self, name: &str) -> Result<Option<String>, SecretError> {
        Ok(self
            .values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned())
    }

    fn set(&self, name: &str, value: &str) -> Result<(), SecretError> {
        self.values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), value.to_owned());
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<(), SecretError> {
        self.values
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(())
    }

    fn describe(&self) -> &'static str {
        "memory (tests only)"
    }
}

/// The keychain name of the refresh token for `server`.
pub fn refresh_token_name(server: &url::Url) -> String {
    format!("refresh-token@{}", server.as_str().trim_end_matches('/'))
}
