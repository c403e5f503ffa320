//! SMART launch state, with no I/O: which scopes to ask for, the authorize URL, PKCE, and the
//! launches in flight between `/ehr/launch` and `/ehr/callback`, given `now`.
//!
//! A pending launch is found by its `state` (256 random bits, kept only as a SHA-256 hash),
//! works once, and expires after the configured time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Never hold more than this many launches in flight; the oldest go first.
const MAX_PENDING: usize = 10_000;

/// The parts of `{iss}/.well-known/smart-configuration` Rounds uses.
#[derive(Debug, Clone, Deserialize)]
pub struct SmartConfiguration {
    /// The OpenID issuer, for checking the id_token.
    pub issuer: Option<String>,
    pub jwks_uri: Option<String>,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
}

/// SMART scopes come in two syntaxes: v2 (`patient/Patient.rs`) and v1 (`patient/Patient.read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeVersion {
    V2,
    V1,
}

impl SmartConfiguration {
    /// v2 unless the server advertises v1 permissions only.
    pub fn scope_version(&self) -> ScopeVersion {
        let caps = |c: &str| self.capabilities.iter().any(|x| x == c);
        let v2_scope = self.scopes_supported.iter().any(|s| {
            s.contains('/') && !s.ends_with(".read") && !s.ends_with(".write") && !s.ends_with(".*")
        });
        let v1_scope = self
            .scopes_supported
            .iter()
            .any(|s| s.ends_with(".read") || s.ends_with(".write"));
        if caps("permission-v2") || v2_scope {
            ScopeVersion::V2
        } else if caps("permission-v1") || v1_scope {
            ScopeVersion::V1
        } else {
            ScopeVersion::V2
        }
    }

    /// False only when the server lists its PKCE methods and S256 is not among them.
    pub fn supports_s256(&self) -> bool {
        self.code_challenge_methods_supported.is_empty()
            || self
                .code_challenge_methods_supported
                .iter()
                .any(|m| m == "S256")
    }
}

/// How the launch began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchKind {
    /// From the patient's chart: the EHR passes `launch`.
    Ehr,
    /// From Rounds: the EHR asks the clinician for the patient and encounter.
    Standalone,
}

impl LaunchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LaunchKind::Ehr => "ehr",
            LaunchKind::Standalone => "standalone",
        }
    }
}

/// The scopes to request.
pub fn scopes(kind: LaunchKind, version: ScopeVersion, write_back: bool) -> String {
    let mut s: Vec<&str> = match kind {
        LaunchKind::Ehr => vec!["launch"],
        LaunchKind::Standalone => vec!["launch/patient", "launch/encounter"],
    };
    s.extend(["openid", "fhirUser"]);
    match version {
        ScopeVersion::V2 => {
            s.extend(["patient/Patient.rs", "patient/Encounter.rs"]);
            if write_back {
                s.push("patient/Encounter.u");
            }
        }
        ScopeVersion::V1 => {
            s.extend(["patient/Patient.read", "patient/Encounter.read"]);
            if write_back {
                s.push("patient/Encounter.write");
            }
        }
    }
    s.join(" ")
}

/// True when the granted scopes allow updating the Encounter.
pub fn may_update_encounter(granted: &str) -> bool {
    granted.split(' ').any(|s| {
        let Some(rest) = s
            .strip_prefix("patient/Encounter.")
            .or_else(|| s.strip_prefix("patient/*."))
        else {
            return false;
        };
        rest == "write"
            || rest == "*"
            || (rest.chars().all(|c| "cruds".contains(c)) && rest.contains('u'))
    })
}

/// A launch between its redirect to the EHR and the EHR's answer.
#[derive(Debug, Clone)]
pub struct Pending {
    pub iss: String,
    pub kind: LaunchKind,
    pub code_verifier: String,
    pub nonce: String,
    pub config: SmartConfiguration,
    expires: Instant,
}

/// What `begin` hands back: the values that go into the authorize URL.
#[derive(Debug, Clone)]
pub struct Started {
    pub state: String,
    pub code_challenge: String,
    pub nonce: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// Not a state Rounds issued, or already used.
    Unknown,
    /// Issued, but the launch took too long.
    Expired,
}

/// Launches in flight, by hash of `state`.
#[derive(Debug, Default)]
pub struct PendingLaunches {
    live: HashMap<[u8; 32], Pending>,
}

