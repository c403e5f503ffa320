//! VP8 encoder and decoder over the system libvpx (through `env-libvpx-sys`).
//!
//! This is the only module of the crate with unsafe code. Every FFI call is
//! made on a codec context that lives in a `Box` (stable address) owned by the
//! wrapper, and every wrapper method takes `&mut self`, so libvpx never sees
//! concurrent calls on one context.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_long, c_uint, c_ulong};
use std::ptr;

use vpx_sys as ffi;

use crate::MediaError;
use crate::frame::I420Frame;
use crate::rtp_vp8::vp8_is_keyframe;

/// Realtime VP8 encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Config {
    /// Frame width in pixels (1..=16383).
    pub width: u32,
    /// Frame height in pixels (1..=16383).
    pub height: u32,
    /// Nominal frame rate, used for rate control and the keyframe size cap.
    pub fps: u32,
    /// Target bitrate in kbit/s (constant bitrate).
    pub bitrate_kbps: u32,
    /// Encoder threads (1..=16).
    pub threads: u32,
}

impl Default for Vp8Config {
    /// 1280x720, 24 fps, 1200 kbps, threads for this machine ([`Vp8Config::threads_for`]).
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            fps: 24,
            bitrate_kbps: 1200,
            threads: Self::threads_for(1280, 720),
        }
    }
}

/// How many threads to encode a `width`x`height` picture with on a machine with `cores`
/// cores: one up to 640x480 or below 3 cores, 2 above 640x480, 3 above 1280x960 with 6
/// cores, 8 from 1920x1080 with more than 8.
///
/// libvpx's VP8 row threads wait for one another in a busy loop (`pause`), so a thread the
/// machine cannot run at the same moment spins instead of encoding. In a 720p call on a
/// 2-core machine, where the call's decoding, the webview and the audio want the cores too,
/// two encoder threads spent most of their time in that loop, about 40 % of the app's CPU.
pub fn encoder_threads(width: u32, height: u32, cores: usize) -> u32 {
    let pixels = u64::from(width) * u64::from(height);
    if pixels >= 1920 * 1080 && cores > 8 {
        8
    } else if pixels > 1280 * 960 && cores >= 6 {
        3
    } else if pixels > 640 * 480 && cores >= 3 {
        2
    } else {
        1
    }
}

impl Vp8Config {
    /// [`encoder_threads`] for this machine's cores.
    pub fn threads_for(width: u32, height: u32) -> u32 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        encoder_threads(width, height, cores)
    }

    fn validate(&self) -> Result<(), MediaError> {
        let bad = |what: String| Err(MediaError::InvalidConfig(what));
        if !(1..=16383).contains(&self.width) || !(1..=16383).contains(&self.height) {
            return bad(format!(
                "VP8 size {}x{} out of range",
                self.width, self.height
            ));
        }
        if !(1..=1000).contains(&self.fps) {
            return bad(format!("fps {} out of range 1..=1000", self.fps));
        }
        if self.bitrate_kbps == 0 {
            return bad("bitrate must be positive".into());
        }
        if !(1..=16).contains(&self.threads) {
            return bad(format!("threads {} out of range 1..=16", self.threads));
        }
        Ok(())
    }
}

/// One compressed VP8 frame.
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The VP8 bitstream of the frame (what goes into RTP payloads).
    pub data: Vec<u8>,
    /// True for a keyframe (decodable on its own).
    pub keyframe: bool,
    /// Presentation time of the source frame in milliseconds.
    pub pts_ms: u64,
}

impl std::fmt::Debug for EncodedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedFrame")
            .field("len", &self.data.len())
            .field("keyframe", &self.keyframe)
            .field("pts_ms", &self.pts_ms)
            .finish()
    }
}

/// The libvpx version string, e.g. "v1.12.0".
pub fn libvpx_version() -> String {
    // SAFETY: vpx_codec_version_str returns a pointer to a static NUL-terminated
    // string (never null).
    unsafe { CStr::from_ptr(ffi::vpx_codec_version_str()) }
        .to_string_lossy()
        .into_owned()
}

