//! Camera and screen pixel formats to I420, the encoder's input.
//!
//! Cameras deliver YUYV (4:2:2 packed), NV12 (4:2:0, interleaved chroma), MJPEG, grey or RGB;
//! screen grabs are RGBA or BGRA. Everything ends up as studio-range BT.601 I420, which is
//! what libvpx encodes and what the receivers assume. JPEG is full range, so its samples are
//! squeezed into 16..=235 (luma) and 16..=240 (chroma).

use nokhwa::utils::{FrameFormat, Resolution};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::{I420Frame, MediaError};

/// Pixel formats [`to_i420`] understands, in the order a camera mode is preferred when all
/// else is equal (cheapest conversion first).
pub const SUPPORTED_FORMATS: [FrameFormat; 6] = [
    FrameFormat::NV12,
    FrameFormat::YUYV,
    FrameFormat::MJPEG,
    FrameFormat::RAWRGB,
    FrameFormat::RAWBGR,
    FrameFormat::GRAY,
];

/// Converts one captured frame of `format` and `resolution` to I420.
pub fn to_i420(
    format: FrameFormat,
    resolution: Resolution,
    data: &[u8],
    pts_ms: u64,
) -> Result<I420Frame, MediaError> {
    let (w, h) = (resolution.width_x, resolution.height_y);
    let mut frame = match format {
        FrameFormat::YUYV => yuyv_to_i420(data, w, h)?,
        FrameFormat::NV12 => nv12_to_i420(data, w, h)?,
        FrameFormat::MJPEG => mjpeg_to_i420(data)?,
        FrameFormat::GRAY => gray_to_i420(data, w, h)?,
        FrameFormat::RAWRGB => rgb_to_i420(data, w, h, w as usize * 3, RgbLayout::Rgb)?,
        FrameFormat::RAWBGR => rgb_to_i420(data, w, h, w as usize * 3, RgbLayout::Bgr)?,
    };
    frame.pts_ms = pts_ms;
    Ok(frame)
}

/// Converts a nokhwa capture buffer to I420.
pub fn buffer_to_i420(buffer: &nokhwa::Buffer, pts_ms: u64) -> Result<I420Frame, MediaError> {
    to_i420(
        buffer.source_frame_format(),
        buffer.resolution(),
        buffer.buffer(),
        pts_ms,
    )
}

fn check_len(what: &str, data: &[u8], want: usize, w: u32, h: u32) -> Result<(), MediaError> {
    if w == 0 || h == 0 {
        return Err(MediaError::InvalidInput(format!(
            "a {what} frame cannot be {w}x{h}"
        )));
    }
    if data.len() < want {
        return Err(MediaError::InvalidInput(format!(
            "a {w}x{h} {what} frame needs {want} bytes, got {}",
            data.len()
        )));
    }
    Ok(())
}

/// Splits an I420 buffer into its three planes.
fn planes(data: &mut [u8], w: u32, h: u32) -> (&mut [u8], &mut [u8], &mut [u8]) {
    let (cw, ch) = I420Frame::chroma_size(w, h);
    let (y, rest) = data.split_at_mut(w as usize * h as usize);
    let (u, v) = rest.split_at_mut(cw as usize * ch as usize);
    (y, u, v)
}

fn avg2(a: u8, b: u8) -> u8 {
    (u16::from(a) + u16::from(b)).div_ceil(2) as u8
}

/// YUYV (YUY2): each pair of pixels is `Y0 U Y1 V`. Chroma is already halved across; the
/// two rows of each output chroma row are averaged.
pub fn yuyv_to_i420(data: &[u8], width: u32, height: u32) -> Result<I420Frame, MediaError> {
    let (w, h) = (width as usize, height as usize);
    let stride = w.div_ceil(2) * 4;
    check_len("YUYV", data, stride * h, width, height)?;
    let mut out = I420Frame::black(width, height, 0);
    let cw = w.div_ceil(2);
    let (y_plane, u_plane, v_plane) = planes(&mut out.data, width, height);
    for (row, src) in data.chunks_exact(stride).take(h).enumerate() {
        let dst = &mut y_plane[row * w..(row + 1) * w];
        for (x, y) in dst.iter_mut().enumerate() {
            *y = src[(x / 2) * 4 + (x % 2) * 2];
        }
    }
    for cy in 0..h.div_ceil(2) {
        let r0 = &data[2 * cy * stride..(2 * cy + 1) * stride];
        let r1 = if 2 * cy + 1 < h {
            &data[(2 * cy + 1) * stride..(2 * cy + 2) * stride]
        } else {
            r0
        };
        for cx in 0..cw {
            u_plane[cy * cw + cx] = avg2(r0[cx * 4 + 1], r1[cx * 4 + 1]);
            v_plane[cy * cw + cx] = avg2(r0[cx * 4 + 3], r1[cx * 4 + 3]);
        }
    }
    Ok(out)
}

