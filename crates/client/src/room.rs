//! What the client knows about the room, kept up to date from signaling messages.

use std::collections::BTreeMap;

use rounds_proto::{ParticipantState, RoomParticipant, ServerMessage, VideoConstraints};

#[derive(Debug, Default)]
pub(crate) struct Roster {
    pub(crate) session: String,
    pub(crate) me: Option<RoomParticipant>,
    /// Everyone admitted, me included once admitted.
    pub(crate) participants: BTreeMap<String, RoomParticipant>,
    /// Staff only: who waits in the lobby.
    pub(crate) waiting: Vec<RoomParticipant>,
    pub(crate) dominant_speaker: Option<String>,
    pub(crate) video: Option<VideoConstraints>,
    pub(crate) running_late_minutes: Option<u32>,
}

impl Roster {
    /// Applies one server message. Returns my new state when it changed.
    pub(crate) fn apply(&mut self, message: &ServerMessage) -> Option<ParticipantState> {
        match message {
            ServerMessage::Joined {
                session,
                me,
                participants,
                waiting,
                video,
                running_late_minutes,
                ..
            } => {
                self.session = session.clone();
                self.me = Some(me.clone());
                self.participants = participants
                    .iter()
                    .map(|p| (p.id.clone(), p.clone()))
                    .collect();
                self.waiting = waiting.clone();
                self.video = Some(video.clone());
                self.running_late_minutes = *running_late_minutes;
                return Some(me.state);
            }
            ServerMessage::Admitted { participants } => {
                self.participants = participants
                    .iter()
                    .map(|p| (p.id.clone(), p.clone()))
                    .collect();
                if let Some(me) = self.me.as_mut() {
                    me.state = ParticipantState::Admitted;
                }
                return Some(ParticipantState::Admitted);
            }
            ServerMessage::Denied { .. } => return Some(ParticipantState::Denied),
            ServerMessage::Removed { .. } => return Some(ParticipantState::Removed),
            ServerMessage::ParticipantJoined { participant }
            | ServerMessage::ParticipantUpdated { participant } => {
                if self.me.as_ref().is_some_and(|me| me.id == participant.id) {
                    self.me = Some(participant.clone());
                }
                self.participants
                    .insert(participant.id.clone(), participant.clone());
            }
            ServerMessage::ParticipantLeft { participant_id } => {
                self.participants.remove(participant_id);
                if self.dominant_speaker.as_deref() == Some(participant_id.as_str()) {
                    self.dominant_speaker = None;
                }
            }
            ServerMessage::LobbyUpdated { waiting } => self.waiting = waiting.clone(),
            ServerMessage::TrackPublished {
                participant_id,
                track,
            } => {
                if let Some(p) = self.participants.get_mut(participant_id) {
                    p.tracks.retain(|t| t.id != track.id);
                    p.tracks.push(track.clone());
                }
            }
            ServerMessage::TrackUnpublished {
                participant_id,
                track_id,
            } => {
                if let Some(p) = self.participants.get_mut(participant_id) {
                    p.tracks.retain(|t| &t.id != track_id);
                }
            }
            ServerMessage::DominantSpeaker { participant_id } => {
                self.dominant_speaker = participant_id.clone()
            }
            ServerMessage::VideoConstraints { video } => self.video = Some(video.clone()),
            ServerMessage::RunningLate { minutes } => {
                self.running_late_minutes = (*minutes > 0).then_some(*minutes);
            }
            _ => {}
        }
        None
    }

    /// The participant a remote track belongs to, from its msid stream id. The SFU uses the
    /// participant id, made safe for SDP (RFC 8830 token characters, at most 64); ids that
    /// need no change map to themselves.
    pub(crate) fn resolve(&self, stream_id: &str) -> String {
        if self.participants.contains_key(stream_id) {
            return stream_id.to_owned();
        }
        self.participants
            .keys()
            .find(|id| sdp_token(id) == stream_id)
            .cloned()
            .unwrap_or_else(|| stream_id.to_owned())
    }

