//! When to raise an OS notification: free of I/O, driven by queue events and a clock.
//!
//! - A patient checks in: "Patient waiting".
//! - A patient is still waiting `N` minutes after check-in (the policy's
//!   `wait_alert_minutes`): "Still waiting", once per check-in.
//! - A guest (family, interpreter) arrives in the lobby: "Guest waiting".
//!
//! Notifications can be read by anyone near the screen, so they name the patient only when
//! IT's policy says so; otherwise they say which visit (its time) and nothing else.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rounds_proto::{Queue, QueueEvent, Role, Visit, VisitState};
use serde::Serialize;
use ts_rs::TS;

/// What kind of alert, so the UI and the tests can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    PatientWaiting,
    StillWaiting,
    GuestWaiting,
}

/// One OS notification to show. Clicking it opens `visit_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct Alert {
    pub kind: AlertKind,
    pub visit_id: String,
    pub title: String,
    pub body: String,
}

/// The alert decisions for one signed-in clinician.
#[derive(Debug)]
pub struct Alerts {
    wait_alert: chrono::Duration,
    names: bool,
    /// For each visit, the check-in already alerted as "still waiting".
    still_waiting_sent: HashMap<String, DateTime<Utc>>,
}

impl Alerts {
    pub fn new(wait_alert_minutes: u32, names: bool) -> Alerts {
        Alerts {
            wait_alert: chrono::Duration::minutes(i64::from(wait_alert_minutes)),
            names,
            still_waiting_sent: HashMap::new(),
        }
    }

    fn who(&self, visit: Option<&Visit>) -> String {
        match visit {
            Some(v) if self.names => v
                .patient_name
                .as_ref()
                .map(|n| n.expose().clone())
                .unwrap_or_else(|| "Your patient".into()),
            _ => "Your patient".into(),
        }
    }

    fn when(visit: Option<&Visit>, queue: &Queue) -> String {
        let tz: chrono_tz::Tz = queue.time_zone.parse().unwrap_or(chrono_tz::UTC);
        match visit {
            Some(v) => format!(
                "the {} visit",
                v.scheduled_at.with_timezone(&tz).format("%H:%M")
            ),
            None => "a visit".into(),
        }
    }

    /// The alert for a live queue event, given the queue as it is after the event.
    pub fn on_event(&mut self, event: &QueueEvent, queue: &Queue) -> Option<Alert> {
        let find = |id: &str| queue.visits.iter().find(|v| v.id == id);
        match event {
            QueueEvent::PatientCheckedIn { visit_id } => {
                let visit = find(visit_id);
                Some(Alert {
                    kind: AlertKind::PatientWaiting,
                    visit_id: visit_id.clone(),
                    title: "Patient waiting".into(),
                    body: format!(
                        "{} checked in for {}.",
                        self.who(visit),
                        Self::when(visit, queue)
                    ),
                })
            }
            QueueEvent::GuestJoined { visit_id, role } => {
                let visit = find(visit_id);
                let guest = if *role == Role::Interpreter {
                    "An interpreter"
                } else {
                    "A guest"
                };
                Some(Alert {
                    kind: AlertKind::GuestWaiting,
                    visit_id: visit_id.clone(),
                    title: "Guest waiting".into(),
                    body: format!("{guest} is waiting to join {}.", Self::when(visit, queue)),
                })
            }
            QueueEvent::Hello { .. } | QueueEvent::QueueChanged { .. } => None,
        }
    }

    /// "Still waiting" alerts due at `now`, each once per check-in.
    pub fn on_tick(&mut self, now: DateTime<Utc>, queue: &Queue) -> Vec<Alert> {
        let mut due = Vec::new();
        for v in &queue.visits {
            let Some(since) = v.waiting_since else {
                continue;
            };
            if v.state != VisitState::Waiting || now - since < self.wait_alert {
                continue;
            }
            if self.still_waiting_sent.get(&v.id) == Some(&since) {
                continue;
            }
            self.still_waiting_sent.insert(v.id.clone(), since);
            let minutes = (now - since).num_minutes();
            due.push(Alert {
                kind: AlertKind::StillWaiting,
                visit_id: v.id.clone(),
                title: "Still waiting".into(),
                body: format!(
                    "{} has waited {minutes} min for {}.",
                    self.who(Some(v)),
                    Self::when(Some(v), queue)
                ),
            });
        }
        due
    }
}