/// Error text for a failed call on an initialised context.
fn ctx_error(ctx: &mut ffi::vpx_codec_ctx_t, op: &'static str) -> MediaError {
    // SAFETY: `ctx` is an initialised context. vpx_codec_error returns a
    // pointer to a static NUL-terminated string; vpx_codec_error_detail returns
    // null or a NUL-terminated string owned by the context, which we copy
    // before the context is used again.
    let (message, detail) = unsafe {
        let message = CStr::from_ptr(ffi::vpx_codec_error(ctx))
            .to_string_lossy()
            .into_owned();
        let detail = ffi::vpx_codec_error_detail(ctx);
        let detail = if detail.is_null() {
            None
        } else {
            Some(CStr::from_ptr(detail).to_string_lossy().into_owned())
        };
        (message, detail)
    };
    let message = match detail {
        Some(d) if !d.is_empty() => format!("{message} ({d})"),
        _ => message,
    };
    MediaError::Vpx { op, message }
}

/// Error text for a status code (used when no context is available).
fn status_error(err: ffi::vpx_codec_err_t, op: &'static str) -> MediaError {
    // SAFETY: vpx_codec_err_to_string returns a pointer to a static
    // NUL-terminated string for every status value.
    let message = unsafe { CStr::from_ptr(ffi::vpx_codec_err_to_string(err)) }
        .to_string_lossy()
        .into_owned();
    MediaError::Vpx { op, message }
}

/// A realtime VP8 encoder: one pass, constant bitrate, no lookahead (lag 0),
/// error resilient, speed 6 (`cpu-used -6`), no frame dropping, and keyframes
/// only on the first frame and on demand (`force_keyframe`).
pub struct Vp8Encoder {
    ctx: Box<ffi::vpx_codec_ctx_t>,
    cfg: Box<ffi::vpx_codec_enc_cfg_t>,
    config: Vp8Config,
    last_pts: Option<i64>,
    frames_encoded: u64,
    keyframes_encoded: u64,
}

// SAFETY: a libvpx codec context has no thread affinity; it only must not be
// used from two threads at once, which `&mut self` on every method guarantees.
unsafe impl Send for Vp8Encoder {}

impl std::fmt::Debug for Vp8Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vp8Encoder")
            .field("config", &self.config)
            .field("frames_encoded", &self.frames_encoded)
            .finish_non_exhaustive()
    }
}

impl Vp8Encoder {
    /// Create an encoder for `cfg`.
    pub fn new(cfg: Vp8Config) -> Result<Self, MediaError> {
        cfg.validate()?;
        // SAFETY: vpx_codec_vp8_cx returns a pointer to libvpx's static VP8
        // encoder interface.
        let iface = unsafe { ffi::vpx_codec_vp8_cx() };

        let mut enc_cfg = Box::<ffi::vpx_codec_enc_cfg_t>::new_uninit();
        // SAFETY: `enc_cfg` points to writable memory of the right type; on
        // success vpx_codec_enc_config_default fills in every field.
        let err = unsafe { ffi::vpx_codec_enc_config_default(iface, enc_cfg.as_mut_ptr(), 0) };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(status_error(err, "vpx_codec_enc_config_default"));
        }
        // SAFETY: initialised by the successful call above.
        let mut enc_cfg = unsafe { enc_cfg.assume_init() };

