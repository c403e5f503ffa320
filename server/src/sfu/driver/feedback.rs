//! What the driver learns from a client's RTCP, and from the media it forwards.
//!
//! `rtc` ends its inbound RTCP path in a terminus that drops every packet no interceptor vouched
//! for (see `rtc_interceptor::NoopInterceptor`), because RTCP is normally for the interceptors.
//! An SFU needs two things from it, so [`FeedbackTap`] sits application-most in every chain:
//!
//! - **keyframe requests** (PLI/FIR) from a subscriber, to relay upstream: marked
//!   `DeliverToApplication`, everything else in the compound is dropped here;
//! - **receiver reports** about what we send a subscriber: loss, jitter, and the round trip
//!   from LSR/DLSR against our own sender reports (`rtc` 0.21 computes none), for the network
//!   score and the engine's loss-based downlink estimate.
//!
//! Reports are not packets the application routes: the tap keeps their figures in a
//! [`Feedback`] cell that the driver drains on its housekeeping tick. The cell is shared with
//! the driver task only, so its lock is never contended.
//!
//! The module also spots keyframes in forwarded payloads (VP8 and H.264), which a simulcast
//! layer switch waits for.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;
use rtc::shared::error::Error as RtcError;
use rtc::shared::time::SystemInstant;

/// Where the tap sits: after every standard interceptor (the largest standard slot is 13 000),
/// so NACK, reports and TWCC have seen the compound packet before it is narrowed down.
pub(crate) const TAP_SLOT: usize = 20_000;
/// Reception reports kept between two housekeeping passes; clients send about one a second per
/// stream, so this only bounds a client that floods us.
const MAX_PENDING_REPORTS: usize = 64;

pub(crate) fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

/// One reception report about a stream we send, as the tap saw it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ReportFigures {
    /// The SSRC we send the stream with.
    pub(crate) ssrc: u32,
    /// 0.0–1.0, since the client's previous report.
    pub(crate) fraction_lost: f64,
    /// Interarrival jitter in the stream's RTP clock units.
    pub(crate) jitter: u32,
    /// From LSR/DLSR; `None` until the client has seen one of our sender reports.
    pub(crate) rtt_ms: Option<f64>,
}

/// What the tap has gathered for the driver since it last looked.
#[derive(Debug, Default)]
pub(crate) struct Feedback {
    pub(crate) reports: Vec<ReportFigures>,
}

pub(crate) type SharedFeedback = Arc<Mutex<Feedback>>;

/// The round trip from a reception report (RFC 3550 §6.4.1): the time it arrived, minus when
/// the sender report it answers went out (LSR), minus how long the client held it (DLSR), all
/// in the middle 32 bits of NTP time (1/65536 s). `None` without a sender report to answer, or
/// for a figure no real path gives (clocks stepped, a forged report).
pub(crate) fn round_trip_ms(arrival_ntp: u64, lsr: u32, dlsr: u32) -> Option<f64> {
    if lsr == 0 {
        return None;
    }
    let arrival = (arrival_ntp >> 16) as u32;
    let rtt = arrival.wrapping_sub(lsr).wrapping_sub(dlsr);
    // Above 2^31 the subtraction went negative: a report from the future.
    if rtt >= 0x8000_0000 {
        return None;
    }
    let ms = f64::from(rtt) * 1000.0 / 65536.0;
    (ms < 60_000.0).then_some(ms)
}