/// NV12: the Y plane, then one plane of interleaved `U V` pairs at half resolution.
pub fn nv12_to_i420(data: &[u8], width: u32, height: u32) -> Result<I420Frame, MediaError> {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    check_len("NV12", data, w * h + 2 * cw * ch, width, height)?;
    let mut out = I420Frame::black(width, height, 0);
    let (y_plane, u_plane, v_plane) = planes(&mut out.data, width, height);
    y_plane.copy_from_slice(&data[..w * h]);
    for (i, uv) in data[w * h..w * h + 2 * cw * ch].chunks_exact(2).enumerate() {
        u_plane[i] = uv[0];
        v_plane[i] = uv[1];
    }
    Ok(out)
}

/// 8-bit grey: full-range luma, neutral chroma.
pub fn gray_to_i420(data: &[u8], width: u32, height: u32) -> Result<I420Frame, MediaError> {
    let (w, h) = (width as usize, height as usize);
    check_len("grey", data, w * h, width, height)?;
    let mut out = I420Frame::black(width, height, 0);
    for (dst, &g) in out.data[..w * h].iter_mut().zip(data) {
        *dst = full_to_studio_luma(g);
    }
    Ok(out)
}

fn full_to_studio_luma(v: u8) -> u8 {
    (16 + (u32::from(v) * 219 + 127) / 255) as u8
}

fn full_to_studio_chroma(v: u8) -> u8 {
    (128 + (i32::from(v) - 128) * 224 / 255) as u8
}

/// MJPEG: one baseline JPEG per frame, decoded to full-range YCbCr and subsampled to 4:2:0.
pub fn mjpeg_to_i420(data: &[u8]) -> Result<I420Frame, MediaError> {
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::YCbCr);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(data), options);
    let ycc = decoder
        .decode()
        .map_err(|e| MediaError::InvalidInput(format!("the MJPEG frame does not decode: {e}")))?;
    let info = decoder
        .info()
        .ok_or_else(|| MediaError::InvalidInput("the MJPEG frame has no header".into()))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    let (w, h) = (width as usize, height as usize);
    let components = match decoder.output_colorspace() {
        Some(ColorSpace::YCbCr) => 3,
        Some(ColorSpace::Luma) => 1,
        other => {
            return Err(MediaError::InvalidInput(format!(
                "the MJPEG frame decoded to {other:?}, not YCbCr"
            )));
        }
    };
    check_len("decoded MJPEG", &ycc, w * h * components, width, height)?;
    let mut out = I420Frame::black(width, height, 0);
    let cw = w.div_ceil(2);
    let (y_plane, u_plane, v_plane) = planes(&mut out.data, width, height);
    for (dst, px) in y_plane.iter_mut().zip(ycc.chunks_exact(components)) {
        *dst = full_to_studio_luma(px[0]);
    }
    if components == 3 {
        for cy in 0..h.div_ceil(2) {
            for cx in 0..cw {
                let (mut cb, mut cr, mut n) = (0u32, 0u32, 0u32);
                for y in 2 * cy..(2 * cy + 2).min(h) {
                    for x in 2 * cx..(2 * cx + 2).min(w) {
                        let p = (y * w + x) * 3;
                        cb += u32::from(ycc[p + 1]);
                        cr += u32::from(ycc[p + 2]);
                        n += 1;
                    }
                }
                u_plane[cy * cw + cx] = full_to_studio_chroma(((cb + n / 2) / n) as u8);
                v_plane[cy * cw + cx] = full_to_studio_chroma(((cr + n / 2) / n) as u8);
            }
        }
    }
    Ok(out)
}

