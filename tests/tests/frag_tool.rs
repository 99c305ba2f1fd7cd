//! pagelog-frag on real images written through FUSE: it names the file
//! random overwrites fragmented and not the one written in one go, on a
//! mounted filesystem while a writer goes on and on the image after;
//! its JSON says the same; its SVG parses, has one cell per segment in
//! each map, and its colours follow utilisation.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pagelog_tests::{bin, run, Scratch};

fn frag(args: &[&str]) -> (i32, String, String) {
    let out = run(Command::new(bin("pagelog-frag")).args(args));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `/contiguous` in one go and `/fragmented` by random 4 KiB
/// overwrites (each fsync'd, so that each lands in its own record).
fn write_files(m: &pagelog_tests::Mount) {
    let data = vec![0x5au8; 8 << 20];
    fs::write(m.path("contiguous"), &data).expect("write");
    fs::write(m.path("fragmented"), &data).expect("write");
    let f = OpenOptions::new()
        .write(true)
        .open(m.path("fragmented"))
        .expect("open");
    let mut x = 12345u64;
    for _ in 0..300 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let page = (x >> 33) % 2048;
        f.write_all_at(&[0xa5; 4096], page * 4096)
            .expect("overwrite");
        f.sync_data().expect("fdatasync");
    }
}

fn json(target: &str) -> serde_json::Value {
    let (code, out, err) = frag(&["--json", target]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).expect("JSON")
}

#[test]
fn the_fragmented_file_is_named_online_and_offline() {
    let s = Scratch::new();
    let m = s.mounted("256M", "");
    write_files(&m);
    let mnt = m.path("").to_string_lossy().into_owned();
    // A writer goes on while the report reads the newest checkpoint.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, dir) = (stop.clone(), m.path("busy"));
        fs::create_dir(&dir).expect("mkdir");
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut f = fs::File::create(dir.join(format!("f{}", i % 50))).expect("create");
                f.write_all(&[7u8; 64 << 10]).expect("write");
                f.sync_all().expect("fsync");
                i += 1;
            }
        })
    };
    // Committed at least once since the files were written.
    std::thread::sleep(std::time::Duration::from_secs(6));
    for _ in 0..3 {
        let v = json(&mnt);
        assert_eq!(v["worst"][0]["path"], "/fragmented", "{v}");
        let all: Vec<&str> = v["worst"]
            .as_array()
            .expect("worst")
            .iter()
            .filter_map(|w| w["path"].as_str())
            .collect();
        assert!(!all.contains(&"/contiguous"), "{all:?}");
    }
    let (code, out, _) = frag(&[&mnt]);
    assert_eq!(code, 0);
    assert!(
        out.contains("/fragmented") && out.contains("seeks per MiB"),
        "{out}"
    );
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let img = m.image.to_string_lossy().into_owned();
    assert!(m.unmount().success());

    let v = json(&img);
    let worst = &v["worst"][0];
    assert_eq!(worst["path"], "/fragmented");
    let extents = worst["extents"].as_u64().expect("extents");
    assert!(extents > 100, "{worst}");
    assert!(extents > worst["ideal_extents"].as_u64().expect("ideal"));
    assert_eq!(
        worst["layout"].as_array().expect("layout").len() as u64,
        extents
    );
    let files = &v["files"];
    assert!(files["fragmented"].as_u64() >= Some(1));
    assert!(
        files["fragmentation_factor"].as_f64() > Some(0.5),
        "{files}"
    );
    let buckets: u64 = v["segment_utilisation"]
        .as_array()
        .expect("histogram")
        .iter()
        .map(|b| b["segments"].as_u64().expect("count"))
        .sum();
    assert_eq!(buckets, v["segments"].as_u64().expect("segments"));
}

