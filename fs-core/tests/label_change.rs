//! A label change is crash-safe: every image a power cut during
//! `set_label` can leave (each prefix of its writes and flushes, and each
//! write torn at any set of its sectors) mounts, checks clean, and has the
//! old label or the new one; a read-write mount and unmount keeps that
//! label (the daemon rewrites the superblocks from its copy).

use std::sync::Arc;

use pagelog_core::fsck::Level;
use pagelog_core::label::set_label;
use pagelog_core::layout::PAGE_SIZE;
use pagelog_core::recovery::recover;
use pagelog_core::superblock::LABEL_MAX;
use pagelog_core::testing::{CrashState, Event, RecordingDevice, SECTOR};
use pagelog_core::{format, Cred, Error, FormatOptions, Ino, MemDevice};

mod support;

const OLD: &[u8] = b"old label";
const NEW: &[u8] = b"a new label, longer than the old one";

/// A small labelled filesystem with a file, left by `finish` (a clean
/// unmount, or a crash after a commit).
fn image(clean: bool) -> Vec<u8> {
    let dev = Arc::new(MemDevice::new(1024));
    let opts = FormatOptions {
        pages_per_segment: 16,
        label: OLD.to_vec(),
        ..FormatOptions::default()
    };
    format(dev.clone(), &opts).expect("format");
    let mut fs = support::mount(&dev);
    let a = fs
        .mknod(&Cred::root(), Ino::ROOT, b"file", 0o100644, 0)
        .expect("create");
    fs.write(&Cred::root(), a.ino, 0, b"contents")
        .expect("write");
    fs.sync().expect("sync");
    if clean {
        fs.unmount().expect("unmount");
    }
    dev.snapshot()
}

fn label_of(image: &[u8]) -> Result<Vec<u8>, String> {
    let dev = MemDevice::from_bytes(image);
    recover(&dev, false, None)
        .map(|r| r.sb.label)
        .map_err(|e| e.to_string())
}

/// The crash image must check clean, carry one of the two labels, mount
/// read-write, keep its label through an unmount, and still check clean.
fn check_state(image: &[u8], what: &str) {
    let dev = Arc::new(MemDevice::from_bytes(image));
    let report = support::fsck(&dev, Level::Full);
    assert_eq!(report.problems(), 0, "{what}: {:?}", report.findings);
    let label = label_of(image).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(label == OLD || label == NEW, "{what}: label {label:?}");
    let mut fs = support::mount(&dev);
    assert_eq!(fs.superblock().label, label, "{what}: the mount's label");
    let a = fs
        .lookup(&Cred::root(), Ino::ROOT, b"file")
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(fs.read(a.ino, 0, 100).expect("read"), b"contents");
    fs.unmount().expect("unmount");
    assert_eq!(
        label_of(&dev.snapshot()),
        Ok(label),
        "{what}: after unmount"
    );
    assert_eq!(support::fsck(&dev, Level::Full).problems(), 0, "{what}");
}

/// A power cut may tear every write in flight, not only one: each of them
/// landed at some sectors (a sample of sector sets each). Returns the
/// states checked (none when a flush follows every write).
fn tear_all(dev: &RecordingDevice, events: &[Event], prefix: usize) -> usize {
    let in_flight = dev.in_flight(prefix);
    if in_flight.len() < 2 {
        return 0;
    }
    let masks = [0u32, 0xFF, 0x0F, 0xF0, 0x01, 0x80];
    let combos = masks.len().pow(in_flight.len() as u32);
    for combo in 0..combos {
        let mut image = dev.crash_image(&CrashState {
            prefix,
            ..CrashState::default()
        });
        let mut left = combo;
        for &w in &in_flight {
            let mask = masks[left % masks.len()];
            left /= masks.len();
            let Event::Write { addr, data } = &events[w] else {
                continue;
            };
            let base = addr.0 as usize * PAGE_SIZE;
            for s in (0..data.len() / SECTOR).filter(|s| mask & (1 << s) != 0) {
                let at = s * SECTOR;
                image[base + at..base + at + SECTOR].copy_from_slice(&data[at..at + SECTOR]);
            }
        }
        check_state(
            &image,
            &format!("prefix {prefix}, writes {in_flight:?} torn, combination {combo}"),
        );
    }
    combos
}

fn every_crash_state(clean: bool) -> usize {
    let dev = RecordingDevice::new(&image(clean));
    set_label(&dev, None, NEW).expect("set label");
    let events = dev.events();
    assert_eq!(
        events.iter().filter(|e| matches!(e, Event::Flush)).count(),
        2,
        "one flush after each copy"
    );
    let mut states = 0;
    for prefix in 0..=events.len() {
        // Writes after `prefix` and before the next flush may land in any
        // subset (they go to different pages, so their order does not
        // matter), and one more may land torn at any set of its sectors.
        let in_flight = dev.in_flight(prefix);
        for subset in 0u32..(1 << in_flight.len()) {
            let extra: Vec<usize> = (0..in_flight.len())
                .filter(|i| subset & (1 << i) != 0)
                .map(|i| in_flight[i])
                .collect();
            let state = CrashState {
                prefix,
                extra: extra.clone(),
                torn: None,
                as_objects: false,
            };
            check_state(&dev.crash_image(&state), &format!("{state:?}"));
            states += 1;
            for &w in in_flight.iter().filter(|w| !extra.contains(w)) {
                let sectors = dev.sectors(w);
                for mask in 0u32..(1 << sectors) {
                    let torn = (0..sectors).map(|s| mask & (1 << s) != 0).collect();
                    let state = CrashState {
                        prefix,
                        extra: extra.clone(),
                        torn: Some((w, torn)),
                        as_objects: false,
                    };
                    check_state(&dev.crash_image(&state), &format!("{state:?}"));
                    states += 1;
                }
            }
        }
        states += tear_all(&dev, &events, prefix);
    }
    let end = dev.snapshot();
    assert_eq!(label_of(&end), Ok(NEW.to_vec()));
    states
}

#[test]
fn every_crash_state_of_a_label_change_has_the_old_or_the_new_label() {
    assert!(every_crash_state(true) > 500);
}

/// After a crash (superblocks naming an older checkpoint than the log
/// holds), the label change keeps the log to be replayed.
#[test]
fn a_label_change_after_a_crash_keeps_the_log() {
    assert!(every_crash_state(false) > 500);
}

#[test]
fn a_label_over_64_bytes_is_refused_and_nothing_written() {
    let dev = RecordingDevice::new(&image(true));
    let long = vec![b'x'; LABEL_MAX + 1];
    assert!(matches!(
        set_label(&dev, None, &long),
        Err(Error::BadGeometry(_))
    ));
    assert!(dev.is_empty());
    set_label(&dev, None, &long[..LABEL_MAX]).expect("64 bytes fit");
    assert_eq!(label_of(&dev.snapshot()), Ok(long[..LABEL_MAX].to_vec()));
    set_label(&dev, None, b"").expect("empty clears");
    assert_eq!(label_of(&dev.snapshot()), Ok(Vec::new()));
}
