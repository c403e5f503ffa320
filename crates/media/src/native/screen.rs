//! Screen capture for screen share on X11 (Linux), through the X protocol's `GetImage` on
//! the root window (xcb). Under Xvfb a screen exists, so it is tested there.
//!
//! Why not `xcap`: on Linux it always links PipeWire (libpipewire-0.3-dev, not installed
//! here) and Wayland portals even for X11, which is a heavy build for one root-window grab.
//! Wayland sessions need the desktop portal and PipeWire; that is not done yet.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use xcb::x;

use super::camera::CaptureFormat;
use super::convert::{RgbLayout, rgb_to_i420};
use crate::source::{VIDEO_QUEUE_FRAMES, Worker};
use crate::{FrameReceiver, I420Frame, MediaError, fit_within, frame_queue};

/// A running screen grab: I420 frames of the whole X screen, scaled down (aspect kept) to fit
/// the requested size, at the requested rate. Dropping it stops the grab.
#[derive(Debug)]
pub struct ScreenCapture {
    frames: FrameReceiver<I420Frame>,
    screen_size: (u32, u32),
    frame_size: (u32, u32),
    _worker: Worker,
}

impl ScreenCapture {
    /// Grabs X display `display` (`None`: `$DISPLAY`), scaled to fit `max.width` x
    /// `max.height`, `max.fps` times a second (1..=30).
    pub fn open(display: Option<&str>, max: CaptureFormat) -> Result<ScreenCapture, MediaError> {
        if !(1..=30).contains(&max.fps) || max.width < 2 || max.height < 2 {
            return Err(MediaError::InvalidConfig(format!(
                "screen capture runs at 1..=30 fps into at least 2x2, not {}x{} at {}",
                max.width, max.height, max.fps
            )));
        }
        let display = display.map(str::to_owned);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (tx, frames) = frame_queue(VIDEO_QUEUE_FRAMES);
        let worker = Worker::spawn("rounds-screen", move |stop| {
            let connected = xcb::Connection::connect(display.as_deref())
                .map_err(|e| MediaError::Device(format!("the X display cannot be opened: {e}")));
            let (conn, screen_num) = match connected {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let Some(screen) = conn.get_setup().roots().nth(screen_num as usize) else {
                let _ = ready_tx.send(Err(MediaError::Device(
                    "the X display has no screen".into(),
                )));
                return;
            };
            let (root, w, h) = (
                screen.root(),
                screen.width_in_pixels(),
                screen.height_in_pixels(),
            );
            let (fw, fh) = fit_within(u32::from(w), u32::from(h), max.width, max.height);
            let _ = ready_tx.send(Ok(((u32::from(w), u32::from(h)), (fw, fh))));
            let period = Duration::from_secs(1) / max.fps;
            let start = Instant::now();
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let frame = grab(&conn, root, w, h).and_then(|f| {
                    if (f.width, f.height) == (fw, fh) {
                        Ok(f)
                    } else {
                        f.scale_to(fw, fh)
                    }
                });
                match frame {
                    Ok(mut frame) => {
                        frame.pts_ms = start.elapsed().as_millis() as u64;
                        if !tx.push(frame) {
                            return;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "screen capture stopped");
                        return;
                    }
                }
                next += period;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        })?;
        let (screen_size, frame_size) = ready_rx
            .recv()
            .map_err(|_| MediaError::Device("the screen capture thread ended early".into()))??;
        Ok(ScreenCapture {
            frames,
            screen_size,
            frame_size,
            _worker: worker,
        })
    }

    /// The frames, oldest first.
    pub fn frames(&self) -> &FrameReceiver<I420Frame> {
        &self.frames
    }

    /// The size of the X screen.
    pub fn screen_size(&self) -> (u32, u32) {
        self.screen_size
    }

    /// The size of the frames delivered.
    pub fn frame_size(&self) -> (u32, u32) {
        self.frame_size
    }
}

fn grab(conn: &xcb::Connection, root: x::Window, w: u16, h: u16) -> Result<I420Frame, MediaError> {
    let cookie = conn.send_request(&x::GetImage {
        format: x::ImageFormat::ZPixmap,
        drawable: x::Drawable::Window(root),
        x: 0,
        y: 0,
        width: w,
        height: h,
        plane_mask: u32::MAX,
    });
    let reply = conn
        .wait_for_reply(cookie)
        .map_err(|e| MediaError::Device(format!("the screen cannot be read: {e}")))?;
    if !matches!(reply.depth(), 24 | 32) {
        return Err(MediaError::Device(format!(
            "screens of depth {} are not supported (24 or 32 only)",
            reply.depth()
        )));
    }
    // Depth 24/32 ZPixmap: 4 bytes per pixel, B G R X on little-endian servers.
    rgb_to_i420(
        reply.data(),
        u32::from(w),
        u32::from(h),
        usize::from(w) * 4,
        RgbLayout::Bgra,
    )
}
