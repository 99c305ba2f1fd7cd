//! The picture: two maps of the segments, one cell each, coloured by
//! utilisation (darker: more live pages; grey: free) and by age (purple:
//! oldest data, orange: newest), and a strip per worst file showing where
//! its extents lie across the segment area. Plain SVG, written by hand: a
//! few element kinds need no library.

use std::fmt::Write as _;

use pagelog_core::fsck::frag::Report;

const WIDTH: u32 = 800;
const MARGIN: u32 = 16;
const STRIP: u32 = 14;

/// The fill of a segment with `live` of `pps` pages live.
pub fn utilisation_fill(live: u32, pps: u32) -> String {
    if live == 0 {
        return "#e8e8e8".into();
    }
    let share = f64::from(live.min(pps)) / f64::from(pps);
    format!("hsl(210,75%,{:.0}%)", 88.0 - 63.0 * share)
}

/// The fill of a segment whose data is at `rank` (0 oldest, 1 newest).
fn age_fill(rank: f64) -> String {
    format!("hsl({:.0},70%,55%)", 270.0 - 240.0 * rank)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Cells per row and the side of a cell, so that a map fits the width.
fn grid(segments: u64) -> (u64, u32) {
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
    map(
        &mut s,
        "utilisation",
        "segment utilisation (darker: more live pages; grey: free)",
        y,
        (cols, side),
        r,
        |seg| utilisation_fill(seg.live, pps),
    );
    y += map_h;
    let mut ages: Vec<i64> = r
        .segments
        .iter()
        .filter(|seg| seg.live > 0)
        .map(|seg| seg.mtime)
        .collect();
    ages.sort_unstable();
    ages.dedup();
    let rank = |t: i64| match ages.len() {
        0 | 1 => 1.0,
        len => ages.binary_search(&t).unwrap_or(0) as f64 / (len - 1) as f64,
    };
    map(
        &mut s,
        "age",
        "segment age (purple: oldest data, orange: newest; grey: free)",
        y,
        (cols, side),
        r,
        |seg| {
            if seg.live == 0 {
                "#e8e8e8".into()
            } else {
                age_fill(rank(seg.mtime))
            }
        },
    );
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
    class: &str,
    caption: &str,
    y: u32,
    (cols, side): (u64, u32),
    r: &Report,
    fill: impl Fn(&pagelog_core::fsck::frag::SegmentLayout) -> String,
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
            fill(seg),
            seg.live,
            seg.live
        );
    }
    let _ = writeln!(s, "</g>");
}
