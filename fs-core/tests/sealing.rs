//! Sealed volumes through the library: what is written reads back with
//! the key and nothing opens without it; no name, content or size is in
//! the clear on the device; a changed, swapped or replayed unit reads as
//! an error, never as wrong data, and the checker names it; the seal lease
//! moves on at every read-write mount.

use std::sync::Arc;

use pagelog_core::fsck::Level;
use pagelog_core::seal::MasterKey;
use pagelog_core::{format, BlockDevice, Cred, Error, Filesystem, Ino, MemDevice, MountOptions};

mod support;

const NAME: &[u8] = b"quarterly-forecast-secret.txt";
const DIR: &[u8] = b"hidden-directory-name";
const XATTR_VALUE: &[u8] = b"an-extended-attribute-value";

/// A sealed filesystem (chain `chain`) and its key.
fn sealed(chain: &str) -> (Arc<MemDevice>, MasterKey) {
    let dev = Arc::new(MemDevice::new(16384));
    let (opts, key) = support::storing(&format!("{chain}+sealed"), 64);
    format(dev.clone(), &opts).expect("format");
    (dev, key.expect("sealed"))
}

fn mount_with(dev: &Arc<MemDevice>, key: Option<&MasterKey>) -> pagelog_core::Result<Filesystem> {
    let opts = MountOptions {
        key: key.cloned(),
        ..MountOptions::default()
    };
    Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, opts)
}

/// Content no compressor shrinks much and no chance produces: a line
/// repeated with a counter.
fn content() -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < 123_457 {
        out.extend_from_slice(format!("The secret plan, line {i:06}.\n").as_bytes());
        i += 1;
    }
    out.truncate(123_457);
    out
}

/// Writes a directory, a file with content and an xattr; returns the
/// file's inode.
fn populate(fs: &mut Filesystem) -> Ino {
    let root = Cred::root();
    let d = fs.mkdir(&root, Ino::ROOT, DIR, 0o755).expect("mkdir");
    let f = fs.mknod(&root, d.ino, NAME, 0o644, 0).expect("create");
    fs.write(&root, f.ino, 0, &content()).expect("write");
    fs.setxattr(&root, f.ino, b"user.note", XATTR_VALUE, 0)
        .expect("setxattr");
    // Enough at once to be sealed on every core.
    let big = fs.mknod(&root, d.ino, b"big", 0o644, 0).expect("create");
    fs.write(&root, big.ino, 0, &big_content()).expect("write");
    fs.sync().expect("sync");
    f.ino
}

fn big_content() -> Vec<u8> {
    (0..(1u32 << 20))
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect()
}

fn check(dev: &Arc<MemDevice>, key: &MasterKey, level: Level) -> pagelog_core::fsck::Report {
    pagelog_core::fsck::check(
        dev.clone() as Arc<dyn BlockDevice>,
        Some(key),
        level,
        &mut |_, _, _| {},
    )
}

