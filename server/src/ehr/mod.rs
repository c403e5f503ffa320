//! SMART App Launch 2.x: Rounds as the EHR-facing confidential client.
//!
//! `/ehr/launch` (from the chart) and `/ehr/standalone` (from Rounds) discover the EHR's
//! SMART configuration and send the browser to its authorize endpoint; `/ehr/callback`
//! exchanges the code, checks the id_token, reads Patient and Encounter, finds or creates the
//! one visit of that encounter and hands the clinician to the desktop app with a one-time
//! ticket. The decisions with no I/O (scopes, PKCE, pending launches) are in [`launch`]; the
//! EHR's HTTP APIs in [`client`]. Every failure is a [`Failure`] with a sentence for the
//! clinician; nothing about the patient reaches the logs or the audit details.

pub mod client;
pub mod launch;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use rounds_proto::{CreateVisitRequest, Phi};

use crate::AppState;
use crate::audit::{Action, Event};
use crate::config::EhrIssuer;
use crate::store::ClinicianRow;
use launch::{LaunchKind, PendingLaunches};

/// The EHR side's state: launches in flight, the tokens kept for write-back, one HTTP client.
#[derive(Debug)]
pub struct Ehr {
    pending: Mutex<PendingLaunches>,
    write_backs: Mutex<HashMap<String, WriteBack>>,
    /// Finding or creating an encounter's visit is one step at a time, so two launches of
    /// the same encounter cannot make two rooms.
    visit_lock: tokio::sync::Mutex<()>,
    http: reqwest::Client,
}

/// What write-back needs once the visit ends. Kept in memory only: a restart forgets it and
/// that visit's end is not written back (the audit log says so).
#[derive(Debug, Clone)]
struct WriteBack {
    iss: String,
    access_token: String,
    expires: Instant,
}

impl Ehr {
    pub fn new(timeout_secs: u32) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(u64::from(timeout_secs)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("rounds-server/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            pending: Mutex::default(),
            write_backs: Mutex::default(),
            visit_lock: tokio::sync::Mutex::new(()),
            http,
        })
    }
}

/// Why a launch stopped. Each has a sentence for the clinician and a next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    NotConfigured,
    MissingParameters,
    UnknownIssuer,
    EhrUnreachable,
    BadDiscovery,
    NoPkce,
    ConsentDenied,
    AuthorizationRefused,
    BadState,
    ExpiredState,
    CodeRejected,
    TokenFailed,
    IdTokenInvalid,
    MissingContext,
    UnknownClinician,
    FhirUnauthorized,
    FhirFailed,
    FhirUnreachable,
    OtherClinic,
    Internal,
}

