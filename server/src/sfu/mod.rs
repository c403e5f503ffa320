//! The SFU: selective forwarding of media between the participants of a visit.
//!
//! [`engine`] holds every decision (admission, layers, keyframe requests, dominant speaker,
//! network score), with no I/O. [`driver`] is the I/O layer: one UDP socket and the ICE-TCP
//! connections, demultiplexed to one sans-IO `rtc` peer connection per participant and
//! direction; it owns one engine per room, feeds it what it observes and forwards RTP as it
//! decides. The room task hears of the engine's outcomes as [`SfuEvent`]s.

pub mod driver;
pub mod engine;

pub use driver::{
    CONNECT_DEADLINE, CounterSnapshot, EVENT_CAPACITY, IceProtocol, KeyframeReason, Layer,
    MediaKind, PcKind, PcState, PcStats, PeerId, PeerStats, RoomId, SelectedPair, Sfu, SfuConfig,
    SfuError, SfuEvent, VideoCodec, VideoConstraints,
};