fn page(dev: &MemDevice, addr: pagelog_core::PageAddr) -> Vec<u8> {
    let mut p = vec![0u8; 4096];
    dev.read(addr, &mut p).expect("read");
    p
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn nothing_is_in_the_clear_and_everything_reads_back_with_the_key() {
    for chain in ["none", "zstd:1"] {
        let (dev, key) = sealed(chain);
        let mut fs = mount_with(&dev, Some(&key)).expect("mount");
        let ino = populate(&mut fs);
        fs.unmount().expect("unmount");
        let image = dev.snapshot();
        let size = 123_457u64;
        for (what, needle) in [
            ("a file name", NAME),
            ("a directory name", DIR),
            ("file content", &content()[..64]),
            ("file content", &content()[100_000..100_040]),
            ("an xattr value", XATTR_VALUE),
            ("an xattr name", b"user.note".as_slice()),
            ("the file size", &size.to_le_bytes()[..]),
        ] {
            assert!(
                !contains(&image, needle),
                "{what} is in the clear ({chain})"
            );
        }
        let mut fs = mount_with(&dev, Some(&key)).expect("remount");
        let d = fs
            .lookup(&Cred::root(), Ino::ROOT, DIR)
            .expect("lookup dir");
        let f = fs.lookup(&Cred::root(), d.ino, NAME).expect("lookup file");
        assert_eq!(f.ino, ino);
        assert_eq!(f.size, size);
        assert_eq!(fs.read(ino, 0, 1 << 20).expect("read"), content());
        let big = fs.lookup(&Cred::root(), d.ino, b"big").expect("lookup big");
        assert_eq!(fs.read(big.ino, 0, 2 << 20).expect("read"), big_content());
        fs.unmount().expect("unmount");
        for level in [Level::Fast, Level::Full, Level::VerifyData] {
            let report = check(&dev, &key, level);
            assert_eq!(
                report.problems(),
                0,
                "{level:?} {chain}: {:?}",
                report.findings
            );
        }
    }
}

#[test]
fn a_sealed_volume_does_not_open_without_its_key() {
    let (dev, key) = sealed("none");
    let mut fs = mount_with(&dev, Some(&key)).expect("mount");
    populate(&mut fs);
    fs.unmount().expect("unmount");
    let before = dev.snapshot();
    match mount_with(&dev, None) {
        Err(Error::Refused(msg)) => assert!(msg.contains("sealed"), "{msg}"),
        other => panic!("mounted without a key: {:?}", other.map(|_| ())),
    }
    let wrong = MasterKey::from_bytes([1; 32]);
    assert!(
        mount_with(&dev, Some(&wrong)).is_err(),
        "a wrong key mounts"
    );
    assert!(
        dev.snapshot() == before,
        "a refused mount wrote to the device"
    );
    let report = pagelog_core::fsck::check(
        dev.clone() as Arc<dyn BlockDevice>,
        None,
        Level::Full,
        &mut |_, _, _| {},
    );
    assert!(
        report.problems() > 0,
        "the checker reads a sealed volume without its key"
    );
}

#[test]
fn the_seal_lease_moves_on_at_every_read_write_mount() {
    let (dev, key) = sealed("none");
    let lease = |dev: &Arc<MemDevice>| {
        let (copies, _) = pagelog_core::recovery::read_superblocks(&**dev).expect("read");
        copies[0].sealing.as_ref().expect("sealed").lease
    };
    let first = lease(&dev);
    assert!(first > 0, "mkfs took a lease");
    for _ in 0..3 {
        let mut fs = mount_with(&dev, Some(&key)).expect("mount");
        populate_again(&mut fs);
        fs.unmount().expect("unmount");
    }
    assert_eq!(lease(&dev), first + 3 * pagelog_core::seal::LEASE);
    let ro = MountOptions {
        read_only: true,
        key: Some(key.clone()),
        ..MountOptions::default()
    };
    let fs = Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, ro).expect("read-only");
    drop(fs);
    assert_eq!(
        lease(&dev),
        first + 3 * pagelog_core::seal::LEASE,
        "a read-only mount seals nothing"
    );
}

fn populate_again(fs: &mut Filesystem) {
    let root = Cred::root();
    let name = format!("f{}", fs.statfs().ffree);
    let f = fs
        .mknod(&root, Ino::ROOT, name.as_bytes(), 0o644, 0)
        .expect("create");
    fs.write(&root, f.ino, 0, b"hello").expect("write");
    fs.sync().expect("sync");
}

/// Damage done to a device.
type Damage = Box<dyn Fn(&MemDevice)>;