impl Failure {
    /// Stable, for audit queries and the problem type.
    pub fn slug(self) -> &'static str {
        match self {
            Failure::NotConfigured => "ehr-not-configured",
            Failure::MissingParameters => "ehr-missing-parameters",
            Failure::UnknownIssuer => "ehr-unknown-issuer",
            Failure::EhrUnreachable => "ehr-unreachable",
            Failure::BadDiscovery => "ehr-bad-configuration",
            Failure::NoPkce => "ehr-no-pkce",
            Failure::ConsentDenied => "ehr-consent-denied",
            Failure::AuthorizationRefused => "ehr-authorization-refused",
            Failure::BadState => "ehr-bad-state",
            Failure::ExpiredState => "ehr-expired-state",
            Failure::CodeRejected => "ehr-code-rejected",
            Failure::TokenFailed => "ehr-token-failed",
            Failure::IdTokenInvalid => "ehr-id-token-invalid",
            Failure::MissingContext => "ehr-missing-context",
            Failure::UnknownClinician => "ehr-unknown-clinician",
            Failure::FhirUnauthorized => "ehr-fhir-unauthorized",
            Failure::FhirFailed => "ehr-fhir-failed",
            Failure::FhirUnreachable => "ehr-fhir-unreachable",
            Failure::OtherClinic => "ehr-other-clinic",
            Failure::Internal => "internal",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Failure::NotConfigured => 404,
            Failure::UnknownIssuer
            | Failure::ConsentDenied
            | Failure::UnknownClinician
            | Failure::OtherClinic => 403,
            Failure::EhrUnreachable
            | Failure::BadDiscovery
            | Failure::NoPkce
            | Failure::TokenFailed
            | Failure::FhirUnauthorized
            | Failure::FhirFailed
            | Failure::FhirUnreachable => 502,
            Failure::Internal => 500,
            _ => 400,
        }
    }

    /// The page's heading.
    pub fn title(self) -> &'static str {
        match self {
            Failure::ConsentDenied => "Rounds was not allowed to open this chart",
            Failure::UnknownClinician | Failure::OtherClinic => {
                "Rounds could not sign you in for this visit"
            }
            Failure::FhirUnauthorized | Failure::FhirFailed | Failure::FhirUnreachable => {
                "Rounds could not read this chart"
            }
            _ => "The video visit could not be opened",
        }
    }

    /// What happened, in one sentence.
    pub fn sentence(self) -> &'static str {
        match self {
            Failure::NotConfigured => {
                "Launching Rounds from an EHR is not set up on this Rounds server."
            }
            Failure::MissingParameters => {
                "The link that opened Rounds is incomplete: it does not say which EHR or which launch it came from."
            }
            Failure::UnknownIssuer => {
                "This EHR is not on the list of EHRs this Rounds server works with."
            }
            Failure::EhrUnreachable => "Rounds could not reach your EHR's sign-in service.",
            Failure::BadDiscovery => {
                "Your EHR's SMART on FHIR settings could not be read, so Rounds cannot sign in with it."
            }
            Failure::NoPkce => {
                "Your EHR does not offer the secure sign-in method (PKCE with S256) that Rounds requires."
            }
            Failure::ConsentDenied => {
                "You chose not to let Rounds see this patient's chart, so no visit was opened."
            }
            Failure::AuthorizationRefused => "Your EHR refused Rounds' sign-in request.",
            Failure::BadState => {
                "This sign-in answer does not belong to a launch Rounds started, or it was already used."
            }
            Failure::ExpiredState => "This launch took too long and has expired.",
            Failure::CodeRejected => {
                "Your EHR did not accept the sign-in code: it had expired or had already been used."
            }
            Failure::TokenFailed => "Your EHR's sign-in service did not complete the sign-in.",
            Failure::IdTokenInvalid => {
                "Rounds could not confirm who you are: the identity your EHR sent was not valid for this sign-in."
            }
            Failure::MissingContext => {
                "Your EHR did not tell Rounds which patient and encounter this visit is for."
            }
            Failure::UnknownClinician => {
                "Your EHR account is not linked to a Rounds clinician account."
            }
            Failure::FhirUnauthorized => {
                "Your EHR's FHIR server refused Rounds access to this chart."
            }
            Failure::FhirFailed => "Your EHR's FHIR server had a problem answering Rounds.",
            Failure::FhirUnreachable => "Rounds could not reach your EHR's FHIR server.",
            Failure::OtherClinic => "The video visit for this encounter belongs to another clinic.",
            Failure::Internal => "Something went wrong on the Rounds server.",
        }
    }

    /// What the clinician can do about it.
    pub fn next_step(self) -> &'static str {
        match self {
            Failure::NotConfigured
            | Failure::UnknownIssuer
            | Failure::BadDiscovery
            | Failure::NoPkce => {
                "Ask your IT team to register Rounds with this EHR (they will find the steps in the Rounds EHR guide)."
            }
            Failure::ConsentDenied => {
                "To start the visit, launch Rounds again from the chart and choose Allow."
            }
            Failure::UnknownClinician | Failure::OtherClinic => {
                "Ask your IT team to link your EHR account to your Rounds account. Until then, open the visit from your Rounds queue."
            }
            Failure::EhrUnreachable
            | Failure::TokenFailed
            | Failure::FhirFailed
            | Failure::FhirUnreachable
            | Failure::Internal => {
                "Try again in a minute. If it keeps happening, tell your IT team, and open the visit from your Rounds queue meanwhile."
            }
            Failure::FhirUnauthorized => {
                "Launch Rounds again from the chart. If it keeps happening, tell your IT team that Rounds' access to the FHIR server is refused."
            }
            Failure::MissingContext => {
                "Open the patient's encounter in the chart and launch Rounds from there."
            }
            _ => "Close this page and launch Rounds again from the patient's chart.",
        }
    }
}

/// A launch that stopped, with what the EHR said (shown escaped) and the cause (logged).
#[derive(Debug)]
pub struct LaunchError {
    pub failure: Failure,
    /// The EHR's own `error_description`, when it refused the request.
    pub ehr_said: Option<String>,
    pub iss: Option<String>,
    pub clinician: Option<String>,
    cause: Option<String>,
}

impl LaunchError {
    pub fn new(failure: Failure) -> Self {
        Self {
            failure,
            ehr_said: None,
            iss: None,
            clinician: None,
            cause: None,
        }
    }

