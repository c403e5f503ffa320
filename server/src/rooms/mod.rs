//! Rooms: one per visit. This module owns who is in a room and in which admission state.
//!
//! [`admission`] is the waiting-room state machine, free of I/O. The realtime layer adds the
//! per-room task that owns live signaling state; until then transitions are applied to the
//! store with a compare-and-set on the previous state, so two clinicians clicking at once
//! cannot both win.

pub mod admission;
pub mod room;

pub use room::Rooms;
