//! The clinicians' live queue feed: domain code publishes [`QueueEvent`]s about a visit, and
//! each open `GET /api/v1/events` stream forwards the ones for its clinician's visits.
//!
//! Events carry visit ids only. A slow stream that falls behind is told to re-read the
//! queue instead of being sent stale events one by one.

use std::sync::Arc;

use rounds_proto::{QueueEvent, Role};
use tokio::sync::broadcast;

use crate::store::VisitRow;

/// How many events a slow stream may fall behind before it is told to re-read the queue.
const CAPACITY: usize = 256;

/// One event, with whose queue it belongs to.
#[derive(Debug)]
pub struct ClinicEvent {
    pub clinic_id: String,
    pub clinician_id: String,
    pub event: QueueEvent,
}

/// The server's queue event bus. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<Arc<ClinicEvent>>,
}

impl Default for Events {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        Self { tx }
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("streams", &self.tx.receiver_count())
            .finish()
    }
}

impl Events {
    fn publish(&self, visit: &VisitRow, event: QueueEvent) {
        // No stream open is the common case, not an error.
        let _ = self.tx.send(Arc::new(ClinicEvent {
            clinic_id: visit.clinic_id.clone(),
            clinician_id: visit.clinician_id.clone(),
            event,
        }));
    }

    /// Something about `visit` changed that its clinician's queue shows.
    pub fn queue_changed(&self, visit: &VisitRow) {
        self.publish(
            visit,
            QueueEvent::QueueChanged {
                visit_id: visit.id.clone(),
            },
        );
    }

    /// Someone finished check-in: a patient is now waiting, or a guest arrived.
    pub fn checked_in(&self, visit: &VisitRow, role: Role) {
        let visit_id = visit.id.clone();
        let event = match role {
            Role::Patient => QueueEvent::PatientCheckedIn { visit_id },
            Role::Provider => QueueEvent::QueueChanged { visit_id },
            role => QueueEvent::GuestJoined { visit_id, role },
        };
        self.publish(visit, event);
    }

    /// A new receiver; see [`ClinicEvent`].
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ClinicEvent>> {
        self.tx.subscribe()
    }
}
