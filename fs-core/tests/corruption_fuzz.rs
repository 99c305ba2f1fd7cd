//! Parse, never trust: every decoder answers arbitrary bytes with a value
//! or an error, never a panic; and a real image with random bytes damaged
//! either mounts (and reads fail cleanly where data is damaged) or is
//! refused with an error, never a panic and never wrong file contents; and
//! the checker never panics on one, and says it is clean only when every
//! file reads back intact.

use std::sync::Arc;

use pagelog_core::checkpoint::Checkpoint;
use pagelog_core::node::Node;
use pagelog_core::segment_summary::Summary;
use pagelog_core::superblock::Superblock;
use pagelog_core::{BlockDevice, Cred, Filesystem, Ino, MemDevice, MountOptions, Nid, PageAddr};
use proptest::prelude::*;

mod support;

fn page() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 4096)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic_on_random_pages(p in page(), nid in 0u64..10) {
        let _ = Superblock::decode(&p, PageAddr(0));
        let _ = Summary::decode(&p, PageAddr(0));
        let _ = Checkpoint::decode(&p, PageAddr(0));
        let _ = Node::decode(&p, PageAddr(0), Nid(nid));
        let r = pagelog_core::codec::Reader::new(&p, "fuzz", PageAddr(0));
        let _ = pagelog_core::chain_table::ChainTable::decode(&r);
    }

    /// Sealed pages with a valid magic and checksum but bytes that were
    /// never sealed: the sealed decoders open nothing, never panic.
    #[test]
    fn sealed_decoders_open_nothing_that_was_not_sealed(mut p in page()) {
        use pagelog_core::codec::crc32_skipping;
        let sealer = pagelog_core::seal::Sealer::reader(&support::test_key(), [7; 16]);
        let _ = pagelog_core::key_slot::from_bytes(&p[..pagelog_core::key_slot::SIZE]);
        p[..8].copy_from_slice(&pagelog_core::segment_summary::MAGIC);
        let crc = crc32_skipping(&p, pagelog_core::segment_summary::off::CRC);
        p[60..64].copy_from_slice(&crc.to_le_bytes());
        let s = Summary::decode_sealed(&p, PageAddr(0), Some(&sealer));
        prop_assert!(matches!(s, Ok(None) | Err(_)), "a summary opened: {s:?}");
        p[..8].copy_from_slice(&pagelog_core::checkpoint::MAGIC);
        let crc = crc32_skipping(&p, pagelog_core::checkpoint::off::CRC);
        p[4092..].copy_from_slice(&crc.to_le_bytes());
        let c = Checkpoint::decode_sealed(&p, PageAddr(0), Some(&sealer));
        prop_assert!(c.is_err(), "a checkpoint opened: {c:?}");
    }

    #[test]
    fn node_decoder_never_panics_on_plausible_headers(mut p in page(), kind in 0u8..8, count in any::<u16>()) {
        // Random bodies behind a valid-looking header reach deeper code.
        p[0..4].copy_from_slice(b"PGND");
        p[4] = kind;
        p[8..16].copy_from_slice(&5u64.to_le_bytes());
        p[16..24].copy_from_slice(&5u64.to_le_bytes());
        p[32..34].copy_from_slice(&count.to_le_bytes());
        let _ = Node::decode(&p, PageAddr(0), Nid(5));
    }
}

/// (name, contents) of a file.
type Expected = (Vec<u8>, Vec<u8>);

/// A small filesystem with known contents, and its expected files.
fn populated(chain: &str) -> (Vec<u8>, Vec<Expected>) {
    let dev = support::formatted_storing(4096, 32, chain);
    let mut fs = support::mount_keyed(&dev, support::key_for(chain));
    let root = Cred::root();
    let mut files = Vec::new();
    for i in 0..40u32 {
        let name = format!("file-{i}").into_bytes();
        let data: Vec<u8> = (0..(i * 700 + 1)).map(|j| (j ^ i) as u8).collect();
        let a = fs
            .mknod(&root, Ino::ROOT, &name, 0o100644, 0)
            .expect("create");
        fs.write(&root, a.ino, 0, &data).expect("write");
        fs.setxattr(&root, a.ino, b"user.i", &i.to_le_bytes(), 0)
            .expect("xattr");
        files.push((name, data));
    }
    fs.unmount().expect("unmount");
    (dev.snapshot(), files)
}