pub(crate) struct FeedbackTap {
    shared: SharedFeedback,
    /// Maps `rtc`'s instants to NTP time the way its sender reports do.
    clock: SystemInstant,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl FeedbackTap {
    pub(crate) fn new(shared: SharedFeedback, now: Instant) -> Self {
        Self {
            shared,
            clock: SystemInstant::now(now),
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        }
    }

    fn note(&self, now: Instant, packets: &[Box<dyn rtc::rtcp::Packet>]) {
        let arrival_ntp = self.clock.ntp(now);
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let reports = packets.iter().flat_map(|p| {
            let any = p.as_any();
            let list: &[ReceptionReport] = if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                &rr.reports
            } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
                &sr.reports
            } else {
                &[]
            };
            list.iter()
        });
        for report in reports {
            if shared.reports.len() >= MAX_PENDING_REPORTS {
                break;
            }
            shared.reports.push(ReportFigures {
                ssrc: report.ssrc,
                fraction_lost: f64::from(report.fraction_lost) / 256.0,
                jitter: report.jitter,
                rtt_ms: round_trip_ms(arrival_ntp, report.last_sender_report, report.delay),
            });
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for FeedbackTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = RtcError;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &mut msg.message.packet {
            self.note(msg.now, packets);
            packets.retain(|p| is_keyframe_request(p.as_ref()));
            if packets.is_empty() {
                // Nothing here the application routes; the interceptors already had it.
                return Ok(());
            }
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for FeedbackTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// How to spot a keyframe in a track's RTP payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyframeFormat {
    Vp8,
    H264,
    /// Audio, or a codec we do not look into (layer switches then happen at once).
    Opaque,
}

impl KeyframeFormat {
    pub(crate) fn for_mime(mime: &str) -> Self {
        if mime.eq_ignore_ascii_case("video/vp8") {
            KeyframeFormat::Vp8
        } else if mime.eq_ignore_ascii_case("video/h264") {
            KeyframeFormat::H264
        } else {
            KeyframeFormat::Opaque
        }
    }

    /// Whether this payload starts a keyframe a decoder can begin from.
    pub(crate) fn starts_keyframe(self, payload: &[u8]) -> bool {
        match self {
            KeyframeFormat::Vp8 => vp8_starts_keyframe(payload),
            KeyframeFormat::H264 => h264_starts_keyframe(payload),
            KeyframeFormat::Opaque => true,
        }
    }
}

/// RFC 7741: the first packet of a VP8 key frame has S=1, PID=0, and the P bit of the VP8
/// payload header (after the descriptor) cleared.
fn vp8_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    if first & 0x10 == 0 || first & 0x07 != 0 {
        return false;
    }
    let mut at = 1;
    if first & 0x80 != 0 {
        let Some(&ext) = payload.get(at) else {
            return false;
        };
        at += 1;
        if ext & 0x80 != 0 {
            // PictureID: one byte, or two when its M bit is set.
            let Some(&pid) = payload.get(at) else {
                return false;
            };
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if ext & 0x30 != 0 {
            at += 1; // TID / KEYIDX
        }
    }
    payload.get(at).is_some_and(|header| header & 0x01 == 0)
}

/// RFC 6184: an IDR slice or a sequence parameter set (which precedes the IDR in what
/// browsers send), alone, first in a STAP-A, or at the start of an FU-A.
fn h264_starts_keyframe(payload: &[u8]) -> bool {
    let is_key = |nal_type: u8| nal_type == 5 || nal_type == 7;
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        24 => {
            let mut at = 1;
            while at + 2 < payload.len() {
                let size = usize::from(u16::from_be_bytes([payload[at], payload[at + 1]]));
                if is_key(payload[at + 2] & 0x1f) {
                    return true;
                }
                at += 2 + size;
            }
            false
        }
        28 => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && is_key(fu & 0x1f)),
        nal => is_key(nal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::AttributedPacket;
    use rtc::shared::TransportContext;

    fn tagged(packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> TaggedPacket {
        TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtcp(packets)),
        }
    }

    #[test]
    fn tap_delivers_keyframe_requests_and_keeps_reports() {
        let shared = SharedFeedback::default();
        let mut tap = FeedbackTap::new(shared.clone(), Instant::now());
        let report = ReceptionReport {
            ssrc: 42,
            fraction_lost: 64,
            jitter: 900,
            ..Default::default()
        };
        tap.handle_read(tagged(vec![Box::new(ReceiverReport {
            ssrc: 1,
            reports: vec![report],
            ..Default::default()
        })]))
        .expect("read");
        assert!(tap.poll_read().is_none(), "a report alone is not routed");

        tap.handle_read(tagged(vec![
            Box::new(ReceiverReport::default()),
            Box::new(PictureLossIndication {
                sender_ssrc: 1,
                media_ssrc: 2,
            }),
        ]))
        .expect("read");
        let out = tap.poll_read().expect("the PLI is delivered");
        assert!(out.message.has(&Attribute::DeliverToApplication));
        let Packet::Rtcp(packets) = &out.message.packet else {
            panic!("rtcp expected");
        };
        assert_eq!(packets.len(), 1);

        let feedback = shared.lock().expect("lock");
        assert_eq!(feedback.reports.len(), 1);
        assert_eq!(feedback.reports[0].ssrc, 42);
        assert!((feedback.reports[0].fraction_lost - 0.25).abs() < 1e-9);
        assert_eq!(feedback.reports[0].jitter, 900);
        assert_eq!(
            feedback.reports[0].rtt_ms, None,
            "no sender report answered yet"
        );
    }

    #[test]
    fn round_trip_from_lsr_and_dlsr() {
        // Our sender report left at NTP middle-32 0x0001_0000 (1 s); the client held it for
        // 0.25 s and its report arrived at 1.5 s: a 250 ms round trip.
        let arrival = 0x0001_8000u64 << 16;
        let rtt = round_trip_ms(arrival, 0x0001_0000, 0x4000).expect("rtt");
        assert!((rtt - 250.0).abs() < 0.1, "{rtt}");
        assert_eq!(
            round_trip_ms(arrival, 0, 0x4000),
            None,
            "no sender report yet"
        );
        assert_eq!(
            round_trip_ms(arrival, 0x0002_0000, 0),
            None,
            "a report from the future"
        );
    }

    #[test]
    fn spots_vp8_keyframes() {
        // Descriptor with X, I (15-bit picture id), then the payload header.
        let key = [0x90, 0x80, 0x81, 0x23, 0x10, 0x02, 0x00];
        let delta = [0x90, 0x80, 0x81, 0x23, 0x11, 0x02, 0x00];
        let not_first = [0x80, 0x80, 0x81, 0x23, 0x10];
        assert!(KeyframeFormat::Vp8.starts_keyframe(&key));
        assert!(!KeyframeFormat::Vp8.starts_keyframe(&delta));
        assert!(!KeyframeFormat::Vp8.starts_keyframe(&not_first));
        assert!(KeyframeFormat::Vp8.starts_keyframe(&[0x10, 0x00]));
        assert!(!KeyframeFormat::Vp8.starts_keyframe(&[]));
        assert!(!KeyframeFormat::Vp8.starts_keyframe(&[0x90]));
    }

    #[test]
    fn spots_h264_keyframes() {
        assert!(KeyframeFormat::H264.starts_keyframe(&[0x65, 0x88]));
        assert!(KeyframeFormat::H264.starts_keyframe(&[0x67, 0x42]));
        assert!(!KeyframeFormat::H264.starts_keyframe(&[0x41, 0x9a]));
        // STAP-A with SPS first.
        assert!(KeyframeFormat::H264.starts_keyframe(&[0x78, 0x00, 0x02, 0x67, 0x42]));
        // FU-A: start of an IDR, and a middle fragment.
        assert!(KeyframeFormat::H264.starts_keyframe(&[0x7c, 0x85, 0x00]));
        assert!(!KeyframeFormat::H264.starts_keyframe(&[0x7c, 0x05, 0x00]));
        assert!(!KeyframeFormat::H264.starts_keyframe(&[0x78, 0x00]));
    }
}
