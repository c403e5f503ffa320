//! Raw I420 (YUV 4:2:0 planar) frames.

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
}
