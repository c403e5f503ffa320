//! Device hot-plug: what a call does when a camera, microphone or speaker appears or goes
//! away while it runs. Plain decisions from the change, the devices present and IT's policy;
//! [`crate::call`] carries them out and the window shows the notice.
//!
//! The rules: the device in use disappearing falls back to the system default (or the first
//! device left); with none left, to the labelled synthetic source if the policy allows it,
//! else that kind of media stops, and the notice says which. A newly plugged device is
//! offered, and taken at once only when the call had nothing real for that kind.

use rounds_media::native::{DeviceChange, DeviceInfo, DeviceKind};

/// The id prefix of the sound server's own devices (see `rounds_media::native::list_devices`).
const SOUND_SERVER: &str = "pulseaudio:";

/// The devices of one kind a person can choose from, out of everything the system lists.
///
/// ALSA lists its software plug-ins (rate converters, `jack`, `oss`, `null`, …) beside the
/// sound cards, and a sound server lists a "monitor" of each output as an input. None of
/// those is a microphone or a speaker. What stays:
/// * cameras, all of them;
/// * the system default (`alsa:default`), first;
/// * with a sound server (PulseAudio or PipeWire) running, its own devices, named as the
///   desktop's sound settings name them. ALSA's entries for the cards it drives are then
///   left out: the server holds those cards, and they appear among its devices already;
/// * without one, ALSA's sound cards (ids with `CARD=`).
pub fn pickable(kind: DeviceKind, all: Vec<DeviceInfo>) -> Vec<DeviceInfo> {
    if kind == DeviceKind::Camera {
        return all;
    }
    let server = all.iter().any(|d| d.id.starts_with(SOUND_SERVER));
    let (mut first, rest): (Vec<DeviceInfo>, Vec<DeviceInfo>) = all
        .into_iter()
        .filter(|d| {
            if kind == DeviceKind::Microphone && d.id.ends_with(".monitor") {
                return false;
            }
            match d.id.strip_prefix("alsa:") {
                Some("default") => true,
                Some(pcm) => !server && pcm.contains("CARD="),
                None => true,
            }
        })
        .partition(|d| d.id == "alsa:default");
    first.extend(rest);
    first
}

/// What a kind of media is using now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InUse {
    Device(DeviceInfo),
    /// The labelled test card or tone.
    Synthetic,
    Nothing,
}

/// What to switch to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Switch {
    Device(DeviceInfo),
    Synthetic,
    Nothing,
}

/// The decision for one change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// `None`: keep what is in use.
    pub switch: Option<Switch>,
    /// A sentence for the clinician, if the change matters to them.
    pub notice: Option<String>,
}

fn noun(kind: DeviceKind) -> &'static str {
    match kind {
        DeviceKind::Camera => "camera",
        DeviceKind::Microphone => "microphone",
        DeviceKind::Speaker => "speaker",
    }
}