/// The populated image with the bytes at the given positions flipped (each
/// by a non-zero mask), and its expected files.
fn damaged(flips: &[(usize, u8)], chain: &str) -> (Arc<MemDevice>, Vec<Expected>) {
    let (mut image, files) = populated(chain);
    for (pos, x) in flips {
        image[*pos] ^= x | 1;
    }
    (Arc::new(MemDevice::from_bytes(&image)), files)
}

/// Up to seven bytes to damage, anywhere in the populated part of the image.
fn flips() -> impl Strategy<Value = Vec<(usize, u8)>> {
    proptest::collection::vec((0usize..4096 * 700, any::<u8>()), 1..8)
}

/// An image the checker called clean: it must mount, and every file must
/// look up.
fn mount_checked_clean(
    dev: &Arc<MemDevice>,
    files: &[Expected],
    chain: &str,
) -> Result<Filesystem, TestCaseError> {
    let ro = MountOptions {
        read_only: true,
        key: support::key_for(chain),
        ..MountOptions::default()
    };
    let mut fs = Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, ro)
        .map_err(|e| TestCaseError::fail(format!("checked clean but does not mount: {e}")))?;
    for (name, _) in files {
        let a = fs.lookup(&Cred::root(), Ino::ROOT, name);
        prop_assert!(
            a.is_ok(),
            "checked clean but {} is missing",
            String::from_utf8_lossy(name)
        );
    }
    Ok(fs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn damaged_images_fail_cleanly(flips in flips()) {
        fails_cleanly(&flips, "none")?;
    }

    /// The same on an image whose files are compressed clusters: damage
    /// in a cluster fails its chain or the checksums of its pages.
    #[test]
    fn damaged_compressed_images_fail_cleanly(flips in flips()) {
        fails_cleanly(&flips, "zstd:1")?;
    }

    /// The checker never panics on a damaged image, and its verdict can be
    /// trusted: when the full check finds no error, every file looks up
    /// (its data may still be damaged: only a scrub reads data); when
    /// `--verify-data` finds none, every file reads back exactly what was
    /// written.
    #[test]
    fn a_clean_verdict_means_an_intact_filesystem(flips in flips()) {
        clean_verdict_holds(&flips, "none")?;
    }

    /// The same with compressed clusters, which `--verify-data` undoes.
    #[test]
    fn a_clean_verdict_means_an_intact_compressed_filesystem(flips in flips()) {
        clean_verdict_holds(&flips, "zstd:1")?;
    }

    /// A sealed image: damage anywhere (a unit, a table page, a summary, a
    /// checkpoint) fails its tag; never other bytes, never a panic.
    #[test]
    fn damaged_sealed_images_fail_cleanly(flips in flips()) {
        fails_cleanly(&flips, "zstd:1+sealed")?;
    }

    /// The checker's verdict on a damaged sealed image can be trusted.
    #[test]
    fn a_clean_verdict_means_an_intact_sealed_filesystem(flips in flips()) {
        clean_verdict_holds(&flips, "none+sealed")?;
    }
}

fn fails_cleanly(flips: &[(usize, u8)], chain: &str) -> Result<(), TestCaseError> {
    let (dev, files) = damaged(flips, chain);
    let ro = MountOptions {
        read_only: true,
        key: support::key_for(chain),
        ..MountOptions::default()
    };
    let Ok(mut fs) = Filesystem::mount(dev as Arc<dyn BlockDevice>, ro) else {
        return Ok(());
    };
    let root = Cred::root();
    for (name, data) in &files {
        let Ok(a) = fs.lookup(&root, Ino::ROOT, name) else {
            continue;
        };
        if let Ok(got) = fs.read(a.ino, 0, data.len() as u32) {
            prop_assert!(
                &got == data,
                "wrong bytes returned for {}",
                String::from_utf8_lossy(name)
            );
        }
        let _ = fs.getxattr(&root, a.ino, b"user.i");
    }
    let _ = fs.readdir(Ino::ROOT, 0, &mut |_| true);
    Ok(())
}