        enc_cfg.g_w = cfg.width;
        enc_cfg.g_h = cfg.height;
        enc_cfg.g_threads = cfg.threads;
        // Millisecond timebase: pts are the frames' pts_ms.
        enc_cfg.g_timebase = ffi::vpx_rational { num: 1, den: 1000 };
        enc_cfg.g_error_resilient = ffi::VPX_ERROR_RESILIENT_DEFAULT;
        enc_cfg.g_pass = ffi::vpx_enc_pass::VPX_RC_ONE_PASS;
        enc_cfg.g_lag_in_frames = 0;
        // Never drop frames: callers count one output per input.
        enc_cfg.rc_dropframe_thresh = 0;
        enc_cfg.rc_resize_allowed = 0;
        enc_cfg.rc_end_usage = ffi::vpx_rc_mode::VPX_CBR;
        enc_cfg.rc_target_bitrate = cfg.bitrate_kbps;
        // Rate control as WebRTC's libvpx VP8 wrapper sets it up.
        enc_cfg.rc_min_quantizer = 2;
        enc_cfg.rc_max_quantizer = 56;
        enc_cfg.rc_undershoot_pct = 100;
        enc_cfg.rc_overshoot_pct = 15;
        enc_cfg.rc_buf_initial_sz = 500;
        enc_cfg.rc_buf_optimal_sz = 600;
        enc_cfg.rc_buf_sz = 1000;
        // Keyframes only on the first frame and when forced.
        enc_cfg.kf_mode = ffi::vpx_kf_mode::VPX_KF_DISABLED;
        enc_cfg.kf_min_dist = 0;
        enc_cfg.kf_max_dist = 0;

