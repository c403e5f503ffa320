//! `rounds-server demo`: a ready-to-try server on this machine.

use anyhow::Context;
use chrono::{Duration, Utc};
use rounds_proto::{CreateVisitRequest, Phi};

use crate::AppState;
use crate::sessions::hash_password;

pub const DEMO_CLINIC: &str = "Rounds Demo Clinic";
pub const DEMO_EMAIL: &str = "clinician@demo.rounds.local";

/// What the demo set up, to print.
pub struct Demo {
    pub email: String,
    pub password: String,
    pub patient_link: String,
    pub visit_id: String,
    pub clinician_id: String,
}

/// Creates (or refreshes) the demo clinic and clinician, and a visit starting in 5 minutes.
pub async fn seed(state: &AppState, time_zone: &str) -> anyhow::Result<Demo> {
    time_zone.parse::<chrono_tz::Tz>().map_err(|_| {
        anyhow::anyhow!("\"{time_zone}\" is not an IANA time zone name, like Europe/Paris")
    })?;
    let now = Utc::now();
    let clinic = match state.store.clinic_by_name(DEMO_CLINIC).await? {
        Some(c) => c,
        None => {
            state
                .store
                .create_clinic(DEMO_CLINIC, time_zone, now)
                .await?
        }
    };
    let password = rounds_auth::random_id()[..16].to_owned();
    let hash = hash_password(&password)?;
    let clinician = match state.store.clinician_by_email(DEMO_EMAIL).await? {
        Some(c) => {
            state.store.set_password_hash(&c.id, &hash).await?;
            c
        }
        None => {
            state
                .store
                .create_clinician(&clinic.id, DEMO_EMAIL, "Dr. Demo", Some(&hash), now)
                .await?
        }
    };
    let created = crate::visits::create(
        state,
        &clinic.id,
        &clinician.id,
        CreateVisitRequest {
            scheduled_at: now + Duration::minutes(5),
            duration_minutes: Some(30),
            patient_name: Some(Phi::new("Demo Patient".into())),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!(e.detail))
    .context("creating the demo visit")?;
    Ok(Demo {
        email: DEMO_EMAIL.into(),
        password,
        patient_link: created.patient_link.url,
        visit_id: created.visit.id,
        clinician_id: clinician.id.clone(),
    })
}

/// The `rounds://signin` link that signs the desktop app in to `server` with `ticket`.
pub fn desktop_link(server: &str, ticket: &str) -> String {
    let mut link = url::Url::parse("rounds://signin").expect("a valid constant URL");
    link.query_pairs_mut()
        .append_pair("server", server)
        .append_pair("ticket", ticket);
    link.into()
}

/// Writes a secret-bearing file readable by its owner only.
pub fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}