/// Decides what a call does about `change` (all devices of one kind). `present` is every
/// device of that kind now, `default` the system's choice among them.
pub fn plan(
    change: &DeviceChange,
    in_use: &InUse,
    present: &[DeviceInfo],
    default: Option<&DeviceInfo>,
    synthetic_allowed: bool,
) -> Plan {
    let kind = change.kind;
    let what = noun(kind);
    if let InUse::Device(current) = in_use
        && change.removed.iter().any(|d| d.id == current.id)
    {
        let replacement = default
            .filter(|d| d.id != current.id && present.iter().any(|p| p.id == d.id))
            .or_else(|| present.iter().find(|p| p.id != current.id));
        let lost = format!(
            "Your {what} \u{201c}{}\u{201d} was disconnected.",
            current.name
        );
        return match replacement {
            Some(next) => Plan {
                notice: Some(format!(
                    "{lost} Rounds switched to \u{201c}{}\u{201d}.",
                    next.name
                )),
                switch: Some(Switch::Device(next.clone())),
            },
            None if synthetic_allowed && kind != DeviceKind::Speaker => Plan {
                switch: Some(Switch::Synthetic),
                notice: Some(format!(
                    "{lost} Until you connect another, the others get a labelled synthetic {} (your IT department allows it).",
                    if kind == DeviceKind::Camera {
                        "test card"
                    } else {
                        "tone"
                    }
                )),
            },
            None => Plan {
                switch: Some(Switch::Nothing),
                notice: Some(format!(
                    "{lost} {} until you connect another.",
                    match kind {
                        DeviceKind::Camera => "Nobody can see you",
                        DeviceKind::Microphone => "Nobody can hear you",
                        DeviceKind::Speaker => "You cannot hear the others",
                    }
                )),
            },
        };
    }
    let Some(added) = change.added.first() else {
        return Plan::default();
    };
    match in_use {
        // Nothing real in use: a device that arrives is better than none or a test signal.
        InUse::Synthetic | InUse::Nothing => Plan {
            notice: Some(format!(
                "Rounds now uses the {what} \u{201c}{}\u{201d}, which was just connected.",
                added.name
            )),
            switch: Some(Switch::Device(added.clone())),
        },
        InUse::Device(_) => Plan {
            switch: None,
            notice: Some(format!(
                "A {what} was connected: \u{201c}{}\u{201d}. Choose it below to use it.",
                added.name
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mic(id: &str, name: &str) -> DeviceInfo {
        DeviceInfo {
            id: id.into(),
            name: name.into(),
            kind: DeviceKind::Microphone,
            synthetic: false,
        }
    }

    fn ids(devices: &[DeviceInfo]) -> Vec<&str> {
        devices.iter().map(|d| d.id.as_str()).collect()
    }

    #[test]
    fn only_devices_a_person_would_choose_are_offered() {
        let alsa = [
            "alsa:null",
            "alsa:default",
            "alsa:lavrate",
            "alsa:jack",
            "alsa:pulse",
            "alsa:hw:CARD=PCH,DEV=0",
            "alsa:plughw:CARD=PCH,DEV=0",
        ];
        let listed = |extra: &[&str]| -> Vec<DeviceInfo> {
            alsa.iter().chain(extra).map(|id| mic(id, id)).collect()
        };
        // No sound server: the default, then the sound card.
        assert_eq!(
            ids(&pickable(DeviceKind::Microphone, listed(&[]))),
            [
                "alsa:default",
                "alsa:hw:CARD=PCH,DEV=0",
                "alsa:plughw:CARD=PCH,DEV=0"
            ]
        );
        // A sound server: the default, then its devices, without the monitors of outputs.
        let server = [
            "pulseaudio:alsa_output.pci-0000_00_1f.3.analog-stereo.monitor",
            "pulseaudio:alsa_input.pci-0000_00_1f.3.analog-stereo",
            "pulseaudio:bluez_source.00_1B_66_AA_BB_CC.handsfree_head_unit",
        ];
        assert_eq!(
            ids(&pickable(DeviceKind::Microphone, listed(&server))),
            [
                "alsa:default",
                "pulseaudio:alsa_input.pci-0000_00_1f.3.analog-stereo",
                "pulseaudio:bluez_source.00_1B_66_AA_BB_CC.handsfree_head_unit"
            ]
        );
        // Speakers: the same rules.
        let speakers: Vec<DeviceInfo> =
            ["alsa:jack", "pulseaudio:bluez_sink.00_1B", "alsa:default"]
                .iter()
                .map(|id| mic(id, id))
                .collect();
        assert_eq!(
            ids(&pickable(DeviceKind::Speaker, speakers)),
            ["alsa:default", "pulseaudio:bluez_sink.00_1B"]
        );
        let cameras = vec![mic("0", "Integrated Camera"), mic("1", "USB Camera")];
        assert_eq!(pickable(DeviceKind::Camera, cameras.clone()), cameras);
    }

    fn change(added: Vec<DeviceInfo>, removed: Vec<DeviceInfo>) -> DeviceChange {
        DeviceChange {
            kind: DeviceKind::Microphone,
            added,
            removed,
        }
    }

    #[test]
    fn losing_the_device_in_use_falls_back_to_the_default() {
        let (usb, built_in, other) = (
            mic("usb", "USB headset"),
            mic("bi", "Built-in"),
            mic("o", "Other"),
        );
        let p = plan(
            &change(vec![], vec![usb.clone()]),
            &InUse::Device(usb.clone()),
            &[other.clone(), built_in.clone()],
            Some(&built_in),
            false,
        );
        assert_eq!(p.switch, Some(Switch::Device(built_in)));
        let notice = p.notice.unwrap();
        assert!(
            notice.contains("USB headset") && notice.contains("Built-in"),
            "{notice}"
        );

        // No default: the first left.
        let p = plan(
            &change(vec![], vec![usb.clone()]),
            &InUse::Device(usb),
            std::slice::from_ref(&other),
            None,
            false,
        );
        assert_eq!(p.switch, Some(Switch::Device(other)));
    }

    #[test]
    fn with_nothing_left_the_policy_decides() {
        let usb = mic("usb", "USB headset");
        let gone = change(vec![], vec![usb.clone()]);
        let p = plan(&gone, &InUse::Device(usb.clone()), &[], None, true);
        assert_eq!(p.switch, Some(Switch::Synthetic));
        assert!(p.notice.unwrap().contains("synthetic tone"));
        let p = plan(&gone, &InUse::Device(usb), &[], None, false);
        assert_eq!(p.switch, Some(Switch::Nothing));
        assert!(p.notice.unwrap().contains("Nobody can hear you"));
    }

    #[test]
    fn a_new_device_is_offered_or_taken_when_nothing_real_was_in_use() {
        let (usb, built_in) = (mic("usb", "USB headset"), mic("bi", "Built-in"));
        let plugged = change(vec![usb.clone()], vec![]);
        let p = plan(
            &plugged,
            &InUse::Device(built_in.clone()),
            &[built_in.clone(), usb.clone()],
            None,
            false,
        );
        assert_eq!(p.switch, None, "offered, not forced");
        assert!(p.notice.unwrap().contains("USB headset"));
        for in_use in [InUse::Synthetic, InUse::Nothing] {
            let p = plan(&plugged, &in_use, std::slice::from_ref(&usb), None, true);
            assert_eq!(p.switch, Some(Switch::Device(usb.clone())));
        }
    }

    #[test]
    fn unrelated_removals_change_nothing() {
        let (usb, built_in) = (mic("usb", "USB headset"), mic("bi", "Built-in"));
        let p = plan(
            &change(vec![], vec![usb]),
            &InUse::Device(built_in.clone()),
            &[built_in],
            None,
            false,
        );
        assert_eq!(p, Plan::default());
    }
}