        // SAFETY: an all-zero vpx_codec_ctx_t is valid (null pointers, status
        // VPX_CODEC_OK = 0, zero flags) and is what the C API expects before
        // init.
        let mut ctx: Box<ffi::vpx_codec_ctx_t> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `ctx` and `enc_cfg` are valid boxed values that outlive the
        // context (both are stored in the returned encoder); the ABI version
        // matches the bindings, which were generated for this libvpx.
        let err = unsafe {
            ffi::vpx_codec_enc_init_ver(
                &mut *ctx,
                iface,
                &*enc_cfg,
                0,
                ffi::VPX_ENCODER_ABI_VERSION as c_int,
            )
        };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(status_error(err, "vpx_codec_enc_init"));
        }
        // From here Drop destroys the context.
        let mut enc = Self {
            ctx,
            cfg: enc_cfg,
            config: cfg,
            last_pts: None,
            frames_encoded: 0,
            keyframes_encoded: 0,
        };

        // Keyframes may be this many percent of the average frame size
        // (WebRTC's rule: half the optimal buffer, scaled by frame rate).
        let max_intra_pct = (600 / 2 * cfg.fps / 10).max(300);
        let controls: [(ffi::vp8e_enc_control_id, c_int); 5] = [
            (ffi::vp8e_enc_control_id::VP8E_SET_CPUUSED, -6),
            (ffi::vp8e_enc_control_id::VP8E_SET_NOISE_SENSITIVITY, 0),
            (ffi::vp8e_enc_control_id::VP8E_SET_STATIC_THRESHOLD, 1),
            (
                ffi::vp8e_enc_control_id::VP8E_SET_TOKEN_PARTITIONS,
                ffi::vp8e_token_partitions::VP8_ONE_TOKENPARTITION as c_int,
            ),
            (
                ffi::vp8e_enc_control_id::VP8E_SET_MAX_INTRA_BITRATE_PCT,
                c_int::try_from(max_intra_pct).unwrap_or(c_int::MAX),
            ),
        ];
        for (id, value) in controls {
            enc.control(id, value)?;
        }
        Ok(enc)
    }

    fn control(&mut self, id: ffi::vp8e_enc_control_id, value: c_int) -> Result<(), MediaError> {
        // SAFETY: the context is initialised; every control we use takes one
        // `int` (or `unsigned int`, same size and ABI) argument.
        let err = unsafe { ffi::vpx_codec_control_(&mut *self.ctx, id as c_int, value) };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(ctx_error(&mut self.ctx, "vpx_codec_control"));
        }
        Ok(())
    }

    /// The configuration in force (bitrate reflects `set_bitrate_kbps`).
    pub fn config(&self) -> &Vp8Config {
        &self.config
    }

    /// Frames encoded so far.
    pub fn frames_encoded(&self) -> u64 {
        self.frames_encoded
    }

    /// Keyframes produced so far.
    pub fn keyframes_encoded(&self) -> u64 {
        self.keyframes_encoded
    }

    /// Change the target bitrate; takes effect from the next frame.
    pub fn set_bitrate_kbps(&mut self, kbps: u32) -> Result<(), MediaError> {
        if kbps == 0 {
            return Err(MediaError::InvalidConfig("bitrate must be positive".into()));
        }
        self.cfg.rc_target_bitrate = kbps;
        // SAFETY: the context is initialised and `cfg` is a valid config that
        // libvpx copies.
        let err = unsafe { ffi::vpx_codec_enc_config_set(&mut *self.ctx, &*self.cfg) };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(ctx_error(&mut self.ctx, "vpx_codec_enc_config_set"));
        }
        self.config.bitrate_kbps = kbps;
        Ok(())
    }

    /// Encode one frame. With `force_keyframe` the output is a keyframe (use it
    /// to answer a PLI/FIR). Returns the compressed frames produced (one per
    /// input with these settings). Timestamps that do not increase are nudged
    /// forward by 1 ms for the encoder; the output keeps the input's `pts_ms`.
    pub fn encode(
        &mut self,
        frame: &I420Frame,
        force_keyframe: bool,
    ) -> Result<Vec<EncodedFrame>, MediaError> {
        if frame.width != self.config.width || frame.height != self.config.height {
            return Err(MediaError::InvalidInput(format!(
                "frame is {}x{}, encoder is {}x{}",
                frame.width, frame.height, self.config.width, self.config.height
            )));
        }
        if !frame.is_well_formed() {
            return Err(MediaError::InvalidInput(format!(
                "I420 frame {}x{} needs {} bytes, has {}",
                frame.width,
                frame.height,
                I420Frame::byte_len(frame.width, frame.height),
                frame.data.len()
            )));
        }

        let (w, h) = (frame.width, frame.height);
        let (cw, ch) = I420Frame::chroma_size(w, h);
        let base = frame.data.as_ptr().cast_mut();
        let mut img = MaybeUninit::<ffi::vpx_image_t>::uninit();
        // SAFETY: vpx_img_wrap only fills in the descriptor `img`; it does not
        // read or write the pixel memory. `base` points to at least
        // byte_len(w, h) bytes (checked above).
        let wrapped = unsafe {
            ffi::vpx_img_wrap(
                img.as_mut_ptr(),
                ffi::vpx_img_fmt::VPX_IMG_FMT_I420,
                w as c_uint,
                h as c_uint,
                1,
                base,
            )
        };
        if wrapped.is_null() {
            return Err(MediaError::InvalidInput(
                "vpx_img_wrap rejected the frame".into(),
            ));
        }
        // SAFETY: vpx_img_wrap succeeded, so it initialised `img`.
        let mut img = unsafe { img.assume_init() };
        // Point the planes at our tightly packed layout explicitly (libvpx
        // would otherwise round odd sizes up when computing plane offsets).
        let (luma, chroma) = (w as usize * h as usize, cw as usize * ch as usize);
        // SAFETY: both offsets are within the frame's buffer (checked length
        // is luma + 2 * chroma).
        let (u_ptr, v_ptr) = unsafe { (base.add(luma), base.add(luma + chroma)) };
        img.planes = [base, u_ptr, v_ptr, ptr::null_mut()];
        img.stride = [w as c_int, cw as c_int, cw as c_int, 0];

        let mut pts = frame.pts_ms as i64;
        if let Some(last) = self.last_pts
            && pts <= last
        {
            pts = last + 1;
        }
        self.last_pts = Some(pts);
        let duration = c_ulong::from((1000 / self.config.fps).max(1));
        let flags: c_long = if force_keyframe {
            ffi::VPX_EFLAG_FORCE_KF as c_long
        } else {
            0
        };

        // SAFETY: the context is initialised; `img` describes memory borrowed
        // from `frame` for the duration of this call, which libvpx only reads
        // (it copies the picture into its own buffers before returning).
        let err = unsafe {
            ffi::vpx_codec_encode(
                &mut *self.ctx,
                &img,
                pts,
                duration,
                flags,
                c_ulong::from(ffi::VPX_DL_REALTIME),
            )
        };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(ctx_error(&mut self.ctx, "vpx_codec_encode"));
        }
        self.frames_encoded += 1;

        let mut out = Vec::new();
        let mut iter: ffi::vpx_codec_iter_t = ptr::null();
        loop {
            // SAFETY: the context is initialised and `iter` starts null as the
            // API requires; the returned packet stays valid until the next call
            // on the context, and we copy what we need before then.
            let pkt = unsafe { ffi::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter) };
            if pkt.is_null() {
                break;
            }
            // SAFETY: non-null packets returned by libvpx are valid to read.
            let pkt = unsafe { &*pkt };
            if pkt.kind != ffi::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                continue;
            }
            // SAFETY: for VPX_CODEC_CX_FRAME_PKT the `frame` member of the
            // union is the active one, and `buf` points to `sz` bytes.
            let (data, keyframe) = unsafe {
                let f = pkt.data.frame;
                let data = if f.buf.is_null() || f.sz == 0 {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(f.buf.cast::<u8>(), f.sz as usize).to_vec()
                };
                (data, f.flags & ffi::VPX_FRAME_IS_KEY != 0)
            };
            if keyframe {
                self.keyframes_encoded += 1;
            }
            out.push(EncodedFrame {
                data,
                keyframe,
                pts_ms: frame.pts_ms,
            });
        }
        Ok(out)
    }
}