    /// Whether a remote track is `participant`'s screen share: the SFU names each track it
    /// forwards `<publisher>_<publisher's mid>`, and the publisher announced that mid's kind.
    pub(crate) fn is_screen(&self, participant: &str, track_id: &str) -> bool {
        let Some(p) = self.participants.get(participant) else {
            return false;
        };
        let prefix = format!("{}_", sdp_token(participant));
        let Some(mid) = track_id.strip_prefix(&prefix) else {
            return false;
        };
        p.tracks.iter().any(|t| {
            t.kind == rounds_proto::TrackKind::Screen
                && t.mid.as_deref().is_some_and(|m| sdp_token(m) == mid)
        })
    }
}

/// The server's msid sanitising (server/src/sfu/driver/peer.rs), mirrored.
fn sdp_token(raw: &str) -> String {
    let token: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`{|}~".contains(*c))
        .take(64)
        .collect();
    if token.is_empty() {
        "x".to_owned()
    } else {
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rounds_proto::{Phi, Role, TrackInfo, TrackKind};

    fn person(id: &str, state: ParticipantState) -> RoomParticipant {
        RoomParticipant {
            id: id.into(),
            name: Phi::new("Someone".into()),
            role: Role::Patient,
            state,
            audio_muted: false,
            video_muted: false,
            connected: true,
            tracks: vec![],
        }
    }

    #[test]
    fn follows_the_room() {
        let mut r = Roster::default();
        let admitted = ServerMessage::Admitted {
            participants: vec![
                person("dr", ParticipantState::Admitted),
                person("pt", ParticipantState::Admitted),
            ],
        };
        assert_eq!(r.apply(&admitted), Some(ParticipantState::Admitted));
        assert_eq!(r.participants.len(), 2);
        r.apply(&ServerMessage::TrackPublished {
            participant_id: "dr".into(),
            track: TrackInfo {
                id: "v".into(),
                kind: TrackKind::Video,
                mid: None,
                simulcast: false,
                muted: false,
            },
        });
        assert_eq!(r.participants["dr"].tracks.len(), 1);
        r.apply(&ServerMessage::DominantSpeaker {
            participant_id: Some("dr".into()),
        });
        assert_eq!(r.dominant_speaker.as_deref(), Some("dr"));
        r.apply(&ServerMessage::ParticipantLeft {
            participant_id: "dr".into(),
        });
        assert!(r.dominant_speaker.is_none());
        assert_eq!(r.participants.len(), 1);
        assert_eq!(
            r.apply(&ServerMessage::Removed {
                message: "bye".into()
            }),
            Some(ParticipantState::Removed)
        );
    }

    #[test]
    fn resolves_stream_ids() {
        let mut r = Roster::default();
        r.participants
            .insert("ab12".into(), person("ab12", ParticipantState::Admitted));
        r.participants
            .insert("a:b c".into(), person("a:b c", ParticipantState::Admitted));
        assert_eq!(r.resolve("ab12"), "ab12");
        assert_eq!(r.resolve("abc"), "a:b c");
        assert_eq!(r.resolve("unknown"), "unknown");
    }

    #[test]
    fn knows_a_screen_share_by_its_mid() {
        let mut r = Roster::default();
        let mut p = person("ab12", ParticipantState::Admitted);
        for (id, kind, mid) in [
            ("cam", TrackKind::Video, "1"),
            ("scr", TrackKind::Screen, "2"),
        ] {
            p.tracks.push(TrackInfo {
                id: id.into(),
                kind,
                mid: Some(mid.into()),
                simulcast: false,
                muted: false,
            });
        }
        r.participants.insert("ab12".into(), p);
        assert!(r.is_screen("ab12", "ab12_2"));
        assert!(!r.is_screen("ab12", "ab12_1"), "the camera");
        assert!(!r.is_screen("ab12", "ab12_3"), "an unknown mid");
        assert!(!r.is_screen("zz", "zz_2"), "an unknown participant");
    }
}
