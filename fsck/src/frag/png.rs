//! The picture as a PNG, for where an SVG does not go (a mail, a ticket):
//! the same two segment maps and layout strips as `svg.rs`, drawn as
//! rectangles into an RGB buffer, without the words.

use pagelog_core::fsck::frag::Report;

use super::svg::{grid, Hsl, MARGIN, STRIP, WIDTH};

type Rgb = [u8; 3];

const BACKGROUND: Rgb = [255, 255, 255];
const STRIP_BACK: Rgb = [0xf4, 0xf4, 0xf4];
const EXTENT: Rgb = [0xc0, 0x39, 0x2b];

/// An RGB canvas.
struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: u32, height: u32) -> Canvas {
        let mut pixels = vec![0u8; width as usize * height as usize * 3];
        for p in pixels.chunks_exact_mut(3) {
            p.copy_from_slice(&BACKGROUND);
        }
        Canvas {
            width,
            height,
            pixels,
        }
    }

    fn rect(&mut self, x: u32, y: u32, w: u32, h: u32, c: Rgb) {
        for yy in y..y.saturating_add(h).min(self.height) {
            for xx in x..x.saturating_add(w).min(self.width) {
                let at = (yy as usize * self.width as usize + xx as usize) * 3;
                self.pixels[at..at + 3].copy_from_slice(&c);
            }
        }
    }
}

/// The PNG of `r`.
pub fn draw(r: &Report) -> Result<Vec<u8>, String> {
    let n = r.segments.len() as u64;
    let (cols, side) = grid(n);
    let rows = n.div_ceil(cols) as u32;
    let map_h = rows * side + 8;
    let strips = r.worst.len() as u32;
    let height = MARGIN * 2 + 2 * map_h + strips * (STRIP + 4) + 8;
    let mut c = Canvas::new(WIDTH, height);
    let pps = r.geometry.pages_per_segment;
    let ages = super::svg::Ages::of(r);
    for (map, y0) in [(0, MARGIN), (1, MARGIN + map_h)] {
        for (i, seg) in r.segments.iter().enumerate() {
            let (col, row) = (i as u64 % cols, i as u64 / cols);
            let fill = match map {
                0 => Hsl::utilisation(seg.live, pps),
                _ => ages.fill(seg),
            };
            c.rect(
                MARGIN + col as u32 * side,
                y0 + row as u32 * side,
                side - 1,
                side - 1,
                fill.rgb(),
            );
        }
    }
    let mut y = MARGIN + 2 * map_h + 8;
    let span = (n * u64::from(pps)).max(1);
    let first = r.geometry.first_segment_page;
    let strip_w = WIDTH - 2 * MARGIN;
    for w in &r.worst {
        c.rect(MARGIN, y, strip_w, STRIP, STRIP_BACK);
        for (addr, len) in &w.extents {
            let at =
                (addr.0.saturating_sub(first) as f64 / span as f64 * f64::from(strip_w)) as u32;
            let wd = ((*len as f64 / span as f64 * f64::from(strip_w)) as u32).max(1);
            c.rect(MARGIN + at, y, wd, STRIP, EXTENT);
        }
        y += STRIP + 4;
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, c.width, c.height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(|e| e.to_string())?;
        writer
            .write_image_data(&c.pixels)
            .map_err(|e| e.to_string())?;
    }
    Ok(out)
}