impl Drop for Vp8Encoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialised in `new` and is destroyed once.
        unsafe {
            ffi::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// What a decoded frame looked like.
#[derive(Clone, PartialEq)]
pub struct DecodedInfo {
    /// Decoded width in pixels.
    pub width: u32,
    /// Decoded height in pixels.
    pub height: u32,
    /// Whether the compressed frame was a keyframe.
    pub keyframe: bool,
    /// Mean of the decoded Y plane (16 = black, 235 = white).
    pub mean_luma: f64,
    /// The decoded picture, when the decoder was asked to keep it
    /// ([`Vp8Decoder::set_output_frames`]); its `pts_ms` is 0.
    pub frame: Option<I420Frame>,
}

impl std::fmt::Debug for DecodedInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedInfo")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("keyframe", &self.keyframe)
            .field("mean_luma", &self.mean_luma)
            .field("frame", &self.frame.is_some())
            .finish()
    }
}

/// A VP8 decoder.
pub struct Vp8Decoder {
    ctx: Box<ffi::vpx_codec_ctx_t>,
    _cfg: Box<ffi::vpx_codec_dec_cfg_t>,
    frames_decoded: u64,
    output_frames: bool,
}

// SAFETY: as for Vp8Encoder: no thread affinity, and `&mut self` on every
// method that touches the context.
unsafe impl Send for Vp8Decoder {}

impl std::fmt::Debug for Vp8Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vp8Decoder")
            .field("frames_decoded", &self.frames_decoded)
            .field("output_frames", &self.output_frames)
            .finish_non_exhaustive()
    }
}

impl Vp8Decoder {
    /// A single-threaded decoder that reports sizes and mean luma but does
    /// not copy pictures out (see [`Vp8Decoder::set_output_frames`]).
    pub fn new() -> Result<Self, MediaError> {
        Self::with_threads(1)
    }

