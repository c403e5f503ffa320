//! Raw I420 (YUV 4:2:0 planar) frames, and resizing them.

use crate::MediaError;

/// One raw video frame in I420: the full-resolution Y plane, then the U and V
/// planes at half resolution (rounded up), each tightly packed (stride = width
/// of the plane).
#[derive(Clone, PartialEq, Eq)]
pub struct I420Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Y plane, then U plane, then V plane.
    pub data: Vec<u8>,
    /// Presentation time in milliseconds.
    pub pts_ms: u64,
}

impl std::fmt::Debug for I420Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("I420Frame")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("data_len", &self.data.len())
            .field("pts_ms", &self.pts_ms)
            .finish()
    }
}

impl I420Frame {
    /// Width and height of each chroma plane.
    pub fn chroma_size(width: u32, height: u32) -> (u32, u32) {
        (width.div_ceil(2), height.div_ceil(2))
    }

    /// Number of bytes of an I420 frame of this size.
    pub fn byte_len(width: u32, height: u32) -> usize {
        let (cw, ch) = Self::chroma_size(width, height);
        width as usize * height as usize + 2 * cw as usize * ch as usize
    }

    /// A black frame (Y = 16, U = V = 128, studio range).
    pub fn black(width: u32, height: u32, pts_ms: u64) -> Self {
        let luma = width as usize * height as usize;
        let mut data = vec![128u8; Self::byte_len(width, height)];
        data[..luma].fill(16);
        Self {
            width,
            height,
            data,
            pts_ms,
        }
    }

    /// True when `data` has exactly the length the dimensions call for.
    pub fn is_well_formed(&self) -> bool {
        self.data.len() == Self::byte_len(self.width, self.height)
    }

    fn luma_len(&self) -> usize {
        self.width as usize * self.height as usize
    }

    fn chroma_len(&self) -> usize {
        let (cw, ch) = Self::chroma_size(self.width, self.height);
        cw as usize * ch as usize
    }

    /// The Y plane (`width` bytes per row).
    pub fn y_plane(&self) -> &[u8] {
        &self.data[..self.luma_len()]
    }

    /// The U plane (`width.div_ceil(2)` bytes per row).
    pub fn u_plane(&self) -> &[u8] {
        let start = self.luma_len();
        &self.data[start..start + self.chroma_len()]
    }

    /// The V plane (`width.div_ceil(2)` bytes per row).
    pub fn v_plane(&self) -> &[u8] {
        let start = self.luma_len() + self.chroma_len();
        &self.data[start..start + self.chroma_len()]
    }

    /// Mean of the Y plane (16 = black, 235 = white in studio range).
    pub fn mean_luma(&self) -> f64 {
        let y = self.y_plane();
        if y.is_empty() {
            return 0.0;
        }
        y.iter().map(|&v| u64::from(v)).sum::<u64>() as f64 / y.len() as f64
    }
}

impl I420Frame {
    /// This frame resized to `width` x `height` (the `pts_ms` is kept). Shrinking averages
    /// the source pixels each output pixel covers (a box filter, which does not alias);
    /// enlarging interpolates bilinearly. A 1280x720 frame shrinks to a 320x180 thumbnail in
    /// well under a millisecond in release builds. The same size returns a copy.
    ///
    /// # Errors
    /// [`MediaError::InvalidInput`] for a zero target size or a frame whose data does not
    /// match its dimensions.
    pub fn scale_to(&self, width: u32, height: u32) -> Result<I420Frame, MediaError> {
        if width == 0 || height == 0 {
            return Err(MediaError::InvalidInput(format!(
                "cannot scale a frame to {width}x{height}"
            )));
        }
        if !self.is_well_formed() || self.width == 0 || self.height == 0 {
            return Err(MediaError::InvalidInput(format!(
                "the {}x{} frame has {} bytes, not {}",
                self.width,
                self.height,
                self.data.len(),
                Self::byte_len(self.width, self.height)
            )));
        }
        if (width, height) == (self.width, self.height) {
            return Ok(self.clone());
        }
        let mut data = vec![0u8; Self::byte_len(width, height)];
        let (scw, sch) = Self::chroma_size(self.width, self.height);
        let (dcw, dch) = Self::chroma_size(width, height);
        let luma = (width * height) as usize;
        let chroma = (dcw * dch) as usize;
        let (dy, rest) = data.split_at_mut(luma);
        let (du, dv) = rest.split_at_mut(chroma);
        let src = Plane {
            data: self.y_plane(),
            width: self.width as usize,
            height: self.height as usize,
        };
        scale_plane(&src, dy, width as usize, height as usize);
        for (plane, out) in [(self.u_plane(), du), (self.v_plane(), dv)] {
            let src = Plane {
                data: plane,
                width: scw as usize,
                height: sch as usize,
            };
            scale_plane(&src, out, dcw as usize, dch as usize);
        }
        Ok(I420Frame {
            width,
            height,
            data,
            pts_ms: self.pts_ms,
        })
    }