fn clean_verdict_holds(flips: &[(usize, u8)], chain: &str) -> Result<(), TestCaseError> {
    use pagelog_core::fsck::Level;
    let (dev, files) = damaged(flips, chain);
    let key = support::key_for(chain);
    if support::fsck_with(&dev, key.as_ref(), Level::Full).problems() == 0 {
        mount_checked_clean(&dev, &files, chain)?;
    }
    if support::fsck_with(&dev, key.as_ref(), Level::VerifyData).problems() > 0 {
        return Ok(());
    }
    let mut fs = mount_checked_clean(&dev, &files, chain)?;
    for (name, data) in &files {
        let Ok(a) = fs.lookup(&Cred::root(), Ino::ROOT, name) else {
            continue;
        };
        let got = fs.read(a.ino, 0, data.len() as u32 + 1);
        prop_assert!(
            got.as_ref().ok() == Some(data),
            "checked clean but {} reads wrong: {:?}",
            String::from_utf8_lossy(name),
            got.err()
        );
    }
    Ok(())
}

/// Each file of `files` that reads on `dev`, with its bytes.
fn readable_files(dev: &Arc<MemDevice>, files: &[Expected], chain: &str) -> Vec<Expected> {
    let ro = MountOptions {
        read_only: true,
        key: support::key_for(chain),
        ..MountOptions::default()
    };
    let Ok(mut fs) = Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, ro) else {
        return Vec::new();
    };
    let root = Cred::root();
    files
        .iter()
        .filter_map(|(name, data)| {
            let a = fs.lookup(&root, Ino::ROOT, name).ok()?;
            let got = fs.read(a.ino, 0, data.len() as u32 + 1).ok()?;
            Some((name.clone(), got))
        })
        .collect()
}

/// Random damage, then a repair (`-y`, with the data scrub): it never
/// panics, and every file that read before reads the same after; where
/// the repair says it left nothing, the image checks clean and mounts.
fn repair_keeps_what_read(flips: &[(usize, u8)], chain: &str) -> Result<(), TestCaseError> {
    use pagelog_core::fsck::repair::{repair, Mode};
    use pagelog_core::fsck::Level;
    let (dev, files) = damaged(flips, chain);
    let key = support::key_for(chain);
    let before = readable_files(&dev, &files, chain);
    let out = repair(
        dev.clone() as Arc<dyn BlockDevice>,
        key.as_ref(),
        Level::VerifyData,
        Mode::All,
        &mut |_, _, _| {},
    );
    let after = readable_files(&dev, &files, chain);
    for (name, bytes) in &before {
        let now = after.iter().find(|(n, _)| n == name).map(|(_, b)| b);
        prop_assert!(
            now == Some(bytes),
            "{} read before the repair, not the same after: {:?}",
            String::from_utf8_lossy(name),
            out.actions
        );
    }
    if out.changed() && out.after.problems() == 0 {
        let again = support::fsck_with(&dev, key.as_ref(), Level::VerifyData);
        prop_assert_eq!(again.problems(), 0, "{:?}", again.findings);
        mount_checked_clean(&dev, &[], chain)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn a_repair_of_a_damaged_image_keeps_every_file_that_read(flips in flips()) {
        repair_keeps_what_read(&flips, "none")?;
    }

    #[test]
    fn a_repair_of_a_damaged_compressed_image_keeps_every_file_that_read(flips in flips()) {
        repair_keeps_what_read(&flips, "zstd:1")?;
    }
}