    /// A decoder using up to `threads` threads (1..=16).
    pub fn with_threads(threads: u32) -> Result<Self, MediaError> {
        if !(1..=16).contains(&threads) {
            return Err(MediaError::InvalidConfig(format!(
                "decoder threads {threads} out of range 1..=16"
            )));
        }
        let cfg = Box::new(ffi::vpx_codec_dec_cfg_t {
            threads,
            w: 0,
            h: 0,
        });
        // SAFETY: all-zero is a valid pre-init context (see Vp8Encoder::new).
        let mut ctx: Box<ffi::vpx_codec_ctx_t> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `ctx` and `cfg` are boxed and kept alive with the decoder;
        // vpx_codec_vp8_dx returns libvpx's static VP8 decoder interface; the
        // ABI version matches the bindings.
        let err = unsafe {
            ffi::vpx_codec_dec_init_ver(
                &mut *ctx,
                ffi::vpx_codec_vp8_dx(),
                &*cfg,
                0,
                ffi::VPX_DECODER_ABI_VERSION as c_int,
            )
        };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(status_error(err, "vpx_codec_dec_init"));
        }
        Ok(Self {
            ctx,
            _cfg: cfg,
            frames_decoded: 0,
            output_frames: false,
        })
    }

    /// Whether [`DecodedInfo::frame`] carries a copy of the picture
    /// (about 1.4 MB per 720p frame; off by default).
    pub fn set_output_frames(&mut self, on: bool) {
        self.output_frames = on;
    }

    /// Frames decoded (pictures produced) so far.
    pub fn frames_decoded(&self) -> u64 {
        self.frames_decoded
    }

    /// Decode one complete VP8 frame. Returns `None` when the data produced no
    /// picture, and an error for data libvpx rejects (corrupt or missing
    /// references, for example a delta frame before any keyframe).
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<DecodedInfo>, MediaError> {
        if data.is_empty() {
            return Err(MediaError::InvalidInput("empty VP8 frame".into()));
        }
        let len = c_uint::try_from(data.len())
            .map_err(|_| MediaError::InvalidInput("VP8 frame too large".into()))?;
        // SAFETY: the context is initialised; `data` is valid for `len` bytes
        // during the call and libvpx does not keep the pointer afterwards.
        let err = unsafe {
            ffi::vpx_codec_decode(&mut *self.ctx, data.as_ptr(), len, ptr::null_mut(), 0)
        };
        if err != ffi::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(ctx_error(&mut self.ctx, "vpx_codec_decode"));
        }

        let keyframe = vp8_is_keyframe(data);
        let mut info = None;
        let mut iter: ffi::vpx_codec_iter_t = ptr::null();
        loop {
            // SAFETY: the context is initialised and `iter` starts null; the
            // image stays valid until the next decode call on this context.
            let img = unsafe { ffi::vpx_codec_get_frame(&mut *self.ctx, &mut iter) };
            if img.is_null() {
                break;
            }
            // SAFETY: non-null images returned by libvpx are valid to read.
            let img = unsafe { &*img };
            self.frames_decoded += 1;
            info = Some(self.read_image(img, keyframe)?);
        }
        Ok(info)
    }

    fn read_image(
        &self,
        img: &ffi::vpx_image_t,
        keyframe: bool,
    ) -> Result<DecodedInfo, MediaError> {
        if img.fmt != ffi::vpx_img_fmt::VPX_IMG_FMT_I420 {
            return Err(MediaError::Vpx {
                op: "vpx_codec_get_frame",
                message: format!("unexpected image format {:?}", img.fmt),
            });
        }
        let (w, h) = (img.d_w as usize, img.d_h as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let rows = |plane: usize, width: usize, height: usize| {
            let stride = img.stride[plane] as isize;
            let base = img.planes[plane];
            (0..height).map(move |r| {
                // SAFETY: for a decoded I420 image, plane `plane` holds
                // `height` rows of at least `width` bytes, `stride` apart.
                unsafe { std::slice::from_raw_parts(base.offset(r as isize * stride), width) }
            })
        };

        let luma_sum: u64 = rows(0, w, h)
            .map(|row| row.iter().map(|&v| u64::from(v)).sum::<u64>())
            .sum();
        let mean_luma = if w * h == 0 {
            0.0
        } else {
            luma_sum as f64 / (w * h) as f64
        };

        let frame = self.output_frames.then(|| {
            let mut data = Vec::with_capacity(w * h + 2 * cw * ch);
            for row in rows(0, w, h).chain(rows(1, cw, ch)).chain(rows(2, cw, ch)) {
                data.extend_from_slice(row);
            }
            I420Frame {
                width: img.d_w,
                height: img.d_h,
                data,
                pts_ms: 0,
            }
        });
        Ok(DecodedInfo {
            width: img.d_w,
            height: img.d_h,
            keyframe,
            mean_luma,
            frame,
        })
    }
}