#[test]
fn the_picture_has_a_cell_per_segment_coloured_by_utilisation() {
    let s = Scratch::new();
    let m = s.mounted("128M", "");
    write_files(&m);
    let img = m.image.to_string_lossy().into_owned();
    assert!(m.unmount().success());
    let svg_path = s.path("frag.svg");
    let (code, _, err) = frag(&["--svg", &svg_path.to_string_lossy(), &img]);
    assert_eq!(code, 0, "{err}");
    let text = fs::read_to_string(&svg_path).expect("svg written");
    let doc = roxmltree::Document::parse(&text).expect("the SVG parses as XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let segments = json(&img)["segments"].as_u64().expect("segments");
    for map in ["utilisation", "age"] {
        let cells: Vec<_> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some(map))
            .flat_map(|g| g.children().filter(|c| c.attribute("class") == Some("seg")))
            .collect();
        assert_eq!(cells.len() as u64, segments, "{map}: one cell per segment");
    }
    // Utilisation: free cells grey, and the more live pages, the darker.
    let mut by_live: Vec<(u64, f64)> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("utilisation"))
        .flat_map(|g| g.children().filter(|c| c.attribute("class") == Some("seg")))
        .map(|c| {
            let live: u64 = c.attribute("data-live").expect("live").parse().expect("n");
            let fill = c.attribute("fill").expect("fill");
            let light = match fill.strip_prefix("hsl(210,75%,") {
                Some(rest) => rest.trim_end_matches("%)").parse().expect("lightness"),
                None => {
                    assert_eq!((live, fill), (0, "#e8e8e8"), "only free cells are grey");
                    100.0
                }
            };
            (live, light)
        })
        .collect();
    by_live.sort_by_key(|a| a.0);
    assert!(by_live.iter().any(|(l, _)| *l == 0) && by_live.iter().any(|(l, _)| *l > 0));
    for w in by_live.windows(2) {
        assert!(w[1].1 <= w[0].1, "more live, no lighter: {w:?}");
    }
    // A strip for the fragmented file, an extent drawn per extent.
    let strips = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("strip"))
        .count();
    assert!(strips >= 1);
    let extents = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("extent"))
        .count();
    assert!(extents > 100, "{extents}");
}

