//! Camera capture through nokhwa: choose the mode, convert each frame to I420, deliver it on
//! a drop-oldest queue from a thread of its own.

use std::sync::atomic::Ordering;
use std::time::Instant;

use nokhwa::Camera;
use nokhwa::utils::{CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType};

use super::convert::{SUPPORTED_FORMATS, buffer_to_i420};
use crate::source::{VIDEO_QUEUE_FRAMES, Worker};
use crate::{FrameReceiver, I420Frame, MediaError, frame_queue};

/// The capture mode we ask a camera for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CaptureFormat {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
}

impl Default for CaptureFormat {
    /// 1280x720 at 24 fps, the two-person visit configuration.
    fn default() -> Self {
        CaptureFormat {
            width: 1280,
            height: 720,
            fps: 24,
        }
    }
}

/// Picks the camera mode closest to `want` among `offered`, or `None` when no offered mode
/// has a pixel format we can convert.
///
/// In order of importance: the size closest to the wanted one (by area, on a log scale, with a
/// penalty for a different aspect ratio; a larger size beats an equally far smaller one,
/// since it can be scaled down without loss); then a frame rate that reaches the wanted one
/// (the lowest such), else the highest below; then the pixel format that is cheapest to
/// convert (NV12, YUYV, then MJPEG). So 1280x720 MJPEG at 30 fps beats 1280x720 YUYV at
/// 10 fps, which is how most USB webcams offer 720p.
pub fn choose_format(offered: &[CameraFormat], want: CaptureFormat) -> Option<CameraFormat> {
    offered
        .iter()
        .filter(|f| SUPPORTED_FORMATS.contains(&f.format()))
        .filter(|f| f.width() > 0 && f.height() > 0 && f.frame_rate() > 0)
        .min_by_key(|f| format_cost(f, want))
        .copied()
}

/// Lexicographic cost of a mode: (size, frame rate, pixel format); lower is better.
fn format_cost(f: &CameraFormat, want: CaptureFormat) -> (u64, u64, usize) {
    let area = |w: u32, h: u32| f64::from(w.max(1)) * f64::from(h.max(1));
    let ratio = area(f.width(), f.height()) / area(want.width, want.height);
    // A smaller picture costs twice as much as a larger one at the same distance.
    let size = if ratio < 1.0 {
        -2.0 * ratio.log2()
    } else {
        ratio.log2()
    };
    let aspect = |w: u32, h: u32| f64::from(w.max(1)) / f64::from(h.max(1));
    let aspect_off = (aspect(f.width(), f.height()) / aspect(want.width, want.height))
        .log2()
        .abs();
    let size_cost = ((size + aspect_off) * 1000.0).round() as u64;
    let fps = f.frame_rate();
    let fps_cost = if fps >= want.fps {
        u64::from(fps - want.fps)
    } else {
        // Any rate that reaches the target beats every rate below it.
        1_000 + u64::from(want.fps - fps) * 10
    };
    let format_rank = SUPPORTED_FORMATS
        .iter()
        .position(|&p| p == f.format())
        .unwrap_or(SUPPORTED_FORMATS.len());
    (size_cost, fps_cost, format_rank)
}

/// A running camera: frames arrive as I420 on [`CameraCapture::frames`], at most
/// [`VIDEO_QUEUE_FRAMES`] waiting (older ones are dropped, the capture thread never waits).
/// Dropping it stops the camera.
#[derive(Debug)]
pub struct CameraCapture {
    frames: FrameReceiver<I420Frame>,
    format: CaptureFormat,
    pixel_format: FrameFormat,
    device_id: String,
    worker: Worker,
}

impl CameraCapture {
    /// Opens a camera (`None`: the first one) in the mode closest to `want` (see
    /// [`choose_format`]) and starts capturing. `device_id` is a [`super::DeviceInfo::id`] of
    /// kind camera.
    pub fn open(device_id: Option<&str>, want: CaptureFormat) -> Result<CameraCapture, MediaError> {
        let index = match device_id {
            Some(id) => parse_index(id)?,
            None => CameraIndex::Index(0),
        };
        let id = index.to_string();
        // The camera is opened on the capture thread (nokhwa's handles are not Send
        // everywhere); it reports back what it chose, or why it failed.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<CameraFormat, MediaError>>();
        let (tx, frames) = frame_queue(VIDEO_QUEUE_FRAMES);
        let worker = Worker::spawn("rounds-camera", move |stop| {
            let mut camera = match open_camera(index, want) {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(camera.camera_format()));
            let start = Instant::now();
            let mut failures = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let buffer = match camera.frame() {
                    Ok(b) => b,
                    Err(error) => {
                        failures += 1;
                        if failures > 50 {
                            tracing::warn!(%error, "the camera stopped delivering frames");
                            return;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        continue;
                    }
                };
                failures = 0;
                let pts = start.elapsed().as_millis() as u64;
                match buffer_to_i420(&buffer, pts) {
                    Ok(frame) => {
                        if !tx.push(frame) {
                            break;
                        }
                    }
                    Err(error) => tracing::debug!(%error, "camera frame dropped"),
                }
            }
            let _ = camera.stop_stream();
        })?;
        let chosen = ready_rx
            .recv()
            .map_err(|_| MediaError::Device("the camera thread ended before opening".into()))??;
        Ok(CameraCapture {
            frames,
            format: CaptureFormat {
                width: chosen.width(),
                height: chosen.height(),
                fps: chosen.frame_rate(),
            },
            pixel_format: chosen.format(),
            device_id: id,
            worker,
        })
    }

