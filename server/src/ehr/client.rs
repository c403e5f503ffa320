//! The EHR's HTTP APIs as Rounds uses them: SMART discovery, the token endpoint
//! (`client_secret_basic`), the id_token (checked with the `openidconnect` crate against the
//! EHR's JWKS) and FHIR R4 reads and updates with the access token.
//!
//! Errors carry a [`Failure`] and a cause without URLs: FHIR URLs hold patient ids.

use std::str::FromStr;

use openidconnect::core::{
    CoreGenderClaim, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
};
use openidconnect::{AdditionalClaims, ClientId, ClientSecret, IdToken, IssuerUrl, Nonce};
use serde::{Deserialize, Serialize};

use super::launch::{Pending, SmartConfiguration};
use super::{Failure, LaunchError};
use crate::config::EhrIssuer;

const FHIR_JSON: &str = "application/fhir+json";

fn unreachable(failure: Failure, e: reqwest::Error) -> LaunchError {
    LaunchError::new(failure).because(e.without_url())
}

/// Reads `{iss}/.well-known/smart-configuration`.
pub async fn discover(
    http: &reqwest::Client,
    iss: &str,
) -> Result<SmartConfiguration, LaunchError> {
    let url = format!(
        "{}/.well-known/smart-configuration",
        iss.trim_end_matches('/')
    );
    let response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| unreachable(Failure::EhrUnreachable, e))?;
    if !response.status().is_success() {
        return Err(LaunchError::new(Failure::BadDiscovery).because(format!(
            "smart-configuration answered {}",
            response.status()
        )));
    }
    let config: SmartConfiguration = response
        .json()
        .await
        .map_err(|e| LaunchError::new(Failure::BadDiscovery).because(e.without_url()))?;
    if config.issuer.is_none() || config.jwks_uri.is_none() {
        return Err(LaunchError::new(Failure::BadDiscovery).because(
            "smart-configuration has no issuer or jwks_uri, needed for sign-in with openid",
        ));
    }
    Ok(config)
}

/// The token endpoint's answer, with the SMART launch context.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
    pub id_token: Option<String>,
    pub patient: Option<String>,
    pub encounter: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OAuthError {
    error: String,
}

/// Trades the code for tokens, as a confidential client (`client_secret_basic`, RFC 6749 §2.3.1).
pub async fn exchange_code(
    http: &reqwest::Client,
    issuer: &EhrIssuer,
    pending: &Pending,
    code: &str,
    redirect_uri: &str,
) -> Result<TokenResponse, LaunchError> {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let response = http
        .post(&pending.config.token_endpoint)
        .basic_auth(
            encode(&issuer.client_id),
            Some(encode(&issuer.client_secret)),
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", pending.code_verifier.as_str()),
        ])
        .send()
        .await
        .map_err(|e| unreachable(Failure::EhrUnreachable, e))?;
    let status = response.status();
    if status.is_success() {
        return response
            .json()
            .await
            .map_err(|e| LaunchError::new(Failure::TokenFailed).because(e.without_url()));
    }
    let error = response
        .json::<OAuthError>()
        .await
        .map(|e| e.error)
        .unwrap_or_default();
    let failure = if error == "invalid_grant" {
        Failure::CodeRejected
    } else {
        Failure::TokenFailed
    };
    Err(LaunchError::new(failure).because(format!("token endpoint answered {status} {error}")))
}

/// The SMART claim Rounds reads beyond the standard ones.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct SmartClaims {
    #[serde(rename = "fhirUser")]
    pub fhir_user: Option<String>,
}

impl AdditionalClaims for SmartClaims {}

type SmartIdToken = IdToken<
    SmartClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// Who signed in at the EHR, from a verified id_token.
#[derive(Debug, Clone)]
pub struct Identity {
    pub fhir_user: Option<String>,
    pub email: Option<String>,
}

/// Checks the id_token: signature (the EHR's JWKS), issuer, audience (our client id), expiry
/// and the nonce of this launch.
pub async fn verify_id_token(
    http: &reqwest::Client,
    issuer: &EhrIssuer,
    pending: &Pending,
    id_token: Option<&str>,
) -> Result<Identity, LaunchError> {
    let invalid = |why: String| LaunchError::new(Failure::IdTokenInvalid).because(why);
    let Some(raw) = id_token else {
        return Err(invalid("the token response has no id_token".into()));
    };
    let (Some(iss), Some(jwks_uri)) = (&pending.config.issuer, &pending.config.jwks_uri) else {
        return Err(LaunchError::new(Failure::BadDiscovery).because("no issuer or jwks_uri"));
    };
    let keys: CoreJsonWebKeySet = http
        .get(jwks_uri)
        .send()
        .await
        .map_err(|e| unreachable(Failure::EhrUnreachable, e))?
        .json()
        .await
        .map_err(|e| LaunchError::new(Failure::BadDiscovery).because(e.without_url()))?;
    let issuer_url = IssuerUrl::new(iss.clone()).map_err(|e| invalid(e.to_string()))?;
    let verifier = CoreIdTokenVerifier::new_confidential_client(
        ClientId::new(issuer.client_id.clone()),
        ClientSecret::new(issuer.client_secret.clone()),
        issuer_url,
        keys,
    );
    let token =
        SmartIdToken::from_str(raw).map_err(|e| invalid(format!("malformed id_token: {e}")))?;
    let claims = token
        .claims(&verifier, &Nonce::new(pending.nonce.clone()))
        .map_err(|e| invalid(format!("id_token refused: {e}")))?;
    Ok(Identity {
        fhir_user: claims.additional_claims().fhir_user.clone(),
        email: claims.email().map(|e| e.as_str().to_owned()),
    })
}

