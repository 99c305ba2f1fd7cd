//! The segment cleaner, driven through the filesystem: space comes back
//! after deletes and overwrites, ENOSPC comes only when live data fills
//! the filesystem, a full filesystem still deletes, and every byte
//! survives being moved (checked after a remount and by the checker).

use std::collections::BTreeMap;
use std::sync::Arc;

use pagelog_core::fs::RenameFlags;
use pagelog_core::fsck::Level;
use pagelog_core::{BlockDevice, Cred, Error, Filesystem, Ino, MemDevice, MountOptions, SetAttr};

const PS: u64 = 4096;

mod support;

fn fresh(pages: u64) -> Arc<MemDevice> {
    support::formatted(pages, 64)
}

fn opts() -> MountOptions {
    MountOptions {
        dirty_limit: 1 << 20,
        ..MountOptions::default()
    }
}

fn mount(dev: &Arc<MemDevice>) -> Filesystem {
    Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, opts()).expect("mount")
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed | 1);
    (0..len).map(|_| r.next() as u8).collect()
}

fn verify(fs: &mut Filesystem, files: &BTreeMap<String, Vec<u8>>) {
    support::verify_files(fs, files);
}

fn check_clean(dev: &Arc<MemDevice>) {
    let report = support::fsck(dev, Level::VerifyData);
    assert_eq!(report.problems(), 0, "checker finds {:?}", report.findings);
}

/// The end of a run: the cleaner worked and refused nothing; the files
/// verify, the image checks clean, and they verify again after a mount.
fn finish(mut fs: Filesystem, dev: &Arc<MemDevice>, files: &BTreeMap<String, Vec<u8>>) {
    let report = fs.cleaner_report();
    eprintln!("{}", report.to_text());
    assert!(report.stats.segments_cleaned > 0, "{report:?}");
    assert_eq!(report.stats.segments_refused, 0, "{report:?}");
    verify(&mut fs, files);
    fs.unmount().expect("unmount");
    check_clean(dev);
    let mut fs = mount(dev);
    verify(&mut fs, files);
    fs.unmount().expect("unmount");
}

