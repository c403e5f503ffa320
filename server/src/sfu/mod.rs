//! The SFU: selective forwarding of media between the participants of a visit.
//!
//! [`driver`] is the I/O layer: one UDP socket and the ICE-TCP connections, demultiplexed to one
//! sans-IO `rtc` peer connection per participant and direction, with RTP forwarded between them
//! under the admission gate. [`engine`] holds the decisions that need no I/O (layers, dominant
//! speaker, network score); the driver reports what it observes as [`SfuEvent`]s and never
//! depends on the engine.

pub mod driver;
pub mod engine;

pub use driver::{
    CounterSnapshot, EVENT_CAPACITY, IceProtocol, KeyframeReason, MediaKind, PcKind, PcState,
    PcStats, PeerId, PeerStats, SelectedPair, Sfu, SfuConfig, SfuError, SfuEvent,
};