#[test]
fn a_directory_that_is_no_mountpoint_and_a_missing_image_fail_plainly() {
    let s = Scratch::new();
    let dir = s.path("plain");
    fs::create_dir(&dir).expect("mkdir");
    let (code, _, err) = frag(&[&dir.to_string_lossy()]);
    assert_eq!(code, 1);
    assert!(err.contains("not the mountpoint"), "{err}");
    let (code, _, err) = frag(&[&s.path("missing.img").to_string_lossy()]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot open"), "{err}");
}

fn used_bytes(dir: &std::path::Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(dir).expect("statvfs");
    (st.blocks() - st.blocks_free()) * st.fragment_size()
}

/// `--defrag -r` on a mounted filesystem lays the fragmented file out
/// again (a snapshot shares it: no space goes to a copy), leaves the
/// contiguous one, keeps every byte; a dry run moves nothing.
#[test]
fn defrag_lays_the_fragmented_file_out_again_without_copying_what_a_snapshot_shares() {
    let s = Scratch::new();
    let m = s.mounted("256M", "");
    write_files(&m);
    let expected = fs::read(m.path("fragmented")).expect("read");
    let mnt = m.path("").to_string_lossy().into_owned();
    let snap = run(Command::new(bin("pagelog-snapshot")).args(["create", &mnt, "before"]));
    assert!(
        snap.status.success(),
        "{}",
        String::from_utf8_lossy(&snap.stderr)
    );
    std::thread::sleep(std::time::Duration::from_secs(6));
    let extents_of = |v: &serde_json::Value| -> Option<u64> {
        v["worst"]
            .as_array()?
            .iter()
            .find(|w| w["path"] == "/fragmented")
            .and_then(|w| w["extents"].as_u64())
    };
    let before = extents_of(&json(&mnt)).expect("fragmented first");
    assert!(before > 100);

    let (code, out, err) = frag(&["--defrag", "--dry-run", "-r", &mnt]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("would move") && out.contains("0 files laid out again"),
        "{out}"
    );

    let used = used_bytes(&m.path(""));
    let (code, out, err) = frag(&["--defrag", "-r", "--threshold", "10", &mnt]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("fragmented: ") && out.contains(" -> "),
        "{out}"
    );
    assert!(
        out.contains("contiguous: 1 extents (ideal 1): left"),
        "{out}"
    );
    let grown = used_bytes(&m.path("")).saturating_sub(used);
    assert!(
        grown < 2 << 20,
        "{grown} bytes used to defragment an 8 MiB file a snapshot shares"
    );
    assert_eq!(fs::read(m.path("fragmented")).expect("read"), expected);
    std::thread::sleep(std::time::Duration::from_secs(6));
    let after = extents_of(&json(&mnt));
    assert!(
        after.is_none_or(|n| n <= 2),
        "{after:?} extents after, {before} before"
    );
    let img = m.image.to_string_lossy().into_owned();
    assert!(m.unmount().success());
    let fsck = run(Command::new(bin("pagelog-fsck")).args(["--verify-data", &img]));
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
}

/// `-o autodefrag`: reading the fragmented file in sequence (from a fresh
/// mount, so that the reads reach the daemon) has it laid out again in
/// the background, with its bytes; the contiguous one read the same way
/// is left.
#[test]
fn autodefrag_lays_out_a_fragmented_file_read_in_sequence() {
    let s = Scratch::new();
    let m = s.mounted("256M", "");
    write_files(&m);
    let expected = fs::read(m.path("fragmented")).expect("read");
    let img = m.image.clone();
    assert!(m.unmount().success());
    let mnt = s.path("mnt2");
    fs::create_dir(&mnt).expect("mkdir");
    let m = pagelog_tests::Mount::start(&img, &mnt, "autodefrag").expect("mount");
    assert_eq!(fs::read(m.path("fragmented")).expect("read"), expected);
    assert_eq!(fs::read(m.path("contiguous")).expect("read").len(), 8 << 20);
    let mnt_s = mnt.to_string_lossy().into_owned();
    let extents = || -> Option<u64> {
        json(&mnt_s)["worst"]
            .as_array()?
            .iter()
            .find(|w| w["path"] == "/fragmented")
            .and_then(|w| w["extents"].as_u64())
    };
    let mut left = extents();
    for _ in 0..40 {
        if left.is_none_or(|n| n <= 2) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        left = extents();
    }
    assert!(left.is_none_or(|n| n <= 2), "still {left:?} extents");
    assert_eq!(fs::read(m.path("fragmented")).expect("read"), expected);
    assert!(m.unmount().success());
    let fsck =
        run(Command::new(bin("pagelog-fsck")).args(["--verify-data", &img.to_string_lossy()]));
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
}

/// `--png`: a PNG 800 pixels wide whose segment maps are drawn in the
/// utilisation blues and the free grey.
#[test]
fn the_png_picture_decodes() {
    let s = Scratch::new();
    let m = s.mounted("64M", "");
    fs::write(m.path("a"), vec![1u8; 3 << 20]).expect("write");
    let img = m.image.to_string_lossy().into_owned();
    assert!(m.unmount().success());
    let out = s.path("frag.png");
    let (code, _, err) = frag(&["--png", &out.to_string_lossy(), &img]);
    assert_eq!(code, 0, "{err}");
    let decoder = png::Decoder::new(std::io::BufReader::new(fs::File::open(&out).expect("png")));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("frame");
    assert_eq!(info.width, 800);
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let pixels = &buf[..info.buffer_size()];
    let (mut grey, mut blue) = (0, 0);
    for p in pixels.chunks_exact(3) {
        match p {
            [0xe8, 0xe8, 0xe8] => grey += 1,
            [r, g, b] if b > g && g > r => blue += 1,
            _ => {}
        }
    }
    assert!(grey > 0 && blue > 0, "free cells {grey}, used cells {blue}");
}