    fn because(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    fn iss(mut self, iss: &str) -> Self {
        self.iss = Some(iss.to_owned());
        self
    }
}

impl From<Failure> for LaunchError {
    fn from(f: Failure) -> Self {
        LaunchError::new(f)
    }
}

impl From<crate::store::StoreError> for LaunchError {
    fn from(e: crate::store::StoreError) -> Self {
        LaunchError::new(Failure::Internal).because(e)
    }
}

impl From<crate::audit::AuditError> for LaunchError {
    fn from(e: crate::audit::AuditError) -> Self {
        LaunchError::new(Failure::Internal).because(e)
    }
}

impl From<crate::error::ApiError> for LaunchError {
    fn from(e: crate::error::ApiError) -> Self {
        LaunchError::new(Failure::Internal).because(e.detail)
    }
}

/// Logs and audits a failed launch. Only the reason, the EHR and the clinician id: no PHI.
pub async fn record_failure(state: &AppState, kind: LaunchKind, err: &LaunchError) {
    tracing::warn!(
        reason = err.failure.slug(),
        kind = kind.as_str(),
        iss = err.iss.as_deref().unwrap_or("-"),
        cause = err.cause.as_deref().unwrap_or("-"),
        "EHR launch failed"
    );
    let actor = err
        .clinician
        .as_ref()
        .map(|c| format!("clinician:{c}"))
        .unwrap_or_else(|| "anonymous".into());
    let event = Event::new(actor, Action::EhrLaunchFailed).detail(serde_json::json!({
        "reason": err.failure.slug(),
        "kind": kind.as_str(),
        "iss": err.iss,
    }));
    if let Err(e) = state.audit.record(event).await {
        tracing::error!(error = %e, "could not audit a failed EHR launch");
    }
}

fn redirect_uri(state: &AppState) -> String {
    format!("{}/ehr/callback", state.config.public_url())
}

/// Starts a launch: the URL of the EHR's authorize endpoint to send the browser to.
pub async fn start(
    state: &AppState,
    kind: LaunchKind,
    iss: Option<&str>,
    launch: Option<&str>,
) -> Result<url::Url, LaunchError> {
    let ehr = &state.config.ehr;
    if ehr.issuers.is_empty() {
        return Err(Failure::NotConfigured.into());
    }
    let iss = match (kind, iss.filter(|s| !s.is_empty())) {
        (_, Some(iss)) => iss,
        // A standalone launch may leave the EHR out when there is only one.
        (LaunchKind::Standalone, None) if ehr.issuers.len() == 1 => ehr.issuers[0].iss.as_str(),
        _ => return Err(Failure::MissingParameters.into()),
    };
    if kind == LaunchKind::Ehr && launch.is_none_or(str::is_empty) {
        return Err(LaunchError::new(Failure::MissingParameters).iss(iss));
    }
    let Some(issuer) = ehr.issuer(iss) else {
        // Not echoed to logs in full: an unknown iss is whatever the link said.
        return Err(LaunchError::new(Failure::UnknownIssuer).because("iss is not allow-listed"));
    };
    let config = client::discover(&state.ehr.http, &issuer.iss)
        .await
        .map_err(|e| e.iss(&issuer.iss))?;
    if !config.supports_s256() {
        return Err(LaunchError::new(Failure::NoPkce).iss(&issuer.iss));
    }
    let scope = launch::scopes(
        kind,
        config.scope_version(),
        ehr.write_back_encounter_status,
    );
    let started = state
        .ehr
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .begin(
            &issuer.iss,
            kind,
            config.clone(),
            Duration::from_secs(u64::from(ehr.launch_ttl_secs)),
            Instant::now(),
        );
    launch::authorize_url(
        &issuer.iss,
        &config,
        &issuer.client_id,
        &redirect_uri(state),
        &scope,
        launch.filter(|_| kind == LaunchKind::Ehr),
        &started,
    )
    .map_err(|e| {
        LaunchError::new(Failure::BadDiscovery)
            .iss(&issuer.iss)
            .because(e)
    })
}

/// What the EHR sent back to `/ehr/callback`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A finished launch: the link that opens the visit in the desktop app.
#[derive(Debug)]
pub struct Handoff {
    pub visit_id: String,
    pub link: String,
}

/// Finishes a launch. On failure, the launch kind is known only if the state was.
pub async fn finish(
    state: &AppState,
    params: CallbackParams,
) -> Result<Handoff, (LaunchKind, LaunchError)> {
    let taken = params.state.as_deref().map(|s| {
        state
            .ehr
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(s, Instant::now())
    });
    let kind = match &taken {
        Some(Ok(p)) => p.kind,
        _ => LaunchKind::Ehr,
    };
    let fail = |e: LaunchError| (kind, e);
    if let Some(error) = params.error.as_deref() {
        let failure = if error == "access_denied" {
            Failure::ConsentDenied
        } else {
            Failure::AuthorizationRefused
        };
        let mut e = LaunchError::new(failure).because(format!("the EHR answered {error}"));
        e.ehr_said = params
            .error_description
            .as_deref()
            .map(|d| d.chars().take(300).collect());
        if let Some(Ok(p)) = &taken {
            e = e.iss(&p.iss);
        }
        return Err(fail(e));
    }
    let pending = match taken {
        Some(Ok(p)) => p,
        Some(Err(launch::StateError::Expired)) => return Err(fail(Failure::ExpiredState.into())),
        _ => return Err(fail(Failure::BadState.into())),
    };
    let iss = pending.iss.clone();
    let with_iss = |e: LaunchError| (kind, e.iss(&iss));
    let Some(code) = params.code.as_deref().filter(|c| !c.is_empty()) else {
        return Err(with_iss(Failure::MissingParameters.into()));
    };
    let Some(issuer) = state.config.ehr.issuer(&pending.iss) else {
        return Err(with_iss(Failure::UnknownIssuer.into()));
    };
    complete(state, issuer, &pending, code)
        .await
        .map_err(with_iss)
}

async fn complete(
    state: &AppState,
    issuer: &EhrIssuer,
    pending: &launch::Pending,
    code: &str,
) -> Result<Handoff, LaunchError> {
    let http = &state.ehr.http;
    let token = client::exchange_code(http, issuer, pending, code, &redirect_uri(state)).await?;
    let identity =
        client::verify_id_token(http, issuer, pending, token.id_token.as_deref()).await?;
    let clinician = find_clinician(state, issuer, &identity).await?;
    let with_clinician = |mut e: LaunchError| {
        e.clinician = Some(clinician.id.clone());
        e
    };
    let (Some(patient_id), Some(encounter_id)) =
        (token.patient.as_deref(), token.encounter.as_deref())
    else {
        return Err(with_clinician(Failure::MissingContext.into()));
    };
    let fhir = client::Fhir {
        http,
        base: &issuer.iss,
        token: &token.access_token,
    };
    let patient = fhir
        .read("Patient", patient_id)
        .await
        .map_err(with_clinician)?;
    let encounter = fhir
        .read("Encounter", encounter_id)
        .await
        .map_err(with_clinician)?;
    if let Some(subject) = encounter
        .pointer("/subject/reference")
        .and_then(|v| v.as_str())
        && subject.trim_start_matches(&format!("{}/", issuer.iss))
            != format!("Patient/{patient_id}")
    {
        return Err(with_clinician(
            LaunchError::new(Failure::MissingContext).because("the encounter is not the patient's"),
        ));
    }
    let name = client::patient_display_name(&patient);
    let (visit_id, created) =
        find_or_create_visit(state, &issuer.iss, encounter_id, &clinician, name)
            .await
            .map_err(with_clinician)?;
    if state.config.ehr.write_back_encounter_status
        && launch::may_update_encounter(token.scope.as_deref().unwrap_or_default())
    {
        let expires =
            Instant::now() + Duration::from_secs(token.expires_in.unwrap_or(300).min(86_400));
        state
            .ehr
            .write_backs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                visit_id.clone(),
                WriteBack {
                    iss: issuer.iss.clone(),
                    access_token: token.access_token.clone(),
                    expires,
                },
            );
    }
    let ticket = state.tickets.issue(&clinician.id);
    let actor = format!("clinician:{}", clinician.id);
    state
        .audit
        .record(
            Event::new(&actor, Action::TokenIssued)
                .detail(serde_json::json!({ "kind": "sign-in-ticket", "via": "ehr-launch" })),
        )
        .await?;
    state
        .audit
        .record(
            Event::new(&actor, Action::EhrLaunched)
                .visit(&visit_id)
                .detail(serde_json::json!({
                    "iss": issuer.iss,
                    "kind": pending.kind.as_str(),
                    "visit_created": created,
                })),
        )
        .await?;
    tracing::info!(kind = pending.kind.as_str(), iss = %issuer.iss, visit_created = created, "EHR launch handed to the desktop app");
    let link = format!(
        "rounds://visit/{visit_id}?ticket={ticket}&server={}",
        url::form_urlencoded::byte_serialize(state.config.public_url().as_bytes())
            .collect::<String>()
    );
    Ok(Handoff { visit_id, link })
}