    /// The largest size with this frame's aspect ratio that fits in `max_width` x
    /// `max_height`, with even dimensions (at least 2x2). Never larger than the frame itself.
    pub fn fit_within(&self, max_width: u32, max_height: u32) -> (u32, u32) {
        fit_within(self.width, self.height, max_width, max_height)
    }
}

/// The largest size with the aspect ratio of `width` x `height` that fits in `max_width` x
/// `max_height`, never larger than the source, with even dimensions of at least 2.
pub fn fit_within(width: u32, height: u32, max_width: u32, max_height: u32) -> (u32, u32) {
    if width == 0 || height == 0 {
        return (2, 2);
    }
    let scale = f64::min(
        f64::from(max_width.min(width)) / f64::from(width),
        f64::from(max_height.min(height)) / f64::from(height),
    );
    let even = |v: u32| (((f64::from(v) * scale).round() as u32) & !1).max(2);
    (even(width), even(height))
}

struct Plane<'a> {
    data: &'a [u8],
    width: usize,
    height: usize,
}

/// Resizes one plane: box average where both axes shrink, bilinear otherwise.
fn scale_plane(src: &Plane<'_>, dst: &mut [u8], dw: usize, dh: usize) {
    if dw <= src.width && dh <= src.height {
        box_plane(src, dst, dw, dh);
    } else {
        bilinear_plane(src, dst, dw, dh);
    }
}

/// Box average, each output pixel the rounded mean of the source block it covers. Blocks
/// partition the source: each spans `sw / dw` or one more columns, `sh / dh` or one more rows.
/// Runs on every decoded frame drawn smaller than it came, so it avoids the per-pixel
/// division (a multiply by a reciprocal exact for these sums) and sums rows into a line
/// buffer the compiler vectorises.
fn box_plane(src: &Plane<'_>, dst: &mut [u8], dw: usize, dh: usize) {
    let (sw, sh) = (src.width, src.height);
    let (wmin, hmin) = (sw / dw, sh / dh);
    // The largest block's sum plus half its size must stay below 2^16 for the reciprocal
    // to be exact (and for the line buffer's u16): blocks under 256 pixels. Larger
    // reductions make small pictures; the plain division is cheap there.
    if (wmin + 1) * (hmin + 1) >= 256 {
        return box_plane_dividing(src, dst, dw, dh);
    }
    // Where each output column's block ends.
    let ends: Vec<usize> = (1..=dw).map(|x| x * sw / dw).collect();
    let mut line = vec![0u16; sw];
    for (y, out) in dst.chunks_exact_mut(dw).take(dh).enumerate() {
        let y0 = y * sh / dh;
        let y1 = (y + 1) * sh / dh;
        let mut rows = src.data[y0 * sw..y1 * sw].chunks_exact(sw);
        if let Some(first) = rows.next() {
            for (l, &v) in line.iter_mut().zip(first) {
                *l = u16::from(v);
            }
        }
        for row in rows {
            for (l, &v) in line.iter_mut().zip(row) {
                *l += u16::from(v);
            }
        }
        let height = (y1 - y0) as u64;
        // q = (sum + n / 2) / n as ((sum + n / 2) * ceil(2^32 / n)) >> 32: exact for
        // sum + n / 2 < 2^16 (Granlund and Montgomery), true of every block here.
        let reciprocal = |n: u64| (1u64 << 32).div_ceil(n);
        let narrow = (wmin as u64 * height, reciprocal(wmin as u64 * height));
        let wide = (
            (wmin as u64 + 1) * height,
            reciprocal((wmin as u64 + 1) * height),
        );
        let mut x0 = 0;
        for (o, &x1) in out.iter_mut().zip(&ends) {
            // Blocks one or two columns wide (any reduction under 3:1) skip the slice.
            let sum = match x1 - x0 {
                1 => u64::from(line[x0]),
                2 => u64::from(line[x0]) + u64::from(line[x0 + 1]),
                _ => line[x0..x1].iter().map(|&v| u64::from(v)).sum(),
            };
            let (n, r) = if x1 - x0 == wmin { narrow } else { wide };
            *o = (((sum + n / 2) * r) >> 32) as u8;
            x0 = x1;
        }
    }
}

