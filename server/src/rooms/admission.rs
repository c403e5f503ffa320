//! The waiting-room state machine: lobby → admitted / denied / removed, and leaving and
//! rejoining. Plain data in, plain data out.
//!
//! ```text
//!            admit             remove
//!   Lobby ──────────▶ Admitted ───────▶ Removed
//!     │ │ deny            │ leave
//!     │ └──────▶ Denied   ▼
//!     │ leave            Left ──rejoin──▶ Lobby
//!     └────────────────▶ Left
//! ```
//!
//! Denied and removed are final for that participant: their token stops working and their
//! link cannot bring them back. Rejoining after a drop keeps an admitted participant admitted;
//! someone who left on purpose knocks again.

use rounds_proto::ParticipantState::{self, *};

/// What someone asks of a participant's admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Admit,
    Deny,
    Remove,
    Leave,
    /// The participant opens their link again (reload, network drop, new device).
    Rejoin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("this person is not waiting to be admitted")]
    NotWaiting,
    #[error("this person was turned away or removed and cannot rejoin this visit")]
    Refused,
    #[error("this person has already left the visit")]
    AlreadyLeft,
}

/// The state after `action`, or why the action does not apply. Repeating an action that
/// already took effect (admit an admitted participant) is not an error: the state is returned
/// unchanged, so retries are safe.
pub fn next(from: ParticipantState, action: Action) -> Result<ParticipantState, AdmissionError> {
    use Action::*;
    match (from, action) {
        (Lobby, Admit) => Ok(Admitted),
        (Lobby, Deny) => Ok(Denied),
        (Lobby | Admitted, Remove) => Ok(Removed),
        (Lobby | Admitted, Leave) => Ok(Left),
        (Lobby, Rejoin) => Ok(Lobby),
        (Admitted, Rejoin) => Ok(Admitted),
        (Left, Rejoin) => Ok(Lobby),

        (Admitted, Admit) => Ok(Admitted),
        (Denied, Deny) => Ok(Denied),
        (Removed, Remove) => Ok(Removed),
        (Left, Leave) => Ok(Left),

        (Admitted, Deny) => Err(AdmissionError::NotWaiting),
        (Left, Admit | Deny) => Err(AdmissionError::AlreadyLeft),
        (Left, Remove) => Ok(Removed),
        (Denied | Removed, _) => Err(AdmissionError::Refused),
    }
}

/// Whether media may flow to and from a participant in `state`.
pub fn may_exchange_media(state: ParticipantState) -> bool {
    state == Admitted
}

/// Whether a token held by a participant in `state` may still be used at all.
pub fn token_usable(state: ParticipantState) -> bool {
    !matches!(state, Denied | Removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_STATES: [ParticipantState; 5] = [Lobby, Admitted, Denied, Removed, Left];
    const ALL_ACTIONS: [Action; 5] = [
        Action::Admit,
        Action::Deny,
        Action::Remove,
        Action::Leave,
        Action::Rejoin,
    ];

    #[test]
    fn a_waiting_patient_can_be_admitted_or_denied() {
        assert_eq!(next(Lobby, Action::Admit), Ok(Admitted));
        assert_eq!(next(Lobby, Action::Deny), Ok(Denied));
    }

    #[test]
    fn denied_and_removed_are_final() {
        for state in [Denied, Removed] {
            for action in ALL_ACTIONS {
                let result = next(state, action);
                assert!(
                    result == Err(AdmissionError::Refused) || result == Ok(state),
                    "{state:?} + {action:?} gave {result:?}"
                );
                assert_ne!(result, Ok(Admitted));
                assert_ne!(result, Ok(Lobby));
            }
            assert!(!token_usable(state));
        }
    }

    #[test]
    fn only_admitted_participants_get_media() {
        for state in ALL_STATES {
            assert_eq!(may_exchange_media(state), state == Admitted, "{state:?}");
        }
    }

    #[test]
    fn nobody_reaches_admitted_without_an_admit() {
        for state in ALL_STATES {
            for action in ALL_ACTIONS {
                if action == Action::Admit || state == Admitted {
                    continue;
                }
                assert_ne!(next(state, action), Ok(Admitted), "{state:?} + {action:?}");
            }
        }
    }

    #[test]
    fn rejoining_after_a_drop_keeps_admission_but_leaving_means_knocking_again() {
        assert_eq!(next(Admitted, Action::Rejoin), Ok(Admitted));
        assert_eq!(next(Left, Action::Rejoin), Ok(Lobby));
        assert_eq!(next(Lobby, Action::Rejoin), Ok(Lobby));
    }

    #[test]
    fn admitted_people_are_removed_not_denied() {
        assert_eq!(
            next(Admitted, Action::Deny),
            Err(AdmissionError::NotWaiting)
        );
        assert_eq!(next(Admitted, Action::Remove), Ok(Removed));
    }

    #[test]
    fn repeated_actions_are_idempotent() {
        assert_eq!(next(Admitted, Action::Admit), Ok(Admitted));
        assert_eq!(next(Denied, Action::Deny), Ok(Denied));
        assert_eq!(next(Removed, Action::Remove), Ok(Removed));
    }
}
