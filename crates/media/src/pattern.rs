//! A moving synthetic video test card.

use crate::frame::I420Frame;

/// A moving test pattern: 75 % colour bars, diagonal stripes that scroll every
/// frame, a bouncing checkered box, and a strip at the bottom with the frame
/// number in binary blocks and in digits. The word "SYNTHETIC" is drawn large
/// in the top-left corner so nobody mistakes it for a camera.
///
/// Every frame differs from the previous one, and the sequence depends only on
/// the size, frame rate and seed, so two generators built alike produce the
/// same bytes. Different seeds give different box colours, paths and stripe
/// spacing (handy to tell synthetic participants apart).
#[derive(Debug, Clone)]
pub struct TestPattern {
    width: u32,
    height: u32,
    fps: u32,
    frame_index: u64,
    /// The static parts (bars, label, backgrounds) as a full I420 frame.
    background: Vec<u8>,
    /// One period of the stripe luma profile, repeated to `width + period`.
    stripe_row: Vec<u8>,
    stripe_period: usize,
    stripes_top: usize,
    strip_top: usize,
    box_size: usize,
    box_y_min: usize,
    box_start: (u64, u64),
    box_velocity: (u64, u64),
    box_luma: (u8, u8),
    box_chroma: (u8, u8),
    digit_scale: usize,
}

/// Text drawn on every frame.
pub const LABEL: &str = "SYNTHETIC";

const BLACK: u8 = 16;
const WHITE: u8 = 235;
const COUNTER_BITS: usize = 24;

impl TestPattern {
    /// A pattern of the given size at `fps` frames per second (used for the
    /// presentation timestamps), with seed 0.
    ///
    /// # Panics
    /// If `width` or `height` is zero.
    pub fn new(width: u32, height: u32, fps: u32) -> Self {
        Self::with_seed(width, height, fps, 0)
    }

    /// Like [`TestPattern::new`] with a seed that varies the box colour and
    /// path and the stripe spacing.
    ///
    /// # Panics
    /// If `width` or `height` is zero.
    pub fn with_seed(width: u32, height: u32, fps: u32, seed: u64) -> Self {
        assert!(
            width > 0 && height > 0,
            "test pattern size must be non-zero"
        );
        let (w, h) = (width as usize, height as usize);
        let mut rng = SplitMix64(seed);

        let strip_h = (h / 10).max(2).min(h);
        let strip_top = h - strip_h;
        let stripes_top = (h * 55 / 100).min(strip_top);

        // Label: as big as fits, 9 glyphs of 6 cells (5 + 1 spacing).
        let label_cells_w = LABEL.len() * 6;
        let label_scale = (h / 80).min(w / (label_cells_w * 2)).max(1);
        let margin = label_scale * 2;
        let label_w = label_cells_w * label_scale + 2 * label_scale;
        let label_h = 9 * label_scale;

        let mut background = I420Frame::black(width, height, 0).data;
        {
            let mut c = Canvas::new(&mut background, w, h);
            // Colour bars over the top part.
            let bars = [
                (191, 191, 191),
                (191, 191, 0),
                (0, 191, 191),
                (0, 191, 0),
                (191, 0, 191),
                (191, 0, 0),
                (0, 0, 191),
            ];
            for (i, &(r, g, b)) in bars.iter().enumerate() {
                let x0 = w * i / bars.len();
                let x1 = w * (i + 1) / bars.len();
                c.fill_rect(x0, 0, x1 - x0, stripes_top, rgb_to_yuv(r, g, b));
            }
            // Neutral chroma under the stripes; black strip at the bottom.
            c.fill_rect(0, stripes_top, w, h - stripes_top, (BLACK, 128, 128));
            // The label on a black plate.
            c.fill_rect(margin, margin, label_w, label_h, (BLACK, 128, 128));
            c.draw_text(
                margin + label_scale,
                margin + label_scale,
                label_scale,
                LABEL,
                WHITE,
            );
        }

        let stripe_period = 32 + (rng.next() % 33) as usize;
        let mut stripe_row = Vec::with_capacity(w + stripe_period);
        for x in 0..w + stripe_period {
            let phase = (x % stripe_period) as f64 / stripe_period as f64;
            let v = 126.0 + 90.0 * (phase * std::f64::consts::TAU).sin();
            stripe_row.push(v.round().clamp(16.0, 235.0) as u8);
        }

        let box_size = (w.min(h) / 5).max(2);
        let box_y_min = (margin + label_h + label_scale).min(strip_top.saturating_sub(box_size));
        let box_start = (rng.next() % 10_000, rng.next() % 10_000);
        let box_velocity = (3 + rng.next() % 6, 2 + rng.next() % 5);
        let hue = [
            (230, 120, 20),
            (20, 160, 230),
            (200, 40, 160),
            (40, 200, 90),
            (240, 220, 40),
        ][(rng.next() % 5) as usize];
        let (_, u, v) = rgb_to_yuv(hue.0, hue.1, hue.2);
        let box_luma = (200, 60 + (rng.next() % 40) as u8);
        let digit_scale = (strip_h.saturating_sub(2) / 8).max(1);

        Self {
            width,
            height,
            fps: fps.max(1),
            frame_index: 0,
            background,
            stripe_row,
            stripe_period,
            stripes_top,
            strip_top,
            box_size,
            box_y_min,
            box_start,
            box_velocity,
            box_luma,
            box_chroma: (u, v),
            digit_scale,
        }
    }

