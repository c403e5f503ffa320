//! Keyframe requests: getting them out of `rtc`, and not flooding publishers with them.
//!
//! `rtc` ends its inbound RTCP path in a terminus that drops every packet no interceptor vouched
//! for (see `rtc_interceptor::NoopInterceptor`), because RTCP is normally for the interceptors.
//! An SFU must relay a subscriber's PLI/FIR to the publisher, so [`KeyframeRequestTap`] sits
//! application-most in every chain, keeps only keyframe requests and marks them
//! `DeliverToApplication`. Everything else has already been consumed by the interceptors in
//! front of it.
//!
//! [`KeyframeThrottle`] enforces "at most one request per published track per 500 ms" while
//! making sure a request that arrives inside the window is sent when the window ends rather than
//! lost: a new subscriber must get its keyframe.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::sansio::Protocol;
use rtc::shared::error::Error as RtcError;

/// Where the tap sits: after every standard interceptor (the largest standard slot is 13 000),
/// so NACK, reports and TWCC have seen the compound packet before it is narrowed down.
pub(crate) const TAP_SLOT: usize = 20_000;

pub(crate) fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

#[derive(Default)]
pub(crate) struct KeyframeRequestTap {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = RtcError;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &mut msg.message.packet {
            packets.retain(|p| is_keyframe_request(p.as_ref()));
            if packets.is_empty() {
                // Nothing here the application acts on; the interceptors already had it.
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

impl Interceptor for KeyframeRequestTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// Minimum spacing of keyframe requests sent to one published track.
pub(crate) const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

/// Per published track: when the last request went out, and whether one is owed.
#[derive(Debug, Default)]
pub(crate) struct KeyframeThrottle {
    last_sent: Option<Instant>,
    pending: bool,
}

impl KeyframeThrottle {
    /// Records a request; `true` if it should be sent now, otherwise it is remembered.
    pub(crate) fn request(&mut self, now: Instant) -> bool {
        if self.may_send(now) {
            self.last_sent = Some(now);
            self.pending = false;
            true
        } else {
            self.pending = true;
            false
        }
    }

    /// `true` if a remembered request is now due (and marks it sent).
    pub(crate) fn poll_pending(&mut self, now: Instant) -> bool {
        if self.pending && self.may_send(now) {
            self.pending = false;
            self.last_sent = Some(now);
            true
        } else {
            false
        }
    }

    pub(crate) fn is_pending(&self) -> bool {
        self.pending
    }

    fn may_send(&self, now: Instant) -> bool {
        self.last_sent
            .is_none_or(|last| now.saturating_duration_since(last) >= KEYFRAME_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::AttributedPacket;
    use rtc::rtcp::receiver_report::ReceiverReport;
    use rtc::shared::TransportContext;

    #[test]
    fn throttles_to_one_per_interval_and_defers_the_rest() {
        let t0 = Instant::now();
        let mut throttle = KeyframeThrottle::default();
        assert!(throttle.request(t0));
        assert!(!throttle.request(t0 + Duration::from_millis(100)));
        assert!(!throttle.request(t0 + Duration::from_millis(200)));
        assert!(throttle.is_pending());
        assert!(!throttle.poll_pending(t0 + Duration::from_millis(400)));
        assert!(throttle.poll_pending(t0 + Duration::from_millis(500)));
        assert!(!throttle.poll_pending(t0 + Duration::from_millis(2000)));
        assert!(!throttle.request(t0 + Duration::from_millis(600)));
        assert!(throttle.request(t0 + Duration::from_millis(1000)));
    }

    fn tagged(packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> TaggedPacket {
        TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtcp(packets)),
        }
    }

    #[test]
    fn tap_keeps_only_keyframe_requests_and_marks_them() {
        let mut tap = KeyframeRequestTap::default();
        tap.handle_read(tagged(vec![Box::new(ReceiverReport::default())]))
            .expect("read");
        assert!(tap.poll_read().is_none());
        tap.handle_read(tagged(vec![
            Box::new(ReceiverReport::default()),
            Box::new(PictureLossIndication {
                sender_ssrc: 1,
                media_ssrc: 2,
            }),
        ]))
        .expect("read");
        let out = tap.poll_read().expect("delivered");
        assert!(out.message.has(&Attribute::DeliverToApplication));
        let Packet::Rtcp(packets) = &out.message.packet else {
            panic!("rtcp expected");
        };
        assert_eq!(packets.len(), 1);
    }
}
