//! Invitations and reminders: sending a patient or guest their link by SMS or email.
//!
//! Messages carry the clinic name, the time and the link, never anything clinical. Reminders
//! are rows in the store with a due time, so a restart does not lose them; a worker sends the
//! due ones. Because only hashes of link codes are stored, a reminder carries a fresh link for
//! the same invitee, which leads to the same participant as the first one.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use rounds_notify::{EmailSender, NotifyError, SmsProvider, TwilioSms, messages};
use rounds_proto::{
    Channel, CreateInvitationRequest, Invitation, InvitationStatus, Invitee, Phi, SessionClaims,
};

use crate::AppState;
use crate::audit::{Action, Event};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::store::{ClinicRow, DueReminder, NewInvitation, VisitRow, new_id};
use crate::visits::{PATIENT_INVITEE, link_url, load_for};

/// The configured ways of reaching people.
pub struct Notifier {
    pub sms: Option<Arc<dyn SmsProvider>>,
    pub email: Option<EmailSender>,
}

impl Notifier {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let sms = match &config.sms {
            Some(c) => Some(Arc::new(TwilioSms::new(c)?) as Arc<dyn SmsProvider>),
            None => None,
        };
        let email = match &config.email {
            Some(c) => Some(EmailSender::new(c)?),
            None => None,
        };
        Ok(Self { sms, email })
    }

    async fn deliver(
        &self,
        channel: Channel,
        to: &Phi<String>,
        text: &messages::Outgoing,
    ) -> Result<Option<String>, NotifyError> {
        match channel {
            Channel::Sms => {
                let sms = self.sms.as_ref().ok_or(NotifyError::NotConfigured(
                    "SMS sending is not set up on this server.",
                ))?;
                Ok(sms.send(to, &text.sms).await?.provider_id)
            }
            Channel::Email => {
                let email = self.email.as_ref().ok_or(NotifyError::NotConfigured(
                    "Email sending is not set up on this server.",
                ))?;
                Ok(email
                    .send(
                        to,
                        &text.email_subject,
                        &text.email_text,
                        Some(&text.email_html),
                    )
                    .await?
                    .provider_id)
            }
            Channel::Copy => Ok(None),
        }
    }
}

fn local_time(clinic: &ClinicRow, at: DateTime<Utc>) -> String {
    let tz: chrono_tz::Tz = clinic.time_zone.parse().unwrap_or(chrono_tz::UTC);
    at.with_timezone(&tz)
        .format("%a %-d %b at %H:%M %Z")
        .to_string()
}

fn notify_problem(e: &NotifyError, channel: Channel) -> ApiError {
    let how = if channel == Channel::Sms {
        "text message"
    } else {
        "email"
    };
    match e {
        NotifyError::InvalidRecipient(sentence) => {
            ApiError::unprocessable("invalid-recipient", sentence.clone())
        }
        NotifyError::NotConfigured(sentence) => ApiError::unprocessable(
            "channel-not-configured",
            format!("{sentence} Copy the link and send it another way."),
        ),
        NotifyError::Rejected { message, .. } => ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "delivery-rejected",
            format!(
                "The {how} could not be sent: {message}. Check the address, or copy the link instead."
            ),
        ),
        NotifyError::Unavailable(_) => ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "delivery-unavailable",
            format!(
                "The {how} service could not be reached, so nothing was sent. Try again in a minute, or copy the link instead."
            ),
        ),
    }
}