    /// Frame width.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Frame height.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Index of the next frame [`TestPattern::next_frame`] will return.
    pub fn frame_index(&self) -> u64 {
        self.frame_index
    }

    /// Render the next frame. Its `pts_ms` is `index * 1000 / fps`.
    pub fn next_frame(&mut self) -> I420Frame {
        let n = self.frame_index;
        self.frame_index += 1;
        let (w, h) = (self.width as usize, self.height as usize);
        let mut data = self.background.clone();
        {
            let mut c = Canvas::new(&mut data, w, h);

            // Diagonal stripes scrolling 4 px per frame.
            let shift = (n as usize).wrapping_mul(4);
            for y in self.stripes_top..self.strip_top {
                let off = (shift + y) % self.stripe_period;
                c.y[y * w..(y + 1) * w].copy_from_slice(&self.stripe_row[off..off + w]);
            }

            // Bouncing checkered box.
            let s = self.box_size;
            let x_range = w.saturating_sub(s) as u64;
            let y_range = self.strip_top.saturating_sub(s + self.box_y_min) as u64;
            let bx = bounce(self.box_start.0 + n * self.box_velocity.0, x_range) as usize;
            let by = self.box_y_min
                + bounce(self.box_start.1 + n * self.box_velocity.1, y_range) as usize;
            c.fill_rect(
                bx,
                by,
                s,
                s,
                (self.box_luma.0, self.box_chroma.0, self.box_chroma.1),
            );
            let cell = (s / 6).max(1);
            for yy in by..(by + s).min(h) {
                for xx in bx..(bx + s).min(w) {
                    if ((xx - bx) / cell + (yy - by) / cell) % 2 == 1 {
                        c.y[yy * w + xx] = self.box_luma.1;
                    }
                }
            }

            // Frame counter: binary blocks (MSB first) on the left half,
            // digits on the right half.
            let strip_h = h - self.strip_top;
            let block_w = (w / 2 / COUNTER_BITS).max(1);
            for bit in 0..COUNTER_BITS {
                let on = (n >> (COUNTER_BITS - 1 - bit)) & 1 == 1;
                let luma = if on { WHITE } else { 48 };
                let inset = usize::from(block_w > 2);
                c.fill_luma(
                    bit * block_w + inset,
                    self.strip_top + inset,
                    block_w.saturating_sub(2 * inset),
                    strip_h.saturating_sub(2 * inset),
                    luma,
                );
            }
            let ds = self.digit_scale;
            c.draw_text(w / 2 + ds, self.strip_top + 1, ds, &n.to_string(), WHITE);
        }
        I420Frame {
            width: self.width,
            height: self.height,
            data,
            pts_ms: n * 1000 / u64::from(self.fps),
        }
    }
}

/// Triangle wave: walks 0..=range and back.
fn bounce(p: u64, range: u64) -> u64 {
    if range == 0 {
        return 0;
    }
    let m = p % (2 * range);
    if m <= range { m } else { 2 * range - m }
}