/// FHIR R4 reads and updates with the launch's access token.
pub struct Fhir<'a> {
    pub http: &'a reqwest::Client,
    pub base: &'a str,
    pub token: &'a str,
}

impl Fhir<'_> {
    fn url(&self, kind: &str, id: &str) -> Result<url::Url, LaunchError> {
        let mut url = url::Url::parse(&format!("{}/", self.base.trim_end_matches('/')))
            .map_err(|e| LaunchError::new(Failure::BadDiscovery).because(e))?;
        url.path_segments_mut()
            .map_err(|_| LaunchError::new(Failure::BadDiscovery).because("iss cannot be a base"))?
            .pop_if_empty()
            .push(kind)
            .push(id);
        Ok(url)
    }

    fn check(status: reqwest::StatusCode, what: &str) -> Result<(), LaunchError> {
        match status.as_u16() {
            200..=299 => Ok(()),
            401 | 403 => Err(LaunchError::new(Failure::FhirUnauthorized)
                .because(format!("{what} answered {status}"))),
            404 | 410 => Err(LaunchError::new(Failure::MissingContext)
                .because(format!("{what} answered {status}"))),
            _ => {
                Err(LaunchError::new(Failure::FhirFailed)
                    .because(format!("{what} answered {status}")))
            }
        }
    }

    pub async fn read(&self, kind: &str, id: &str) -> Result<serde_json::Value, LaunchError> {
        let response = self
            .http
            .get(self.url(kind, id)?)
            .bearer_auth(self.token)
            .header(reqwest::header::ACCEPT, FHIR_JSON)
            .send()
            .await
            .map_err(|e| unreachable(Failure::FhirUnreachable, e))?;
        Self::check(response.status(), &format!("reading the {kind}"))?;
        let value: serde_json::Value = response
            .json()
            .await
            .map_err(|e| LaunchError::new(Failure::FhirFailed).because(e.without_url()))?;
        if value.get("resourceType").and_then(|v| v.as_str()) != Some(kind) {
            return Err(LaunchError::new(Failure::FhirFailed)
                .because(format!("reading the {kind} returned another resource type")));
        }
        Ok(value)
    }

    pub async fn update(
        &self,
        kind: &str,
        id: &str,
        resource: &serde_json::Value,
    ) -> Result<(), LaunchError> {
        let body = serde_json::to_vec(resource)
            .map_err(|e| LaunchError::new(Failure::Internal).because(e))?;
        let response = self
            .http
            .put(self.url(kind, id)?)
            .bearer_auth(self.token)
            .header(reqwest::header::CONTENT_TYPE, FHIR_JSON)
            .header(reqwest::header::ACCEPT, FHIR_JSON)
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(Failure::FhirUnreachable, e))?;
        Self::check(response.status(), &format!("updating the {kind}"))
    }
}

/// The name to show the clinician: the first name's `text`, else given names and family.
pub fn patient_display_name(patient: &serde_json::Value) -> Option<String> {
    let names = patient.get("name")?.as_array()?;
    let name = names
        .iter()
        .find(|n| n.get("use").and_then(|u| u.as_str()) == Some("official"))
        .or_else(|| names.first())?;
    if let Some(text) = name.get("text").and_then(|t| t.as_str())
        && !text.trim().is_empty()
    {
        return Some(text.trim().chars().take(200).collect());
    }
    let mut parts: Vec<&str> = name
        .get("given")
        .and_then(|g| g.as_array())
        .map(|g| g.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if let Some(family) = name.get("family").and_then(|f| f.as_str()) {
        parts.push(family);
    }
    let joined = parts.join(" ");
    (!joined.trim().is_empty()).then(|| joined.trim().chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names() {
        let p = serde_json::json!({"name": [{"use": "official", "family": "Quintero", "given": ["Rosalind", "M"]}]});
        assert_eq!(
            patient_display_name(&p).as_deref(),
            Some("Rosalind M Quintero")
        );
        let p = serde_json::json!({"name": [{"use": "nickname", "text": "Ros"}, {"use": "official", "text": "Rosalind Quintero"}]});
        assert_eq!(
            patient_display_name(&p).as_deref(),
            Some("Rosalind Quintero")
        );
        assert_eq!(patient_display_name(&serde_json::json!({})), None);
    }

    #[test]
    fn fhir_urls_escape_ids() {
        let http = reqwest::Client::new();
        let f = Fhir {
            http: &http,
            base: "https://ehr.example/fhir/r4/",
            token: "t",
        };
        assert_eq!(
            f.url("Patient", "a/b").unwrap().as_str(),
            "https://ehr.example/fhir/r4/Patient/a%2Fb"
        );
    }
}
