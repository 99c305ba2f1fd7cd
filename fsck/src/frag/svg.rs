//! The picture: two maps of the segments, one cell each, coloured by
//! utilisation (darker: more live pages; grey: free) and by age (purple:
//! oldest data, orange: newest), and a strip per worst file showing where
//! its extents lie across the segment area. Plain SVG, written by hand: a
//! few element kinds need no library.

use std::fmt::Write as _;

use pagelog_core::fsck::frag::{Report, SegmentLayout};

/// The picture's width (pixels).
pub const WIDTH: u32 = 800;
/// Margin around the picture.
pub const MARGIN: u32 = 16;
/// Height of a file's layout strip.
pub const STRIP: u32 = 14;

/// A colour: hue, saturation and lightness (whole degrees and percents),
/// or the grey of a free segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hsl {
    /// (hue, saturation %, lightness %).
    Colour(u32, u32, u32),
    /// A free segment.
    Free,
}

impl Hsl {
    /// A segment with `live` of `pps` pages live: the fuller, the darker.
    pub fn utilisation(live: u32, pps: u32) -> Hsl {
        if live == 0 {
            return Hsl::Free;
        }
        let share = f64::from(live.min(pps)) / f64::from(pps);
        Hsl::Colour(210, 75, (88.0 - 63.0 * share).round() as u32)
    }

    /// A segment whose data is at `rank` of the ages (0 oldest, 1 newest).
    fn age(rank: f64) -> Hsl {
        Hsl::Colour((270.0 - 240.0 * rank).round() as u32, 70, 55)
    }

    /// As SVG writes it.
    pub fn css(self) -> String {
        match self {
            Hsl::Free => "#e8e8e8".into(),
            Hsl::Colour(h, s, l) => format!("hsl({h},{s}%,{l}%)"),
        }
    }

    /// As red, green, blue.
    pub fn rgb(self) -> [u8; 3] {
        let Hsl::Colour(h, s, l) = self else {
            return [0xe8, 0xe8, 0xe8];
        };
        let (s, l) = (f64::from(s) / 100.0, f64::from(l) / 100.0);
        let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
        let hp = f64::from(h % 360) / 60.0;
        let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
        let (r, g, b) = match hp as u32 {
            0 => (c, x, 0.0),
            1 => (x, c, 0.0),
            2 => (0.0, c, x),
            3 => (0.0, x, c),
            4 => (x, 0.0, c),
            _ => (c, 0.0, x),
        };
        let m = l - c / 2.0;
        let to = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
        [to(r), to(g), to(b)]
    }
}

/// The ages of the used segments, ranked.
pub struct Ages(Vec<i64>);

impl Ages {
    /// The ages in `r`.
    pub fn of(r: &Report) -> Ages {
        let mut ages: Vec<i64> = r
            .segments
            .iter()
            .filter(|seg| seg.live > 0)
            .map(|seg| seg.mtime)
            .collect();
        ages.sort_unstable();
        ages.dedup();
        Ages(ages)
    }

    /// The colour of `seg` by its age's rank.
    pub fn fill(&self, seg: &SegmentLayout) -> Hsl {
        if seg.live == 0 {
            return Hsl::Free;
        }
        let rank = match self.0.len() {
            0 | 1 => 1.0,
            len => self.0.binary_search(&seg.mtime).unwrap_or(0) as f64 / (len - 1) as f64,
        };
        Hsl::age(rank)
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Cells per row and the side of a cell, so that a map fits the width.
pub fn grid(segments: u64) -> (u64, u32) {
    let cols = 64u64.min(segments.max(1));
    let side = ((WIDTH - 2 * MARGIN) as u64 / cols).clamp(4, 12) as u32;
    (cols, side)
}

/// The picture of `r`.
pub fn draw(r: &Report) -> String {
    let n = r.segments.len() as u64;
    let (cols, side) = grid(n);
    let rows = n.div_ceil(cols) as u32;
    let map_h = rows * side + 24;
    let strips = r.worst.len() as u32;
    let height = MARGIN * 2 + 2 * map_h + 30 + strips * (STRIP + 16) + 20;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<title>pagelog fragmentation: checkpoint {}, {} segments</title>"#,
        r.checkpoint, n
    );
    let mut y = MARGIN;
    let pps = r.geometry.pages_per_segment;
    let caption = "segment utilisation (darker: more live pages; grey: free)";
    map(
        &mut s,
        ("utilisation", caption),
        y,
        (cols, side),
        r,
        |seg| Hsl::utilisation(seg.live, pps),
    );
    y += map_h;
    let ages = Ages::of(r);
    let caption = "segment age (purple: oldest data, orange: newest; grey: free)";
    map(&mut s, ("age", caption), y, (cols, side), r, |seg| {
        ages.fill(seg)
    });
    y += map_h + 10;
    if !r.worst.is_empty() {
        let _ = writeln!(
            s,
            r#"<text x="{MARGIN}" y="{}">the most fragmented files: where their extents lie on the device</text>"#,
            y + 10
        );
        y += 20;
    }
    let span = (n * u64::from(pps)).max(1);
    let first = r.geometry.first_segment_page;
    let strip_w = f64::from(WIDTH - 2 * MARGIN);
    for w in &r.worst {
        let label = format!(
            "{} ({} extents, ideal {})",
            super::text::path(w),
            w.extents.len(),
            w.ideal
        );
        let _ = writeln!(
            s,
            r#"<text x="{MARGIN}" y="{}">{}</text>"#,
            y + 10,
            escape(&label)
        );
        y += 13;
        let _ = writeln!(
            s,
            r##"<g class="strip" data-ino="{}"><rect x="{MARGIN}" y="{y}" width="{strip_w}" height="{STRIP}" fill="#f4f4f4" stroke="#ccc"/>"##,
            w.ino
        );
        for (addr, len) in &w.extents {
            let at = addr.0.saturating_sub(first) as f64 / span as f64 * strip_w;
            let wd = (*len as f64 / span as f64 * strip_w).max(1.0);
            let _ = writeln!(
                s,
                r##"<rect class="extent" x="{:.1}" y="{y}" width="{wd:.1}" height="{STRIP}" fill="#c0392b"/>"##,
                f64::from(MARGIN) + at
            );
        }
        let _ = writeln!(s, "</g>");
        y += STRIP + 3;
    }
    let _ = writeln!(s, "</svg>");
    s
}

/// One map: a caption and a cell per segment, filled by `fill`.
fn map(
    s: &mut String,
    (class, caption): (&str, &str),
    y: u32,
    (cols, side): (u64, u32),
    r: &Report,
    fill: impl Fn(&SegmentLayout) -> Hsl,
) {
    let pps = r.geometry.pages_per_segment;
    let _ = writeln!(s, r#"<text x="{MARGIN}" y="{}">{caption}</text>"#, y + 12);
    let _ = writeln!(s, r#"<g class="{class}">"#);
    for (i, seg) in r.segments.iter().enumerate() {
        let (col, row) = (i as u64 % cols, i as u64 / cols);
        let x = MARGIN as u64 + col * u64::from(side);
        let yy = u64::from(y) + 18 + row * u64::from(side);
        let _ = writeln!(
            s,
            r#"<rect class="seg" x="{x}" y="{yy}" width="{}" height="{}" fill="{}" data-seg="{i}" data-live="{}"><title>segment {i}: {} of {pps} pages live</title></rect>"#,
            side - 1,
            side - 1,
            fill(seg).css(),
            seg.live,
            seg.live
        );
    }
    let _ = writeln!(s, "</g>");
}