/// How many patients are waiting, for the tray.
pub fn waiting_count(queue: &Queue) -> usize {
    queue
        .visits
        .iter()
        .filter(|v| v.state == VisitState::Waiting)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rounds_proto::Phi;

    fn visit(id: &str, state: VisitState, since: Option<DateTime<Utc>>) -> Visit {
        Visit {
            id: id.into(),
            room: id.into(),
            clinic_id: "c".into(),
            clinician_id: "d".into(),
            scheduled_at: "2026-11-23T15:30:00Z".parse().unwrap(),
            duration_minutes: 30,
            state,
            patient_name: Some(Phi::new("Ada Lovelace".into())),
            waiting_since: since,
            started_at: None,
            ended_at: None,
            running_late_minutes: None,
            device_check: None,
            link_expires_at: "2026-11-23T18:00:00Z".parse().unwrap(),
        }
    }

    fn queue(visits: Vec<Visit>) -> Queue {
        Queue {
            day: "2026-11-23".into(),
            time_zone: "America/Chicago".into(),
            visits,
        }
    }

    #[test]
    fn a_check_in_alerts_without_the_name_by_default() {
        let q = queue(vec![visit("v1", VisitState::Waiting, Some(Utc::now()))]);
        let mut alerts = Alerts::new(10, false);
        let a = alerts
            .on_event(
                &QueueEvent::PatientCheckedIn {
                    visit_id: "v1".into(),
                },
                &q,
            )
            .unwrap();
        assert_eq!(a.kind, AlertKind::PatientWaiting);
        assert_eq!(a.title, "Patient waiting");
        assert_eq!(a.body, "Your patient checked in for the 09:30 visit.");
        let mut named = Alerts::new(10, true);
        let a = named
            .on_event(
                &QueueEvent::PatientCheckedIn {
                    visit_id: "v1".into(),
                },
                &q,
            )
            .unwrap();
        assert_eq!(a.body, "Ada Lovelace checked in for the 09:30 visit.");
    }

    #[test]
    fn guests_and_interpreters_are_told_apart() {
        let q = queue(vec![visit("v1", VisitState::InProgress, None)]);
        let mut alerts = Alerts::new(10, false);
        let a = alerts
            .on_event(
                &QueueEvent::GuestJoined {
                    visit_id: "v1".into(),
                    role: Role::Interpreter,
                },
                &q,
            )
            .unwrap();
        assert_eq!(a.kind, AlertKind::GuestWaiting);
        assert_eq!(a.body, "An interpreter is waiting to join the 09:30 visit.");
        assert_eq!(
            alerts.on_event(
                &QueueEvent::QueueChanged {
                    visit_id: "v1".into()
                },
                &q
            ),
            None
        );
    }

    #[test]
    fn a_long_wait_alerts_once_per_check_in() {
        let since: DateTime<Utc> = "2026-11-23T15:25:00Z".parse().unwrap();
        let q = queue(vec![
            visit("v1", VisitState::Waiting, Some(since)),
            visit("v2", VisitState::InProgress, Some(since)),
        ]);
        let mut alerts = Alerts::new(10, false);
        assert!(
            alerts
                .on_tick(since + chrono::Duration::minutes(9), &q)
                .is_empty()
        );
        let due = alerts.on_tick(since + chrono::Duration::minutes(11), &q);
        assert_eq!(due.len(), 1, "only the visit still waiting");
        assert_eq!(due[0].kind, AlertKind::StillWaiting);
        assert_eq!(
            due[0].body,
            "Your patient has waited 11 min for the 09:30 visit."
        );
        assert!(
            alerts
                .on_tick(since + chrono::Duration::minutes(20), &q)
                .is_empty()
        );
        // A new check-in (rejoin after leaving) can alert again.
        let later = since + chrono::Duration::minutes(30);
        let q = queue(vec![visit("v1", VisitState::Waiting, Some(later))]);
        assert_eq!(
            alerts
                .on_tick(later + chrono::Duration::minutes(10), &q)
                .len(),
            1
        );
        assert_eq!(waiting_count(&q), 1);
    }
}