/// Creates files of random sizes until the filesystem says ENOSPC;
/// returns the pages written. Every refusal must be honest: `statfs`
/// must agree that the file did not fit.
fn fill(
    fs: &mut Filesystem,
    files: &mut BTreeMap<String, Vec<u8>>,
    rng: &mut Rng,
    tag: &str,
) -> u64 {
    let root = Cred::root();
    let mut pages = 0;
    for n in 0.. {
        let len = (1 + rng.below(64)) as usize * PS as usize - rng.below(100) as usize;
        let free_before = fs.statfs().bfree;
        let name = format!("{tag}-{n}");
        let f = match fs.mknod(&root, Ino::ROOT, name.as_bytes(), 0o644, 0) {
            Ok(f) => f,
            Err(Error::NoSpace) => {
                assert!(
                    free_before < 64,
                    "create refused with {free_before} pages free"
                );
                break;
            }
            Err(e) => panic!("create: {e}"),
        };
        let data = content(len, rng.next());
        match fs.write(&root, f.ino, 0, &data) {
            Ok(_) => {
                pages += data.len().div_ceil(PS as usize) as u64;
                files.insert(name, data);
            }
            Err(Error::NoSpace) => {
                // A file may be partly written; it is not kept.
                let need = len as u64 / PS + 1;
                assert!(
                    fs.statfs().bfree < need + 64,
                    "write of {need} pages refused with {} pages free",
                    fs.statfs().bfree
                );
                fs.unlink(&root, Ino::ROOT, name.as_bytes())
                    .expect("unlink on a full filesystem");
                break;
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    pages
}

/// Fill, delete half, refill, many times over the image size: the space
/// deleted comes back every time (no false ENOSPC), and the data that
/// stays is intact after all that moving, across a remount, with a clean
/// check.
#[test]
fn fill_delete_refill_cycles() {
    let dev = fresh(8192);
    let mut fs = mount(&dev);
    let root = Cred::root();
    let capacity = fs.statfs().blocks;
    let mut files = BTreeMap::new();
    let mut rng = Rng(0x00C0_FFEE);
    let first = fill(&mut fs, &mut files, &mut rng, "c0");
    assert!(
        first > capacity * 9 / 10,
        "first fill took {first} of {capacity} pages"
    );
    let mut total = first;
    for cycle in 1..8 {
        let names: Vec<String> = files.keys().cloned().collect();
        let mut deleted = 0;
        for name in names {
            if rng.below(2) == 0 {
                let len = files.remove(&name).expect("file").len();
                deleted += (len as u64).div_ceil(PS);
                fs.unlink(&root, Ino::ROOT, name.as_bytes())
                    .expect("unlink");
            }
        }
        let again = fill(&mut fs, &mut files, &mut rng, &format!("c{cycle}"));
        // What was deleted comes back (less the metadata the new, smaller
        // or larger, files need).
        assert!(
            again + 64 >= deleted,
            "cycle {cycle}: deleted {deleted} pages, could write only {again} again"
        );
        total += again;
    }
    assert!(
        total > 4 * capacity,
        "wrote {total} pages on {capacity}: not several times the image"
    );
    finish(fs, &dev, &files);
}

/// Random 4 KiB overwrites of a filesystem 75% full, for five times the
/// image size: never ENOSPC, `df` stays the same, every byte verifies.
#[test]
fn overwrites_far_past_the_image_size() {
    let dev = fresh(4096);
    let mut fs = mount(&dev);
    let root = Cred::root();
    let capacity = fs.statfs().blocks;
    let file_pages = 64u64;
    let count = capacity * 3 / 4 / file_pages;
    let mut files = BTreeMap::new();
    let mut inos = Vec::new();
    for n in 0..count {
        let name = format!("f{n}");
        let data = content((file_pages * PS) as usize, n + 1);
        let f = fs
            .mknod(&root, Ino::ROOT, name.as_bytes(), 0o644, 0)
            .expect("create");
        fs.write(&root, f.ino, 0, &data).expect("write");
        inos.push((name.clone(), f.ino));
        files.insert(name, data);
    }
    fs.sync().expect("sync");
    let free_before = fs.statfs().bfree;
    let mut rng = Rng(7);
    let writes = 5 * dev.len_pages();
    for w in 0..writes {
        // Hot and cold: 90% of writes go to a tenth of the files.
        let hot = rng.below(10) != 0;
        let pick = if hot {
            rng.below(count / 10 + 1)
        } else {
            rng.below(count)
        };
        let (name, ino) = &inos[pick as usize];
        let page = rng.below(file_pages);
        let data = content(PS as usize, w + 1000);
        fs.write(&root, *ino, page * PS, &data)
            .unwrap_or_else(|e| panic!("overwrite {w}: {e}"));
        let f = files.get_mut(name).expect("file");
        f[(page * PS) as usize..((page + 1) * PS) as usize].copy_from_slice(&data);
    }
    fs.sync().expect("sync");
    let free_after = fs.statfs().bfree;
    assert!(
        free_after + 16 >= free_before,
        "free space shrank from {free_before} to {free_after} pages with no new data"
    );
    finish(fs, &dev, &files);
}

/// On a filesystem filled to ENOSPC, deleting and the other calls that
/// free or keep space (fsync, unlink, rmdir, truncate, rename) work.
#[test]
fn a_full_filesystem_still_deletes() {
    let dev = fresh(4096);
    let mut fs = mount(&dev);
    let root = Cred::root();
    let d = fs.mkdir(&root, Ino::ROOT, b"dir", 0o755).expect("mkdir");
    let mut files = BTreeMap::new();
    let mut rng = Rng(99);
    fill(&mut fs, &mut files, &mut rng, "full");
    let (first, _) = files.iter().next().expect("a file");
    let a = fs
        .lookup(&root, Ino::ROOT, first.as_bytes())
        .expect("lookup");
    fs.fsync(a.ino).expect("fsync on a full filesystem");
    let names: Vec<String> = files.keys().cloned().collect();
    fs.rename(
        &root,
        Ino::ROOT,
        names[0].as_bytes(),
        d.ino,
        b"moved",
        RenameFlags::default(),
    )
    .expect("rename on a full filesystem");
    let b = fs
        .lookup(&root, Ino::ROOT, names[1].as_bytes())
        .expect("lookup");
    let set = SetAttr {
        size: Some(1),
        ..SetAttr::default()
    };
    fs.setattr(&root, b.ino, &set)
        .expect("truncate on a full filesystem");
    fs.unlink(&root, d.ino, b"moved")
        .expect("unlink on a full filesystem");
    fs.rmdir(&root, Ino::ROOT, b"dir")
        .expect("rmdir on a full filesystem");
    for name in &names[2..] {
        fs.unlink(&root, Ino::ROOT, name.as_bytes())
            .expect("unlink on a full filesystem");
    }
    fs.sync().expect("sync");
    let st = fs.statfs();
    assert!(
        st.bfree + 128 >= st.blocks,
        "after deleting everything only {} of {} pages are free",
        st.bfree,
        st.blocks
    );
    fs.unmount().expect("unmount");
    check_clean(&dev);
}