impl Drop for Vp8Decoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialised in `with_threads` and is
        // destroyed once.
        unsafe {
            ffi::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::pattern::TestPattern;

    #[test]
    fn encoder_threads_leave_a_small_machine_one_thread() {
        // Two cores: one thread whatever the size, so no thread spins waiting for another.
        assert_eq!(encoder_threads(1280, 720, 2), 1);
        assert_eq!(encoder_threads(1920, 1080, 2), 1);
        assert_eq!(encoder_threads(640, 480, 16), 1);
        assert_eq!(encoder_threads(1280, 720, 4), 2);
        assert_eq!(encoder_threads(1920, 1080, 6), 3);
        assert_eq!(encoder_threads(1920, 1080, 12), 8);
        let here = Vp8Config::threads_for(1280, 720);
        assert!((1..=2).contains(&here));
        assert!(Vp8Config::default().validate().is_ok());
    }

    #[test]
    fn rejects_bad_config() {
        for cfg in [
            Vp8Config {
                width: 0,
                ..Vp8Config::default()
            },
            Vp8Config {
                fps: 0,
                ..Vp8Config::default()
            },
            Vp8Config {
                bitrate_kbps: 0,
                ..Vp8Config::default()
            },
            Vp8Config {
                threads: 0,
                ..Vp8Config::default()
            },
        ] {
            assert!(matches!(
                Vp8Encoder::new(cfg),
                Err(MediaError::InvalidConfig(_))
            ));
        }
    }

    #[test]
    fn rejects_wrong_frame_size() {
        let mut enc = Vp8Encoder::new(Vp8Config {
            width: 64,
            height: 48,
            ..Vp8Config::default()
        })
        .expect("encoder");
        let frame = TestPattern::new(32, 32, 24).next_frame();
        assert!(matches!(
            enc.encode(&frame, false),
            Err(MediaError::InvalidInput(_))
        ));
        let mut short = TestPattern::new(64, 48, 24).next_frame();
        short.data.pop();
        assert!(matches!(
            enc.encode(&short, false),
            Err(MediaError::InvalidInput(_))
        ));
    }

    #[test]
    fn odd_size_round_trip() {
        let cfg = Vp8Config {
            width: 33,
            height: 17,
            fps: 10,
            bitrate_kbps: 200,
            threads: 1,
        };
        let mut enc = Vp8Encoder::new(cfg).expect("encoder");
        let mut dec = Vp8Decoder::new().expect("decoder");
        dec.set_output_frames(true);
        let mut pattern = TestPattern::new(33, 17, 10);
        for i in 0..5 {
            let src = pattern.next_frame();
            let out = enc.encode(&src, false).expect("encode");
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].keyframe, i == 0);
            let info = dec.decode(&out[0].data).expect("decode").expect("picture");
            assert_eq!((info.width, info.height), (33, 17));
            let pic = info.frame.expect("frame copy");
            assert!(pic.is_well_formed());
        }
        assert_eq!(dec.frames_decoded(), 5);
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        let mut dec = Vp8Decoder::new().expect("decoder");
        assert!(dec.decode(&[]).is_err());
        assert!(dec.decode(&[0xff; 64]).is_err());
        assert_eq!(dec.frames_decoded(), 0);
    }

    #[test]
    fn version_is_reported() {
        assert!(libvpx_version().contains('1'));
    }
}
