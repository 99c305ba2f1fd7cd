//! Shared test support.

#[allow(dead_code)]
pub mod edit;
pub mod model;

use std::collections::BTreeMap;
use std::sync::Arc;

use pagelog_core::fsck::{self, Level, Report};
use pagelog_core::{
    format, BlockDevice, Cred, Filesystem, FormatOptions, Ino, MemDevice, MountOptions,
};

/// `len` bytes that do not compress, the same for the same `seed`.
#[allow(dead_code)]
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// Every file of `files` (name in the root, contents) reads back as given.
#[allow(dead_code)]
pub fn verify_files(fs: &mut Filesystem, files: &BTreeMap<String, Vec<u8>>) {
    let root = Cred::root();
    for (name, data) in files {
        let a = fs
            .lookup(&root, Ino::ROOT, name.as_bytes())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(a.size, data.len() as u64, "{name}: size");
        let got = fs.read(a.ino, 0, data.len() as u32).expect("read");
        assert!(got == *data, "{name}: contents differ");
    }
}

/// The passphrase the tests seal with.
#[allow(dead_code)]
pub const PASSPHRASE: &[u8] = b"correct horse battery staple";

/// A key setup for a sealed filesystem `uuid`: a fixed master key,
/// wrapped with cheap Argon2id costs (8 MiB, one pass) so tests stay fast.
#[allow(dead_code)]
pub fn key_setup(uuid: &[u8; 16]) -> pagelog_core::seal::keys::KeySetup {
    use pagelog_core::seal::keys;
    let key = test_key();
    let kdf = keys::kdf_params((8 * 1024, 1, 1)).expect("kdf");
    let slot = keys::wrap(&key, PASSPHRASE, kdf, uuid).expect("wrap");
    keys::KeySetup { key, slot }
}

/// The master key every sealed test filesystem has.
#[allow(dead_code)]
pub fn test_key() -> pagelog_core::seal::MasterKey {
    pagelog_core::seal::MasterKey::from_bytes([0x5e; 32])
}

/// The checker's report on `dev` at `level`, opened with `key`.
#[allow(dead_code)]
pub fn fsck_with(
    dev: &Arc<MemDevice>,
    key: Option<&pagelog_core::seal::MasterKey>,
    level: Level,
) -> Report {
    fsck::check(
        dev.clone() as Arc<dyn BlockDevice>,
        key,
        level,
        &mut |_, _, _| {},
    )
}

/// How the tests store data: a chain (`zstd:1`, `none`), and `+sealed`
/// to seal the volume. Returns the format options and the key to mount
/// with.
#[allow(dead_code)]
pub fn storing(spec: &str, pps: u32) -> (FormatOptions, Option<pagelog_core::seal::MasterKey>) {
    let (chain, sealed) = match spec.strip_suffix("+sealed") {
        Some(c) => (c, true),
        None => (spec, false),
    };
    let mut opts = FormatOptions {
        pages_per_segment: pps,
        compress: chain.into(),
        ..FormatOptions::default()
    };
    let key = sealed.then(|| key_setup(&opts.uuid));
    let master = key.as_ref().map(|k| k.key.clone());
    opts.seal = key;
    (opts, master)
}

/// A memory device of `pages` pages, formatted with `pps`-page segments.
#[allow(dead_code)]
pub fn formatted(pages: u64, pps: u32) -> Arc<MemDevice> {
    formatted_storing(pages, pps, "none")
}

/// [`formatted`], new data stored as `spec` says (`zstd:1`, `none+sealed`:
/// see [`storing`]).
#[allow(dead_code)]
pub fn formatted_storing(pages: u64, pps: u32, spec: &str) -> Arc<MemDevice> {
    let dev = Arc::new(MemDevice::new(pages));
    let (opts, _) = storing(spec, pps);
    format(dev.clone(), &opts).expect("format");
    dev
}

/// The key a filesystem made by [`storing`] with `spec` mounts with.
#[allow(dead_code)]
pub fn key_for(spec: &str) -> Option<pagelog_core::seal::MasterKey> {
    spec.ends_with("+sealed").then(test_key)
}

/// `dev` mounted read-write with the default options.
#[allow(dead_code)]
pub fn mount(dev: &Arc<MemDevice>) -> Filesystem {
    mount_keyed(dev, None)
}

/// `dev` mounted read-write with the default options and `key`.
#[allow(dead_code)]
pub fn mount_keyed(dev: &Arc<MemDevice>, key: Option<pagelog_core::seal::MasterKey>) -> Filesystem {
    let opts = MountOptions {
        key,
        ..MountOptions::default()
    };
    Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, opts).expect("mount")
}

/// The checker's report on `dev` at `level`.
#[allow(dead_code)]
pub fn fsck(dev: &Arc<MemDevice>, level: Level) -> Report {
    fsck::check(
        dev.clone() as Arc<dyn BlockDevice>,
        None,
        level,
        &mut |_, _, _| {},
    )
}

/// The first data page of `ino` on `dev`, and the record summary that
/// describes it: (page, summary's address, summary).
#[allow(dead_code)]
pub fn first_page_and_its_summary(
    dev: &Arc<MemDevice>,
    ino: pagelog_core::Ino,
) -> (
    pagelog_core::PageAddr,
    pagelog_core::PageAddr,
    pagelog_core::segment_summary::Summary,
) {
    let mut fs = mount(dev);
    let first = fs.tamper().data_addr(ino, 0).expect("pointer");
    let first = first.expect("stored");
    fs.unmount().expect("unmount");
    let (at, summary) = summary_of(dev, first);
    (first, at, summary)
}

/// The record summary that describes the page at `addr` (the nearest one
/// before it), and where it is.
#[allow(dead_code)]
pub fn summary_of(
    dev: &Arc<MemDevice>,
    addr: pagelog_core::PageAddr,
) -> (
    pagelog_core::PageAddr,
    pagelog_core::segment_summary::Summary,
) {
    use pagelog_core::{segment_summary::Summary, PageAddr};
    let mut at = addr;
    loop {
        at = PageAddr(at.0 - 1);
        let mut page = vec![0u8; 4096];
        dev.read(at, &mut page).expect("read");
        if let Ok(Some(s)) = Summary::decode(&page, at) {
            return (at, s);
        }
    }
}
