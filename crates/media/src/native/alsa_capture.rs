//! Microphone capture read straight from ALSA (Linux).
//!
//! cpal's ALSA input waits for each period with `poll(2)` and goes back to it whenever the
//! period is not complete yet. Through the PulseAudio (or PipeWire) ALSA plugin, which is what
//! the `default` device is on a desktop, the plugin's descriptor reports "readable" as soon as
//! any audio has arrived, so that loop spins between periods: 10 % of a core here with 20 ms
//! periods, 25 % with 10 ms ones, for a microphone that delivers 50 buffers a second.
//!
//! This reader asks ALSA how much audio is there and, when a period is not complete, sleeps
//! for the time the rest takes to arrive: one or two wake-ups a period. It never blocks in
//! ALSA itself, so closing the microphone always returns promptly, even from a device that
//! stopped delivering.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use alsa::pcm::{Access, Format, Frames, HwParams, PCM};
use alsa::{Direction, ValueOr};

use super::audio_io::open_on_worker;
use super::resample::i16_to_f32;
use crate::source::Worker;
use crate::{FrameSender, MediaError};

/// The longest sleep between two looks, so a stop request is noticed quickly.
const MAX_SLEEP: Duration = Duration::from_millis(20);

/// What was opened: the device's rate and channel count as ALSA agreed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Opened {
    pub rate: u32,
    pub channels: u16,
    pub period: usize,
}

/// Opens the ALSA device `pcm_id` for capture at about `rate` Hz and `channels` channels,
/// with 20 ms periods, and sends what it records on `raw` (interleaved, as f32) from a
/// thread of its own. An error it cannot recover from (the device went away) sets `failed`
/// and ends the thread.
pub(super) fn spawn(
    pcm_id: &str,
    rate: u32,
    channels: u16,
    raw: FrameSender<Vec<f32>>,
    failed: Arc<AtomicBool>,
) -> Result<(Worker, Opened), MediaError> {
    let pcm_id = pcm_id.to_owned();
    let device = pcm_id.clone();
    open_on_worker(
        "rounds-mic",
        "the microphone thread ended before opening",
        move || {
            let (pcm, opened) = open(&pcm_id, rate, channels)?;
            Ok(((pcm, opened), opened))
        },
        move |(pcm, opened), stop| {
            if let Err(error) = read_loop(&pcm, opened, stop, &raw) {
                tracing::warn!(%device, %error, "microphone stream error");
                failed.store(true, Ordering::Relaxed);
            }
            let _ = pcm.drop();
        },
    )
}

/// The ALSA name of the sound server's source `name`: its ALSA plugin's `pulse` PCM with the
/// source as the `DEVICE` argument, quoted. `None` for a name ALSA's argument syntax cannot
/// carry (a quote, a backslash or a control character); cpal's own stream opens those.
pub(super) fn sound_server_pcm(name: &str) -> Option<String> {
    let plain = !name.is_empty()
        && !name
            .chars()
            .any(|c| c == '"' || c == '\\' || c == '\'' || c.is_control());
    plain.then(|| format!("pulse:DEVICE=\"{name}\""))
}

fn open(pcm_id: &str, rate: u32, channels: u16) -> Result<(PCM, Opened), MediaError> {
    let fail = |what: &str, e: alsa::Error| {
        MediaError::Device(format!("the microphone {pcm_id} {what}: {e}"))
    };
    let pcm = PCM::new(pcm_id, Direction::Capture, true).map_err(|e| fail("does not open", e))?;
    let opened = {
        let hw = HwParams::any(&pcm).map_err(|e| fail("has no parameters", e))?;
        hw.set_access(Access::RWInterleaved)
            .and_then(|()| hw.set_format(Format::s16()))
            .and_then(|()| hw.set_channels(u32::from(channels)))
            .and_then(|()| hw.set_rate(rate, ValueOr::Nearest))
            .map_err(|e| fail("refuses 16-bit interleaved capture", e))?;
        let period = hw
            .set_period_size_near(Frames::from(rate / 50), ValueOr::Nearest)
            .map_err(|e| fail("refuses a 20 ms period", e))?;
        hw.set_buffer_size_near(period * 4)
            .map_err(|e| fail("refuses its buffer size", e))?;
        pcm.hw_params(&hw)
            .map_err(|e| fail("refuses its parameters", e))?;
        let current = pcm
            .hw_params_current()
            .map_err(|e| fail("has no parameters", e))?;
        Opened {
            rate: current.get_rate().map_err(|e| fail("has no rate", e))?,
            channels: current
                .get_channels()
                .ok()
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(channels),
            period: current
                .get_period_size()
                .ok()
                .and_then(|p| usize::try_from(p).ok())
                .filter(|&p| p > 0)
                .ok_or_else(|| {
                    MediaError::Device(format!("the microphone {pcm_id} has no period"))
                })?,
        }
    };
    pcm.start().map_err(|e| fail("does not start", e))?;
    Ok((pcm, opened))
}

fn read_loop(
    pcm: &PCM,
    opened: Opened,
    stop: &AtomicBool,
    raw: &FrameSender<Vec<f32>>,
) -> Result<(), alsa::Error> {
    let io = pcm.io_i16()?;
    let channels = usize::from(opened.channels);
    let mut buf = vec![0i16; opened.period * channels];
    let frame_time = Duration::from_secs(1) / opened.rate.max(1);
    while !stop.load(Ordering::Relaxed) {
        let avail = match pcm.avail() {
            Ok(n) => usize::try_from(n).unwrap_or(0),
            Err(e) => {
                // An overrun (the thread was not scheduled for a while): start again.
                pcm.try_recover(e, true)?;
                pcm.start()?;
                continue;
            }
        };
        if avail < opened.period {
            let missing = u32::try_from(opened.period - avail).unwrap_or(u32::MAX);
            let wait = frame_time.saturating_mul(missing) + Duration::from_millis(1);
            std::thread::sleep(wait.min(MAX_SLEEP));
            continue;
        }
        match io.readi(&mut buf) {
            Ok(frames) => {
                let got = &buf[..frames * channels];
                raw.push(got.iter().map(|&s| i16_to_f32(s)).collect());
            }
            Err(e) if e.errno() == libc::EAGAIN => {}
            Err(e) => {
                pcm.try_recover(e, true)?;
                pcm.start()?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::sound_server_pcm;

    #[test]
    fn sound_server_sources_are_named_as_the_plugin_argument() {
        assert_eq!(
            sound_server_pcm("alsa_input.usb-Jabra_Link_380-00.mono-fallback").as_deref(),
            Some("pulse:DEVICE=\"alsa_input.usb-Jabra_Link_380-00.mono-fallback\"")
        );
        assert_eq!(
            sound_server_pcm("bluez_source.00:1B:66:AA:BB:CC.handsfree_head_unit").as_deref(),
            Some("pulse:DEVICE=\"bluez_source.00:1B:66:AA:BB:CC.handsfree_head_unit\"")
        );
        for odd in ["", "a\"b", "a\\b", "it's", "line\nbreak"] {
            assert_eq!(sound_server_pcm(odd), None, "{odd:?}");
        }
    }
}