/// BT.601 studio-range conversion of 8-bit RGB.
fn rgb_to_yuv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let (r, g, b) = (f64::from(r), f64::from(g), f64::from(b));
    let y = 16.0 + 0.257 * r + 0.504 * g + 0.098 * b;
    let u = 128.0 - 0.148 * r - 0.291 * g + 0.439 * b;
    let v = 128.0 + 0.439 * r - 0.368 * g - 0.071 * b;
    let c = |x: f64| x.round().clamp(0.0, 255.0) as u8;
    (c(y), c(u), c(v))
}

/// Small deterministic generator for the pattern's parameters.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Mutable views of the three planes with clipped drawing helpers.
struct Canvas<'a> {
    y: &'a mut [u8],
    u: &'a mut [u8],
    v: &'a mut [u8],
    w: usize,
    h: usize,
    cw: usize,
    ch: usize,
}

impl<'a> Canvas<'a> {
    fn new(data: &'a mut [u8], w: usize, h: usize) -> Self {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (y, rest) = data.split_at_mut(w * h);
        let (u, v) = rest.split_at_mut(cw * ch);
        Self {
            y,
            u,
            v,
            w,
            h,
            cw,
            ch,
        }
    }

    fn fill_luma(&mut self, x: usize, y: usize, rw: usize, rh: usize, luma: u8) {
        let (x1, y1) = ((x + rw).min(self.w), (y + rh).min(self.h));
        for row in y.min(y1)..y1 {
            self.y[row * self.w + x.min(x1)..row * self.w + x1].fill(luma);
        }
    }

    fn fill_rect(&mut self, x: usize, y: usize, rw: usize, rh: usize, (l, u, v): (u8, u8, u8)) {
        self.fill_luma(x, y, rw, rh, l);
        let (cx0, cy0) = (x / 2, y / 2);
        let (cx1, cy1) = (
            (x + rw).div_ceil(2).min(self.cw),
            (y + rh).div_ceil(2).min(self.ch),
        );
        for row in cy0.min(cy1)..cy1 {
            let span = row * self.cw + cx0.min(cx1)..row * self.cw + cx1;
            self.u[span.clone()].fill(u);
            self.v[span].fill(v);
        }
    }

    /// Draw `text` with the 5x7 font, each font pixel `scale` px square.
    fn draw_text(&mut self, x: usize, y: usize, scale: usize, text: &str, luma: u8) {
        for (i, ch) in text.chars().enumerate() {
            let gx = x + i * 6 * scale;
            for (row, bits) in glyph(ch).iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        self.fill_luma(gx + col * scale, y + row * scale, scale, scale, luma);
                    }
                }
            }
        }
    }
}

/// 5x7 glyphs (bit 4 is the leftmost column) for the characters we draw.
fn glyph(c: char) -> [u8; 7] {
    match c {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        _ => [0; 7],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_well_formed_and_timestamped() {
        let mut p = TestPattern::new(64, 48, 24);
        for i in 0..30u64 {
            let f = p.next_frame();
            assert!(f.is_well_formed());
            assert_eq!(f.pts_ms, i * 1000 / 24);
        }
    }

    #[test]
    fn odd_and_tiny_sizes_do_not_panic() {
        for (w, h) in [(1, 1), (3, 5), (17, 9), (101, 57), (2, 200)] {
            let mut p = TestPattern::with_seed(w, h, 30, 7);
            for _ in 0..5 {
                assert!(p.next_frame().is_well_formed());
            }
        }
    }

    #[test]
    fn label_is_drawn_in_white_on_black() {
        let mut p = TestPattern::new(1280, 720, 24);
        let f = p.next_frame();
        // Scale 9 at 720p: the plate spans from (18, 18); the first glyph 'S'
        // starts at (27, 27) and its top row is 0x0F (columns 1..=4 lit).
        let y = f.y_plane();
        let at = |x: usize, row: usize| y[row * 1280 + x];
        assert_eq!(at(20, 20), BLACK);
        assert_eq!(at(27 + 9 + 4, 27 + 4), WHITE);
        assert_eq!(at(27 + 4, 27 + 4), BLACK);
    }

    #[test]
    fn bounce_is_a_triangle_wave() {
        let seq: Vec<u64> = (0..9).map(|p| bounce(p, 3)).collect();
        assert_eq!(seq, [0, 1, 2, 3, 2, 1, 0, 1, 2]);
        assert_eq!(bounce(12345, 0), 0);
    }
}