pub async fn create(
    state: &AppState,
    session: &SessionClaims,
    visit_id: &str,
    req: CreateInvitationRequest,
) -> ApiResult<Invitation> {
    let visit = load_for(state, session, visit_id).await?;
    if !visit.is_live() {
        return Err(ApiError::conflict(
            "visit-ended",
            "This visit has ended, so invitations cannot be sent.",
        ));
    }
    let to = match (req.channel, &req.to) {
        (Channel::Copy, _) => None,
        (_, None) => {
            return Err(ApiError::unprocessable(
                "missing-recipient",
                "Enter a phone number for a text message, or an email address for an email.",
            ));
        }
        (Channel::Sms, Some(to)) => {
            rounds_notify::validate_phone(to.expose())
                .map_err(|e| notify_problem(&e, Channel::Sms))?;
            Some(to)
        }
        (Channel::Email, Some(to)) => {
            rounds_notify::validate_email(to.expose())
                .map_err(|e| notify_problem(&e, Channel::Email))?;
            Some(to)
        }
    };
    let now = Utc::now();
    let invitee_id = match req.invitee {
        Invitee::Patient => PATIENT_INVITEE.to_owned(),
        Invitee::Guest | Invitee::Interpreter => format!("guest:{}", new_id()),
    };
    let expires_at = visit.link_expires_at(state.config.visits.link_grace_minutes);
    let code = state
        .store
        .create_link(&visit.id, req.invitee.role(), &invitee_id, expires_at, now)
        .await?;
    let link = link_url(state, &code);
    let clinic = state
        .store
        .clinic(&visit.clinic_id)
        .await?
        .ok_or_else(crate::access::not_your_visit)?;
    let text = messages::invitation(
        &clinic.name,
        &link,
        &local_time(&clinic, visit.scheduled_at),
        req.invitee != Invitee::Patient,
    );

    let (status, provider_id, failure) = match to {
        None => (InvitationStatus::Created, None, None),
        Some(to) => match state.notifier.deliver(req.channel, to, &text).await {
            Ok(id) => (InvitationStatus::Sent, id, None),
            Err(e) => (InvitationStatus::Failed, None, Some(e)),
        },
    };
    let reminder_at = reminder_time(state, &visit, req.channel, req.remind.unwrap_or(true), now)
        .filter(|_| status == InvitationStatus::Sent);
    let id = new_id();
    state
        .store
        .insert_invitation(
            &NewInvitation {
                id: &id,
                visit_id: &visit.id,
                invitee: req.invitee,
                invitee_id: &invitee_id,
                channel: req.channel,
                recipient: to,
                status,
                provider_id: provider_id.as_deref(),
                reminder_at,
                created_by: &session.sub,
            },
            now,
        )
        .await?;
    let action = if failure.is_some() {
        Action::InvitationFailed
    } else {
        Action::InvitationSent
    };
    state
        .audit
        .record(
            Event::new(format!("clinician:{}", session.sub), action)
                .visit(&visit.id)
                .subject(&id)
                .detail(serde_json::json!({ "channel": req.channel, "invitee": req.invitee })),
        )
        .await?;
    metrics::counter!("rounds_invitations_total", "channel" => req.channel.as_str(), "status" => if failure.is_some() { "failed" } else { "ok" }).increment(1);
    if let Some(e) = failure {
        tracing::warn!(visit = %visit.id, invitation = %id, error = %e, "invitation could not be delivered");
        // The link was created; revoke it so an undelivered code cannot linger.
        if req.invitee != Invitee::Patient {
            state
                .store
                .revoke_links(&visit.id, &invitee_id, now)
                .await?;
        }
        return Err(notify_problem(&e, req.channel));
    }
    Ok(Invitation {
        id,
        visit_id: visit.id.clone(),
        channel: req.channel,
        invitee: req.invitee,
        status,
        link,
        link_expires_at: expires_at,
        reminder_at,
        created_at: now,
    })
}

fn reminder_time(
    state: &AppState,
    visit: &VisitRow,
    channel: Channel,
    wanted: bool,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let minutes = state.config.visits.reminder_minutes;
    if !wanted || minutes == 0 || channel == Channel::Copy {
        return None;
    }
    let at = visit.scheduled_at - Duration::minutes(i64::from(minutes));
    (at > now).then_some(at)
}

/// Starts the worker that sends due reminders.
pub fn spawn_reminders(state: AppState) {
    tokio::spawn(async move {
        let period =
            std::time::Duration::from_secs(u64::from(state.config.visits.reminder_poll_secs));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = send_due_reminders(&state).await {
                tracing::error!(
                    error = format!("{e:#}"),
                    "the reminder worker failed; it will try again"
                );
            }
        }
    });
}

/// Sends every reminder that is due now; returns how many went out.
pub async fn send_due_reminders(state: &AppState) -> anyhow::Result<usize> {
    let now = Utc::now();
    let due = state.store.due_reminders(now, 100).await?;
    let mut sent = 0;
    for reminder in due {
        match send_reminder(state, &reminder, now).await {
            Ok(()) => {
                sent += 1;
                state
                    .store
                    .mark_reminder_sent(&reminder.invitation_id, Utc::now())
                    .await?;
                state
                    .audit
                    .record(
                        Event::new("system", Action::ReminderSent)
                            .visit(&reminder.visit_id)
                            .subject(&reminder.invitation_id),
                    )
                    .await?;
            }
            Err(e) => {
                tracing::warn!(invitation = %reminder.invitation_id, attempts = reminder.attempts + 1, error = %e, "reminder not delivered; will retry");
                state
                    .store
                    .defer_reminder(&reminder.invitation_id, now + Duration::minutes(2))
                    .await?;
                state
                    .audit
                    .record(
                        Event::new("system", Action::ReminderFailed)
                            .visit(&reminder.visit_id)
                            .subject(&reminder.invitation_id),
                    )
                    .await?;
            }
        }
    }
    Ok(sent)
}

async fn send_reminder(
    state: &AppState,
    r: &DueReminder,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let visit = state
        .store
        .visit(&r.visit_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("visit is gone"))?;
    let clinic = state
        .store
        .clinic(&visit.clinic_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("clinic is gone"))?;
    let expires_at = visit.link_expires_at(state.config.visits.link_grace_minutes);
    let code = state
        .store
        .create_link(&visit.id, r.invitee.role(), &r.invitee_id, expires_at, now)
        .await?;
    let text = messages::reminder(
        &clinic.name,
        &link_url(state, &code),
        &local_time(&clinic, visit.scheduled_at),
    );
    state
        .notifier
        .deliver(r.channel, &r.recipient, &text)
        .await?;
    Ok(())
}