/// Changing, swapping or replaying a stored unit is an error on read and a
/// finding of the checker, never other bytes.
#[test]
fn tampered_units_read_as_errors_and_the_checker_names_them() {
    let (dev, key) = sealed("none");
    let mut fs = mount_with(&dev, Some(&key)).expect("mount");
    let root = Cred::root();
    let a = fs.mknod(&root, Ino::ROOT, b"a", 0o644, 0).expect("a");
    let b = fs.mknod(&root, Ino::ROOT, b"b", 0o644, 0).expect("b");
    fs.write(&root, a.ino, 0, &[b'A'; 4096]).expect("write a");
    fs.write(&root, b.ino, 0, &[b'B'; 4096]).expect("write b");
    fs.sync().expect("sync");
    let old_a = {
        let addr = fs
            .tamper()
            .data_addr(a.ino, 0)
            .expect("addr")
            .expect("stored");
        page(&dev, addr)
    };
    fs.write(&root, a.ino, 0, &[b'C'; 4096]).expect("rewrite a");
    fs.sync().expect("sync");
    let (addr_a, addr_b) = {
        let mut t = fs.tamper();
        (
            t.data_addr(a.ino, 0).expect("a").expect("stored"),
            t.data_addr(b.ino, 0).expect("b").expect("stored"),
        )
    };
    fs.unmount().expect("unmount");
    let pristine = dev.snapshot();
    let attempts: Vec<(&str, Damage)> = vec![
        (
            "a flipped bit",
            Box::new(move |d: &MemDevice| {
                let mut p = page(d, addr_a);
                p[100] ^= 1;
                d.write(addr_a, &p).expect("write");
            }),
        ),
        (
            "b's page in a's place",
            Box::new(move |d: &MemDevice| {
                let p = page(d, addr_b);
                d.write(addr_a, &p).expect("write");
            }),
        ),
        (
            "a's old version replayed",
            Box::new({
                let old = old_a.clone();
                move |d: &MemDevice| d.write(addr_a, &old).expect("write")
            }),
        ),
    ];
    for (what, damage) in attempts {
        let dev = Arc::new(MemDevice::from_bytes(&pristine));
        damage(&dev);
        let mut fs = mount_with(&dev, Some(&key)).expect("mount");
        match fs.read(a.ino, 0, 4096) {
            Err(e) => assert!(e.is_media_error(), "{what}: {e}"),
            Ok(bytes) => panic!("{what}: read {:?}...", &bytes[..8]),
        }
        assert_eq!(fs.read(b.ino, 0, 4096).expect("b reads"), vec![b'B'; 4096]);
        drop(fs);
        let report = check(&dev, &key, Level::VerifyData);
        let named = report
            .findings
            .iter()
            .any(|f| f.ino == Some(a.ino) && f.message.contains("authenticate"));
        assert!(named, "{what}: {:?}", report.findings);
    }
}

/// A passphrase change is crash-safe: every image a power cut during it
/// can leave (each prefix of its writes and flushes, with the writes in
/// flight landed or not, or torn at any set of sectors) opens with the old
/// passphrase or the new one (to the same key), mounts, and checks clean.
#[test]
fn every_crash_state_of_a_passphrase_change_opens_with_one_of_the_two() {
    use pagelog_core::testing::{CrashState, RecordingDevice};
    let (dev, key) = sealed("none");
    let mut fs = mount_with(&dev, Some(&key)).expect("mount");
    let ino = populate(&mut fs);
    fs.unmount().expect("unmount");
    let rec = RecordingDevice::new(&dev.snapshot());
    pagelog_core::label::change_passphrase(&rec, &key, b"the new one").expect("change");
    let events = rec.events().len();
    let mut states = 0;
    for prefix in 0..=events {
        let in_flight = rec.in_flight(prefix);
        let mut crashes = vec![CrashState {
            prefix,
            ..CrashState::default()
        }];
        for &w in &in_flight {
            crashes.push(CrashState {
                prefix,
                extra: vec![w],
                torn: None,
                as_objects: false,
            });
            for mask in [0b1u32, 0b1111_0000, 0b0101_0101] {
                let torn = (0..rec.sectors(w)).map(|s| mask & (1 << s) != 0).collect();
                crashes.push(CrashState {
                    prefix,
                    extra: Vec::new(),
                    torn: Some((w, torn)),
                    as_objects: false,
                });
            }
        }
        for state in crashes {
            let image = Arc::new(MemDevice::from_bytes(&rec.crash_image(&state)));
            let old = pagelog_core::seal::unlock_with(&*image, support::PASSPHRASE);
            let new = pagelog_core::seal::unlock_with(&*image, b"the new one");
            let opened = match (old, new) {
                (Ok(Some(k)), _) | (_, Ok(Some(k))) => k,
                other => panic!("{state:?}: neither passphrase opens it: {other:?}"),
            };
            let mut fs = mount_with(&image, Some(&opened)).expect("mounts with the key it opened");
            assert_eq!(
                fs.read(ino, 0, 1 << 20).expect("read"),
                content(),
                "{state:?}"
            );
            fs.unmount().expect("unmount");
            assert_eq!(check(&image, &key, Level::Full).problems(), 0, "{state:?}");
            states += 1;
        }
    }
    assert!(states > 10, "only {states} crash states");
    let end = Arc::new(MemDevice::from_bytes(&rec.snapshot()));
    assert!(matches!(
        pagelog_core::seal::unlock_with(&*end, support::PASSPHRASE),
        Err(Error::WrongPassphrase)
    ));
    assert!(pagelog_core::seal::unlock_with(&*end, b"the new one").is_ok());
}