    /// The frames, oldest first.
    pub fn frames(&self) -> &FrameReceiver<I420Frame> {
        &self.frames
    }

    /// The mode the camera runs in.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// The camera's pixel format, e.g. "MJPEG" (for diagnostics).
    pub fn pixel_format(&self) -> String {
        self.pixel_format.to_string()
    }

    /// The device id this capture runs on.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Never synthetic: this is a real camera.
    pub fn is_synthetic(&self) -> bool {
        false
    }

    /// Stops the camera now (dropping does the same).
    pub fn stop(mut self) {
        self.worker.stop();
    }
}

/// Device ids of cameras are nokhwa indices as text ("0", "1", ...) or, on some systems,
/// paths; both are accepted.
fn parse_index(id: &str) -> Result<CameraIndex, MediaError> {
    if id.trim().is_empty() {
        return Err(MediaError::Device("the camera id is empty".into()));
    }
    Ok(match id.parse::<u32>() {
        Ok(n) => CameraIndex::Index(n),
        Err(_) => CameraIndex::String(id.to_owned()),
    })
}

fn open_camera(index: CameraIndex, want: CaptureFormat) -> Result<Camera, MediaError> {
    let requested = RequestedFormat::with_formats(RequestedFormatType::None, &SUPPORTED_FORMATS);
    let mut camera = Camera::new(index.clone(), requested)
        .map_err(|e| MediaError::Device(format!("the camera {index} cannot be opened: {e}")))?;
    let offered = camera
        .compatible_camera_formats()
        .map_err(|e| MediaError::Device(format!("the camera {index} lists no modes: {e}")))?;
    let chosen = choose_format(&offered, want).ok_or_else(|| {
        MediaError::Device(format!(
            "the camera {index} offers no mode in a pixel format we can use (YUYV, NV12, MJPEG, RGB, grey)"
        ))
    })?;
    camera
        .set_camera_requset(RequestedFormat::with_formats(
            RequestedFormatType::Exact(chosen),
            &[chosen.format()],
        ))
        .map_err(|e| MediaError::Device(format!("the camera {index} refused {chosen}: {e}")))?;
    camera
        .open_stream()
        .map_err(|e| MediaError::Device(format!("the camera {index} does not start: {e}")))?;
    Ok(camera)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(w: u32, h: u32, f: FrameFormat, fps: u32) -> CameraFormat {
        CameraFormat::new_from(w, h, f, fps)
    }

    const HD24: CaptureFormat = CaptureFormat {
        width: 1280,
        height: 720,
        fps: 24,
    };

    #[test]
    fn exact_mode_wins() {
        let offered = [
            mode(640, 480, FrameFormat::YUYV, 30),
            mode(1280, 720, FrameFormat::YUYV, 24),
            mode(1920, 1080, FrameFormat::MJPEG, 30),
        ];
        assert_eq!(choose_format(&offered, HD24), Some(offered[1]));
    }

    #[test]
    fn typical_webcam_takes_mjpeg_for_720p() {
        // YUYV 720p only at 10 fps; MJPEG reaches 30.
        let offered = [
            mode(1280, 720, FrameFormat::YUYV, 10),
            mode(1280, 720, FrameFormat::MJPEG, 30),
            mode(1280, 720, FrameFormat::MJPEG, 60),
            mode(640, 480, FrameFormat::YUYV, 30),
        ];
        assert_eq!(choose_format(&offered, HD24), Some(offered[1]));
    }

    #[test]
    fn same_mode_prefers_the_cheapest_conversion() {
        let offered = [
            mode(1280, 720, FrameFormat::MJPEG, 24),
            mode(1280, 720, FrameFormat::YUYV, 24),
            mode(1280, 720, FrameFormat::NV12, 24),
        ];
        assert_eq!(choose_format(&offered, HD24), Some(offered[2]));
    }

    #[test]
    fn closest_size_when_720p_is_missing() {
        // 1280x720 is missing: 1920x1080 (larger) beats 640x360 (smaller), both 16:9.
        let offered = [
            mode(640, 360, FrameFormat::YUYV, 30),
            mode(1920, 1080, FrameFormat::MJPEG, 30),
            mode(320, 240, FrameFormat::YUYV, 30),
        ];
        assert_eq!(choose_format(&offered, HD24), Some(offered[1]));
        // A 4:3 camera: 960x720 is nearer 720p than 640x480 or 1600x1200.
        let four_three = [
            mode(640, 480, FrameFormat::YUYV, 30),
            mode(960, 720, FrameFormat::YUYV, 30),
            mode(1600, 1200, FrameFormat::YUYV, 30),
        ];
        assert_eq!(choose_format(&four_three, HD24), Some(four_three[1]));
    }

    #[test]
    fn slow_modes_lose_and_unknown_formats_are_skipped() {
        let offered = [
            mode(1280, 720, FrameFormat::YUYV, 15),
            mode(1280, 720, FrameFormat::YUYV, 5),
        ];
        assert_eq!(choose_format(&offered, HD24), Some(offered[0]));
        assert_eq!(choose_format(&[], HD24), None);
        assert!(parse_index("").is_err());
        assert!(matches!(parse_index("2"), Ok(CameraIndex::Index(2))));
    }
}