/// The Rounds clinician behind the EHR user: by the configured `fhirUser` table, else (when
/// allowed) by the id_token's email. Only pre-registered, enabled accounts.
async fn find_clinician(
    state: &AppState,
    issuer: &EhrIssuer,
    identity: &client::Identity,
) -> Result<ClinicianRow, LaunchError> {
    let mut email = None;
    if let Some(fhir_user) = identity.fhir_user.as_deref() {
        let relative = fhir_user
            .trim_start_matches(issuer.iss.trim_end_matches('/'))
            .trim_start_matches('/');
        email = issuer.clinicians.get(relative).cloned();
    }
    if email.is_none() && issuer.match_email {
        email = identity.email.clone();
    }
    let Some(email) = email else {
        return Err(
            LaunchError::new(Failure::UnknownClinician).because("no mapping for this EHR user")
        );
    };
    state
        .store
        .clinician_by_email(&email)
        .await?
        .filter(|c| !c.disabled)
        .ok_or_else(|| {
            LaunchError::new(Failure::UnknownClinician)
                .because("the mapped clinician account does not exist or is disabled")
        })
}

/// The one visit of this encounter: found, or created for this clinician.
async fn find_or_create_visit(
    state: &AppState,
    iss: &str,
    encounter_id: &str,
    clinician: &ClinicianRow,
    patient_name: Option<String>,
) -> Result<(String, bool), LaunchError> {
    let _one_at_a_time = state.ehr.visit_lock.lock().await;
    if let Some(visit_id) = state.store.ehr_visit(iss, encounter_id).await? {
        let visit = crate::visits::load(state, &visit_id).await?;
        if visit.clinic_id != clinician.clinic_id {
            return Err(Failure::OtherClinic.into());
        }
        return Ok((visit_id, false));
    }
    let now = Utc::now();
    let created = crate::visits::create(
        state,
        &clinician.clinic_id,
        &clinician.id,
        CreateVisitRequest {
            scheduled_at: now,
            duration_minutes: None,
            patient_name: patient_name.map(Phi::new),
        },
    )
    .await?;
    let visit_id = created.visit.id;
    state
        .store
        .link_ehr_encounter(iss, encounter_id, &visit_id, now)
        .await?;
    Ok((visit_id, true))
}