/// Box average with a division per pixel: for blocks of 256 source pixels or more (a 16x
/// reduction in both axes, or more in one), where the reciprocal would not be exact.
fn box_plane_dividing(src: &Plane<'_>, dst: &mut [u8], dw: usize, dh: usize) {
    // Source columns covered by each output column, computed once.
    let cols: Vec<(usize, usize)> = (0..dw)
        .map(|x| {
            let x0 = x * src.width / dw;
            let x1 = ((x + 1) * src.width / dw).max(x0 + 1);
            (x0, x1)
        })
        .collect();
    let mut sums = vec![0u32; dw];
    for y in 0..dh {
        let y0 = y * src.height / dh;
        let y1 = ((y + 1) * src.height / dh).max(y0 + 1);
        sums.fill(0);
        for row in src.data[y0 * src.width..y1 * src.width].chunks_exact(src.width) {
            for (sum, &(x0, x1)) in sums.iter_mut().zip(&cols) {
                *sum += row[x0..x1].iter().map(|&v| u32::from(v)).sum::<u32>();
            }
        }
        let rows = (y1 - y0) as u32;
        for ((out, sum), &(x0, x1)) in dst[y * dw..(y + 1) * dw].iter_mut().zip(&sums).zip(&cols) {
            let n = rows * (x1 - x0) as u32;
            *out = ((sum + n / 2) / n) as u8;
        }
    }
}

fn bilinear_plane(src: &Plane<'_>, dst: &mut [u8], dw: usize, dh: usize) {
    // Pixel centres map onto pixel centres; weights in 1/256ths.
    let map = |i: usize, d: usize, s: usize| -> (usize, usize, u32) {
        let pos = ((i as f64 + 0.5) * s as f64 / d as f64 - 0.5).max(0.0);
        let i0 = (pos.floor() as usize).min(s - 1);
        let i1 = (i0 + 1).min(s - 1);
        let w = ((pos - i0 as f64) * 256.0).round().clamp(0.0, 256.0) as u32;
        (i0, i1, w)
    };
    let cols: Vec<(usize, usize, u32)> = (0..dw).map(|x| map(x, dw, src.width)).collect();
    for y in 0..dh {
        let (y0, y1, wy) = map(y, dh, src.height);
        let r0 = &src.data[y0 * src.width..(y0 + 1) * src.width];
        let r1 = &src.data[y1 * src.width..(y1 + 1) * src.width];
        for (out, &(x0, x1, wx)) in dst[y * dw..(y + 1) * dw].iter_mut().zip(&cols) {
            let top = u32::from(r0[x0]) * (256 - wx) + u32::from(r0[x1]) * wx;
            let bottom = u32::from(r1[x0]) * (256 - wx) + u32::from(r1[x1]) * wx;
            *out = ((top * (256 - wy) + bottom * wy + (1 << 15)) >> 16) as u8;
        }
    }
}

