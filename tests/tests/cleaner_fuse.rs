//! The cleaner through FUSE, with ordinary tools: `df` tells the truth,
//! a filesystem filled to ENOSPC and half emptied takes the same amount
//! again, the data survives being moved, the cleaner works in the
//! background while the mount is idle, and `getfattr` shows its counters.

use std::collections::BTreeMap;
use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use pagelog_tests::{parse_stats, sh, Mount, Scratch};

const MIB: u64 = 1 << 20;

/// `df` of the mount: (total, available) bytes.
fn df(m: &Mount) -> (u64, u64) {
    let out = sh(&format!("df -P -B1 '{}' | tail -1", m.dir.display()));
    let cols: Vec<u64> = out
        .split_whitespace()
        .skip(1)
        .take(3)
        .map(|c| c.parse().expect("df number"))
        .collect();
    (cols[0], cols[2])
}

/// The cleaner's counters, from the root's `pagelog.stats` attribute.
fn stats(m: &Mount) -> BTreeMap<String, String> {
    parse_stats(&sh(&format!(
        "getfattr --only-values -n pagelog.stats '{}'",
        m.dir.display()
    )))
}

fn stat_u64(s: &BTreeMap<String, String>, key: &str) -> u64 {
    s.get(key)
        .unwrap_or_else(|| panic!("no {key} in {s:?}"))
        .parse()
        .expect("number")
}

fn checksums(m: &Mount) -> String {
    sh(&format!("cd '{}' && sha256sum * | sort", m.dir.display()))
}

/// Writes 64 KiB files named `{tag}-N` (each a commit now and then)
/// until the filesystem is full; the file that did not fit is removed.
/// Returns the files kept. Sixteen files share each 1 MiB: deleting every
/// other one later leaves every segment half dead, so that taking the
/// space again needs the cleaner.
fn fill_small(m: &Mount, tag: &str) -> Vec<u64> {
    use std::io::Write;
    let mut kept = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ tag.len() as u64;
    for n in 0u64.. {
        let data: Vec<u8> = (0..64 * 1024)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let path = m.path(&format!("{tag}-{n}"));
        let r = fs::File::create(&path).and_then(|mut f| {
            f.write_all(&data)?;
            if n % 64 == 63 {
                f.sync_all()?;
            }
            Ok(())
        });
        match r {
            Ok(()) => kept.push(n),
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                let _ = fs::remove_file(&path);
                return kept;
            }
            Err(e) => panic!("write {}: {e}", path.display()),
        }
        assert!(n < 100_000, "never ran out of space");
    }
    unreachable!()
}

#[test]
fn filled_emptied_and_filled_again_with_honest_df() {
    let s = Scratch::new();
    let m = s.mounted_with("96M", &["--segment-size", "256K"], "");
    let (img, mnt) = (m.image.clone(), m.dir.clone());
    let (total, avail) = df(&m);
    assert!(
        total > 80 * MIB && avail + MIB >= total,
        "empty: total {total}, avail {avail}"
    );
    let first = fill_small(&m, "a");
    let first_bytes = first.len() as u64 * 64 * 1024;
    assert!(
        first_bytes + 8 * MIB >= avail,
        "only {first_bytes} of {avail} bytes fit before ENOSPC"
    );
    let (_, left) = df(&m);
    assert!(left < 8 * MIB, "ENOSPC with {left} bytes available");
    // Delete every other file: half of each segment dies.
    let mut deleted = 0;
    for n in first.iter().filter(|n| *n % 2 == 0) {
        fs::remove_file(m.path(&format!("a-{n}"))).expect("rm");
        deleted += 64 * 1024;
    }
    let (_, after_rm) = df(&m);
    assert!(
        after_rm + 4 * MIB >= left + deleted,
        "deleting {deleted} bytes made {after_rm} available (was {left})"
    );
    let second = fill_small(&m, "b").len() as u64 * 64 * 1024;
    assert!(
        second + 8 * MIB >= deleted,
        "deleted {deleted} bytes, could write only {second} again"
    );
    let st = stats(&m);
    assert!(stat_u64(&st, "cleaner_segments_cleaned") > 0, "{st:?}");
    assert_eq!(stat_u64(&st, "cleaner_segments_refused"), 0, "{st:?}");
    let sums = checksums(&m);
    let status = m.unmount();
    assert!(status.success());
    pagelog_tests::assert_checks_clean(&img);
    let m = Mount::start(&img, &mnt, "ro").expect("mount ro");
    assert_eq!(checksums(&m), sums, "data changed across cleaning");
}

#[test]
fn idle_mount_cleans_in_the_background() {
    let s = Scratch::new();
    // Thresholds high enough that a half-full image wants cleaning. (sync
    // with file arguments is fsync, which commits; syncfs never reaches a
    // FUSE daemon.)
    let m = s.mounted_with(
        "64M",
        &["--segment-size", "256K"],
        "clean_start=95,clean_stop=99",
    );
    sh(&format!(
        "cd '{}' && for i in $(seq 0 199); do head -c 131072 /dev/urandom > f$i; done && sync f*",
        m.dir.display()
    ));
    sh(&format!(
        "cd '{}' && rm f*[02468] && sync .",
        m.dir.display()
    ));
    let sums = checksums(&m);
    let before = stat_u64(&stats(&m), "free_segments");
    let deadline = Instant::now() + Duration::from_secs(30);
    let st = loop {
        thread::sleep(Duration::from_millis(500));
        // Reading the attribute is a request: give the mount quiet time.
        thread::sleep(Duration::from_millis(1500));
        let st = stats(&m);
        if stat_u64(&st, "cleaner_segments_cleaned") > 0 || Instant::now() > deadline {
            break st;
        }
    };
    assert!(
        stat_u64(&st, "cleaner_segments_cleaned") > 0,
        "no background cleaning in 30 s: {st:?}"
    );
    assert_eq!(stat_u64(&st, "cleaner_foreground_passes"), 0, "{st:?}");
    assert!(
        stat_u64(&st, "free_segments") > before,
        "free segments {before} -> {st:?}"
    );
    assert_eq!(checksums(&m), sums);
    let m = m.remount("ro");
    assert_eq!(checksums(&m), sums);
}