/// After a launched visit ends: set its Encounter's status to `finished`, when configured.
/// Runs in the background; the result is in the audit log.
pub fn visit_ended(state: &AppState, visit_id: &str) {
    if !state.config.ehr.write_back_encounter_status {
        return;
    }
    let state = state.clone();
    let visit_id = visit_id.to_owned();
    tokio::spawn(async move {
        let result = write_back(&state, &visit_id).await;
        let (action, detail) = match &result {
            Ok(iss) => (
                Action::EhrWrittenBack,
                serde_json::json!({ "iss": iss, "status": "finished" }),
            ),
            Err(reason) => {
                tracing::warn!(reason, "could not write the visit's end back to the EHR");
                (
                    Action::EhrWriteBackFailed,
                    serde_json::json!({ "reason": reason }),
                )
            }
        };
        if matches!(&result, Err(r) if *r == "not-launched") {
            return;
        }
        if let Err(e) = state
            .audit
            .record(Event::new("system", action).visit(&visit_id).detail(detail))
            .await
        {
            tracing::error!(error = %e, "could not audit an EHR write-back");
        }
    });
}

async fn write_back(state: &AppState, visit_id: &str) -> Result<String, &'static str> {
    let Ok(Some(row)) = state.store.ehr_encounter_of(visit_id).await else {
        return Err("not-launched");
    };
    let grant = state
        .ehr
        .write_backs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(visit_id);
    let Some(grant) = grant.filter(|g| g.iss == row.iss) else {
        return Err("no-write-access");
    };
    if grant.expires <= Instant::now() {
        return Err("access-expired");
    }
    let fhir = client::Fhir {
        http: &state.ehr.http,
        base: &row.iss,
        token: &grant.access_token,
    };
    let mut encounter = fhir
        .read("Encounter", &row.encounter_id)
        .await
        .map_err(|e| e.failure.slug())?;
    encounter["status"] = serde_json::Value::from("finished");
    fhir.update("Encounter", &row.encounter_id, &encounter)
        .await
        .map_err(|e| e.failure.slug())?;
    Ok(row.iss)
}