/// Peak signal-to-noise ratio of the Y planes of two frames of the same size,
/// in dB. Identical planes give `f64::INFINITY`; a size mismatch gives `None`.
pub fn luma_psnr(a: &I420Frame, b: &I420Frame) -> Option<f64> {
    if a.width != b.width || a.height != b.height || !a.is_well_formed() || !b.is_well_formed() {
        return None;
    }
    let (ya, yb) = (a.y_plane(), b.y_plane());
    if ya.is_empty() {
        return None;
    }
    let sse: u64 = ya
        .iter()
        .zip(yb)
        .map(|(&p, &q)| {
            let d = i64::from(p) - i64::from(q);
            (d * d) as u64
        })
        .sum();
    if sse == 0 {
        return Some(f64::INFINITY);
    }
    let mse = sse as f64 / ya.len() as f64;
    Some(10.0 * (255.0 * 255.0 / mse).log10())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plane_layout_rounds_chroma_up() {
        assert_eq!(I420Frame::byte_len(4, 2), 8 + 2 * 2);
        assert_eq!(I420Frame::byte_len(5, 3), 15 + 2 * 3 * 2);
        let f = I420Frame::black(5, 3, 0);
        assert!(f.is_well_formed());
        assert_eq!(f.y_plane().len(), 15);
        assert_eq!(f.u_plane().len(), 6);
        assert_eq!(f.v_plane().len(), 6);
        assert!(f.y_plane().iter().all(|&v| v == 16));
        assert!(f.v_plane().iter().all(|&v| v == 128));
    }

    #[test]
    fn psnr_basics() {
        let a = I420Frame::black(8, 8, 0);
        let mut b = a.clone();
        assert_eq!(luma_psnr(&a, &b), Some(f64::INFINITY));
        b.data[0] = 26; // one pixel off by 10: mse = 100 / 64
        let p = luma_psnr(&a, &b).expect("same size");
        assert!((p - 10.0 * (255.0f64 * 255.0 * 64.0 / 100.0).log10()).abs() < 1e-9);
        assert_eq!(luma_psnr(&a, &I420Frame::black(4, 4, 0)), None);
    }

    fn gradient(width: u32, height: u32) -> I420Frame {
        let mut f = I420Frame::black(width, height, 7);
        let w = width as usize;
        for (i, v) in f.data[..w * height as usize].iter_mut().enumerate() {
            *v = (16 + (i % w) * 200 / w) as u8;
        }
        f
    }

    #[test]
    fn shrinking_averages_blocks() {
        // A 4x4 luma plane of 2x2 blocks shrinks to exactly the block values.
        let mut f = I420Frame::black(4, 4, 3);
        let y = [
            10, 10, 50, 50, 10, 10, 50, 50, 90, 90, 130, 130, 90, 90, 130, 130,
        ];
        f.data[..16].copy_from_slice(&y);
        let s = f.scale_to(2, 2).expect("scale");
        assert!(s.is_well_formed());
        assert_eq!(s.y_plane(), &[10, 50, 90, 130]);
        assert_eq!(s.u_plane(), &[128]);
        assert_eq!(s.pts_ms, 3);
        // Averages round to nearest.
        f.data[..4].copy_from_slice(&[1, 2, 50, 50]);
        f.data[4..6].copy_from_slice(&[2, 2]);
        assert_eq!(f.scale_to(2, 2).expect("scale").y_plane()[0], 2);
    }

    #[test]
    fn hd_to_thumbnail_keeps_the_picture() {
        let hd = gradient(1280, 720);
        let thumb = hd.scale_to(320, 180).expect("scale");
        assert_eq!((thumb.width, thumb.height), (320, 180));
        assert!(thumb.is_well_formed());
        assert!((thumb.mean_luma() - hd.mean_luma()).abs() < 1.0);
        // The gradient still runs left to right.
        let row = &thumb.y_plane()[..320];
        assert!(row.windows(2).all(|p| p[0] <= p[1]));
        assert!(row[0] < 20 && row[319] > 205, "{} {}", row[0], row[319]);
        // Back up again (bilinear), odd sizes included.
        let up = thumb.scale_to(641, 359).expect("scale up");
        assert!(up.is_well_formed());
        assert!((up.mean_luma() - hd.mean_luma()).abs() < 2.0);
        // Same size is a copy.
        assert_eq!(hd.scale_to(1280, 720).expect("same"), hd);
    }

    #[test]
    fn the_fast_box_average_matches_the_plain_one() {
        // Noise, so every block has a different sum, and sizes with blocks of every shape:
        // near 1:1, 2:1, uneven, odd, and large reductions (which take the plain path).
        let mut seed = 0x2545_f491_u32;
        let data: Vec<u8> = (0..1280 * 720)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                (seed >> 24) as u8
            })
            .collect();
        let src = Plane {
            data: &data,
            width: 1280,
            height: 720,
        };
        for (dw, dh) in [
            (1280, 720),
            (1244, 700),
            (1200, 675),
            (853, 480),
            (640, 360),
            (639, 361),
            (427, 240),
            (320, 180),
            (161, 91),
            // The largest blocks the fast path takes: 14 or 15 by 15 or 16 pixels.
            (91, 48),
            (80, 45),
            (33, 17),
            (2, 2),
        ] {
            let mut fast = vec![0u8; dw * dh];
            let mut plain = vec![0u8; dw * dh];
            box_plane(&src, &mut fast, dw, dh);
            box_plane_dividing(&src, &mut plain, dw, dh);
            assert!(fast == plain, "{dw}x{dh} differs");
        }
        // The extremes of the sums: all white and all black blocks.
        for v in [0u8, 255] {
            let flat = vec![v; 1280 * 720];
            let src = Plane {
                data: &flat,
                width: 1280,
                height: 720,
            };
            for (dw, dh) in [(100, 56), (91, 48)] {
                let mut out = vec![0u8; dw * dh];
                box_plane(&src, &mut out, dw, dh);
                assert!(out.iter().all(|&o| o == v), "{v} at {dw}x{dh}");
            }
        }
    }

    #[test]
    fn scaling_rejects_bad_input() {
        let f = I420Frame::black(4, 4, 0);
        assert!(f.scale_to(0, 2).is_err());
        let mut bad = f.clone();
        bad.data.pop();
        assert!(bad.scale_to(2, 2).is_err());
    }

    #[test]
    fn fit_keeps_aspect_and_even_sizes() {
        assert_eq!(fit_within(1280, 720, 320, 320), (320, 180));
        assert_eq!(fit_within(640, 480, 1920, 1080), (640, 480));
        assert_eq!(fit_within(1920, 1080, 1280, 720), (1280, 720));
        assert_eq!(fit_within(1366, 768, 1280, 720), (1280, 720));
        let (w, h) = fit_within(1001, 333, 500, 500);
        assert_eq!((w % 2, h % 2), (0, 0));
    }
}