/// Channel order of packed RGB pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RgbLayout {
    /// 3 bytes: R, G, B.
    Rgb,
    /// 3 bytes: B, G, R.
    Bgr,
    /// 4 bytes: R, G, B, A (alpha ignored).
    Rgba,
    /// 4 bytes: B, G, R, A (alpha ignored).
    Bgra,
}

impl RgbLayout {
    fn bytes(self) -> usize {
        match self {
            RgbLayout::Rgb | RgbLayout::Bgr => 3,
            RgbLayout::Rgba | RgbLayout::Bgra => 4,
        }
    }

    fn rgb(self, px: &[u8]) -> (i32, i32, i32) {
        match self {
            RgbLayout::Rgb | RgbLayout::Rgba => {
                (i32::from(px[0]), i32::from(px[1]), i32::from(px[2]))
            }
            RgbLayout::Bgr | RgbLayout::Bgra => {
                (i32::from(px[2]), i32::from(px[1]), i32::from(px[0]))
            }
        }
    }
}

/// Packed RGB (camera RAWRGB/RAWBGR, screen grabs) to studio-range BT.601 I420. `stride` is
/// the number of bytes from one row to the next (at least `width` pixels).
pub fn rgb_to_i420(
    data: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    layout: RgbLayout,
) -> Result<I420Frame, MediaError> {
    let (w, h) = (width as usize, height as usize);
    let bpp = layout.bytes();
    if stride < w * bpp {
        return Err(MediaError::InvalidInput(format!(
            "a row of {w} pixels needs {} bytes, the stride is {stride}",
            w * bpp
        )));
    }
    check_len(
        "RGB",
        data,
        stride * (h.max(1) - 1) + w * bpp,
        width,
        height,
    )?;
    let mut out = I420Frame::black(width, height, 0);
    let cw = w.div_ceil(2);
    let (y_plane, u_plane, v_plane) = planes(&mut out.data, width, height);
    let pixel = |x: usize, y: usize| layout.rgb(&data[y * stride + x * bpp..]);
    for y in 0..h {
        for x in 0..w {
            let (r, g, b) = pixel(x, y);
            y_plane[y * w + x] = (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8;
        }
    }
    for cy in 0..h.div_ceil(2) {
        for cx in 0..cw {
            let (mut r, mut g, mut b, mut n) = (0, 0, 0, 0);
            for y in 2 * cy..(2 * cy + 2).min(h) {
                for x in 2 * cx..(2 * cx + 2).min(w) {
                    let (pr, pg, pb) = pixel(x, y);
                    r += pr;
                    g += pg;
                    b += pb;
                    n += 1;
                }
            }
            let (r, g, b) = (r / n, g / n, b / n);
            u_plane[cy * cw + cx] = (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128) as u8;
            v_plane[cy * cw + cx] = (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128) as u8;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(w: u32, h: u32) -> Resolution {
        Resolution::new(w, h)
    }

    #[test]
    fn yuyv_from_a_nokhwa_buffer() {
        // 4x2: row 0 Y = 10,20,30,40 with (U,V) = (100,200),(110,210);
        //      row 1 Y = 50,60,70,80 with (U,V) = (102,202),(112,212).
        let bytes = [
            10, 100, 20, 200, 30, 110, 40, 210, //
            50, 102, 60, 202, 70, 112, 80, 212,
        ];
        let buf = nokhwa::Buffer::new(res(4, 2), &bytes, FrameFormat::YUYV);
        let f = buffer_to_i420(&buf, 40).expect("convert");
        assert_eq!((f.width, f.height, f.pts_ms), (4, 2, 40));
        assert_eq!(f.y_plane(), &[10, 20, 30, 40, 50, 60, 70, 80]);
        assert_eq!(f.u_plane(), &[101, 111]);
        assert_eq!(f.v_plane(), &[201, 211]);
    }

    #[test]
    fn nv12_from_a_nokhwa_buffer() {
        let mut bytes: Vec<u8> = (0..16).collect(); // 4x4 Y
        bytes.extend([100, 200, 110, 210, 120, 220, 130, 230]); // 2x2 UV pairs
        let buf = nokhwa::Buffer::new(res(4, 4), &bytes, FrameFormat::NV12);
        let f = buffer_to_i420(&buf, 0).expect("convert");
        assert_eq!(f.y_plane(), &(0..16).collect::<Vec<u8>>()[..]);
        assert_eq!(f.u_plane(), &[100, 110, 120, 130]);
        assert_eq!(f.v_plane(), &[200, 210, 220, 230]);
    }

    #[test]
    fn short_buffers_are_refused() {
        let buf = nokhwa::Buffer::new(res(4, 4), &[0; 10], FrameFormat::YUYV);
        assert!(matches!(
            buffer_to_i420(&buf, 0),
            Err(MediaError::InvalidInput(m)) if m.contains("4x4")
        ));
        assert!(nv12_to_i420(&[0; 23], 4, 4).is_err());
        assert!(mjpeg_to_i420(b"not a jpeg").is_err());
    }

    #[test]
    fn rgb_primaries_land_on_bt601_values() {
        // White, black, red, blue as one 2x2 RGBA image (chroma averages them).
        let px = [
            255, 255, 255, 255, 0, 0, 0, 255, //
            255, 0, 0, 255, 0, 0, 255, 255,
        ];
        let f = rgb_to_i420(&px, 2, 2, 8, RgbLayout::Rgba).expect("convert");
        assert_eq!(f.y_plane(), &[235, 16, 82, 41]);
        let single = |r: u8, g: u8, b: u8| {
            rgb_to_i420(&[r, g, b], 1, 1, 3, RgbLayout::Rgb).expect("convert")
        };
        let red = single(255, 0, 0);
        assert_eq!(
            (red.y_plane()[0], red.u_plane()[0], red.v_plane()[0]),
            (82, 90, 240)
        );
        let grey = single(128, 128, 128);
        assert_eq!((grey.u_plane()[0], grey.v_plane()[0]), (128, 128));
        let bgr = rgb_to_i420(&[0, 0, 255], 1, 1, 3, RgbLayout::Bgr).expect("convert");
        assert_eq!(bgr.y_plane(), red.y_plane());
    }

    #[test]
    fn mjpeg_from_a_nokhwa_buffer_matches_the_rgb_original() {
        // A 64x32 picture: red left half, blue right half, a grey gradient along the bottom.
        let (w, h) = (64u32, 32u32);
        let mut rgb = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let px = if y >= 24 {
                    let g = (x * 4) as u8;
                    [g, g, g]
                } else if x < 32 {
                    [220, 30, 30]
                } else {
                    [30, 30, 220]
                };
                rgb.extend(px);
            }
        }
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode(&rgb, w, h, image::ExtendedColorType::Rgb8)
            .expect("encode");
        let buf = nokhwa::Buffer::new(res(w, h), &jpeg, FrameFormat::MJPEG);
        let decoded = buffer_to_i420(&buf, 5).expect("convert");
        let reference = rgb_to_i420(&rgb, w, h, w as usize * 3, RgbLayout::Rgb).expect("rgb");
        assert_eq!((decoded.width, decoded.height, decoded.pts_ms), (64, 32, 5));
        let psnr = crate::luma_psnr(&decoded, &reference).expect("same size");
        assert!(psnr > 30.0, "luma PSNR {psnr}");
        // Chroma: red on the left (V high), blue on the right (U high).
        let (u, v) = (decoded.u_plane(), decoded.v_plane());
        assert!(v[32 * 2 + 4] > 200 && u[32 * 2 + 4] < 128, "red");
        assert!(u[32 * 2 + 28] > 200 && v[32 * 2 + 28] < 128, "blue");
    }

    #[test]
    fn grey_is_mapped_to_studio_range() {
        let f = gray_to_i420(&[0, 255, 128, 64], 2, 2).expect("convert");
        assert_eq!(f.y_plane(), &[16, 235, 126, 71]);
        assert_eq!(f.u_plane(), &[128]);
    }
}