fn random_b64(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

fn digest(state: &str) -> [u8; 32] {
    Sha256::digest(state.as_bytes()).into()
}

/// The S256 code challenge of a verifier (RFC 7636).
pub fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl PendingLaunches {
    pub fn begin(
        &mut self,
        iss: &str,
        kind: LaunchKind,
        config: SmartConfiguration,
        ttl: Duration,
        now: Instant,
    ) -> Started {
        self.live.retain(|_, p| p.expires > now);
        if self.live.len() >= MAX_PENDING
            && let Some(oldest) = self
                .live
                .iter()
                .min_by_key(|(_, p)| p.expires)
                .map(|(k, _)| *k)
        {
            self.live.remove(&oldest);
        }
        let state = random_b64(32);
        let code_verifier = random_b64(32);
        let nonce = random_b64(16);
        let started = Started {
            state: state.clone(),
            code_challenge: code_challenge(&code_verifier),
            nonce: nonce.clone(),
        };
        self.live.insert(
            digest(&state),
            Pending {
                iss: iss.to_owned(),
                kind,
                code_verifier,
                nonce,
                config,
                expires: now + ttl,
            },
        );
        started
    }

    /// Spends a state: its launch, once, if it has not expired.
    pub fn take(&mut self, state: &str, now: Instant) -> Result<Pending, StateError> {
        if state.is_empty() || state.len() > 256 {
            return Err(StateError::Unknown);
        }
        let pending = self
            .live
            .remove(&digest(state))
            .ok_or(StateError::Unknown)?;
        if pending.expires <= now {
            return Err(StateError::Expired);
        }
        Ok(pending)
    }
}

/// The authorization request (SMART App Launch 2.x, with PKCE S256 and `aud` = `iss`).
pub fn authorize_url(
    pending_iss: &str,
    config: &SmartConfiguration,
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
    launch: Option<&str>,
    started: &Started,
) -> Result<url::Url, url::ParseError> {
    let mut url = url::Url::parse(&config.authorization_endpoint)?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", scope)
            .append_pair("state", &started.state)
            .append_pair("nonce", &started.nonce)
            .append_pair("aud", pending_iss)
            .append_pair("code_challenge", &started.code_challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(launch) = launch {
            q.append_pair("launch", launch);
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(caps: &[&str], scopes: &[&str]) -> SmartConfiguration {
        SmartConfiguration {
            issuer: None,
            jwks_uri: None,
            authorization_endpoint: "https://ehr.example/auth?x=1".into(),
            token_endpoint: "https://ehr.example/token".into(),
            capabilities: caps.iter().map(|s| s.to_string()).collect(),
            scopes_supported: scopes.iter().map(|s| s.to_string()).collect(),
            code_challenge_methods_supported: vec!["S256".into()],
        }
    }

    #[test]
    fn v1_scopes_only_for_servers_that_advertise_v1_only() {
        assert_eq!(
            config(&["permission-v2"], &[]).scope_version(),
            ScopeVersion::V2
        );
        assert_eq!(
            config(&["permission-v1", "permission-v2"], &[]).scope_version(),
            ScopeVersion::V2
        );
        assert_eq!(
            config(&["permission-v1"], &[]).scope_version(),
            ScopeVersion::V1
        );
        assert_eq!(
            config(&[], &["patient/Patient.read", "launch"]).scope_version(),
            ScopeVersion::V1
        );
        assert_eq!(
            config(&[], &["patient/Patient.rs"]).scope_version(),
            ScopeVersion::V2
        );
        assert_eq!(config(&[], &[]).scope_version(), ScopeVersion::V2);
    }

    #[test]
    fn the_scopes_the_issue_names() {
        assert_eq!(
            scopes(LaunchKind::Ehr, ScopeVersion::V2, false),
            "launch openid fhirUser patient/Patient.rs patient/Encounter.rs"
        );
        assert_eq!(
            scopes(LaunchKind::Ehr, ScopeVersion::V1, false),
            "launch openid fhirUser patient/Patient.read patient/Encounter.read"
        );
        assert_eq!(
            scopes(LaunchKind::Standalone, ScopeVersion::V2, true),
            "launch/patient launch/encounter openid fhirUser patient/Patient.rs patient/Encounter.rs patient/Encounter.u"
        );
    }

    #[test]
    fn encounter_update_scopes() {
        assert!(may_update_encounter("openid patient/Encounter.u"));
        assert!(may_update_encounter("patient/Encounter.cruds"));
        assert!(may_update_encounter("patient/Encounter.write"));
        assert!(may_update_encounter("patient/*.*"));
        assert!(!may_update_encounter(
            "patient/Encounter.rs patient/Patient.write"
        ));
    }

    #[test]
    fn a_state_works_once_and_is_long() {
        let mut p = PendingLaunches::default();
        let now = Instant::now();
        let s = p.begin(
            "https://ehr/fhir",
            LaunchKind::Ehr,
            config(&[], &[]),
            Duration::from_secs(60),
            now,
        );
        // 32 random bytes: 256 bits, well over the 122 the spec asks for.
        assert_eq!(URL_SAFE_NO_PAD.decode(&s.state).unwrap().len(), 32);
        let taken = p.take(&s.state, now).unwrap();
        assert_eq!(code_challenge(&taken.code_verifier), s.code_challenge);
        assert_eq!(taken.nonce, s.nonce);
        assert_eq!(p.take(&s.state, now).unwrap_err(), StateError::Unknown);
        assert_eq!(p.take("forged", now).unwrap_err(), StateError::Unknown);
    }

    #[test]
    fn a_slow_launch_expires() {
        let mut p = PendingLaunches::default();
        let now = Instant::now();
        let s = p.begin(
            "i",
            LaunchKind::Ehr,
            config(&[], &[]),
            Duration::from_secs(60),
            now,
        );
        assert_eq!(
            p.take(&s.state, now + Duration::from_secs(61)).unwrap_err(),
            StateError::Expired
        );
    }

    #[test]
    fn pkce_matches_rfc_7636() {
        // RFC 7636 appendix B.
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn authorize_url_carries_every_parameter() {
        let c = config(&["permission-v2"], &[]);
        let mut p = PendingLaunches::default();
        let s = p.begin(
            "https://ehr/fhir",
            LaunchKind::Ehr,
            c.clone(),
            Duration::from_secs(60),
            Instant::now(),
        );
        let url = authorize_url(
            "https://ehr/fhir",
            &c,
            "rounds",
            "https://r/ehr/callback",
            "launch openid",
            Some("L1"),
            &s,
        )
        .unwrap();
        let q: HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["x"], "1");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["aud"], "https://ehr/fhir");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], s.code_challenge);
        assert_eq!(q["state"], s.state);
        assert_eq!(q["launch"], "L1");
        assert_eq!(q["redirect_uri"], "https://r/ehr/callback");
    }
}
