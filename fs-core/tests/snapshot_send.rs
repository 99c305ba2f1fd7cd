//! `pagelog-snapshot send` below the tool (`objects/send.rs`), to a
//! local-directory store: the copy is the snapshot and nothing else,
//! mounts read-only and checks clean; a later send ships only what the
//! copy lacks; a send cut short at any object leaves the copy before it;
//! what a send must not write over, it refuses.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pagelog_core::checkpoints::At;
use pagelog_core::fsck::{self, Level};
use pagelog_core::objects::send::{send, SendOptions, Sent};
use pagelog_core::objects::{DirBackend, Manifest, ObjectBackend, ObjectDevice, StoreOptions};
use pagelog_core::seal::MasterKey;
use pagelog_core::{BlockDevice, Cred, Error, Filesystem, Ino, MemDevice, MountOptions};

mod support;

/// 64 MiB volumes of 64-page (256 KiB) segments.
const PAGES: u64 = 16384;
const PPS: u32 = 64;

fn target(dir: &Path) -> DirBackend {
    DirBackend::new(&dir.join("copy")).expect("target")
}

fn write_files(fs: &mut Filesystem, tag: &str, n: usize, len: usize) -> BTreeMap<String, Vec<u8>> {
    let root = Cred::root();
    (0..n)
        .map(|i| {
            let name = format!("{tag}-{i}");
            let data = support::noise(len + i * 1000, (i as u64 + 1) * 31 + tag.len() as u64);
            let f = fs
                .mknod(&root, Ino::ROOT, name.as_bytes(), 0o644, 0)
                .expect("create");
            fs.write(&root, f.ino, 0, &data).expect("write");
            (name, data)
        })
        .collect()
}

fn remove(fs: &mut Filesystem, files: &mut BTreeMap<String, Vec<u8>>, names: &[String]) {
    for n in names {
        fs.unlink(&Cred::root(), Ino::ROOT, n.as_bytes())
            .expect("unlink");
        files.remove(n);
    }
}

/// The target under `dir`, as a send takes it.
fn to(dir: &Path) -> Box<dyn ObjectBackend> {
    Box::new(target(dir))
}

/// A send's options in these tests: a lease of a short period (the wait
/// that makes sure of it is a fifth of one).
fn quick(force: bool) -> SendOptions {
    SendOptions {
        force,
        lease: std::time::Duration::from_millis(100),
    }
}

fn send_to(
    src: &Arc<MemDevice>,
    key: Option<&MasterKey>,
    snapshot: &str,
    to: Box<dyn ObjectBackend>,
) -> pagelog_core::Result<Sent> {
    send(
        src.clone() as Arc<dyn BlockDevice>,
        key,
        &At::Snapshot(snapshot.as_bytes().to_vec()),
        snapshot,
        to,
        &quick(false),
    )
}

/// A digest of every page of `dev`.
fn image_digest(dev: &MemDevice) -> u128 {
    let mut all = vec![0u8; dev.len_pages() as usize * 4096];
    dev.read(pagelog_core::PageAddr(0), &mut all).expect("read");
    xxhash_rust::xxh3::xxh3_128(&all)
}

fn read_only() -> StoreOptions {
    StoreOptions {
        read_only: true,
        ..StoreOptions::default()
    }
}

/// The copy in `dir`, opened as another machine would (a fresh cache).
fn open_copy(dir: &Path, cache: &str) -> Arc<ObjectDevice> {
    let dev = ObjectDevice::open(Box::new(target(dir)), &dir.join(cache), read_only())
        .expect("open the copy");
    Arc::new(dev)
}

/// The copy holds exactly `files` (and no other name in its root), checks
/// clean to the last data page, and lists snapshot `name`.
fn copy_is(dir: &Path, key: Option<MasterKey>, name: &str, files: &BTreeMap<String, Vec<u8>>) {
    let cache = format!("cache-{name}");
    let dev = open_copy(dir, &cache);
    let report = fsck::check(
        dev.clone() as Arc<dyn BlockDevice>,
        key.as_ref(),
        Level::VerifyData,
        &mut |_, _, _| {},
    );
    assert_eq!(report.problems(), 0, "the copy: {:?}", report.findings);
    let opts = MountOptions {
        read_only: true,
        key,
        ..MountOptions::default()
    };
    let mut fs = Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, opts).expect("mount copy");
    support::verify_files(&mut fs, files);
    let mut listed = Vec::new();
    fs.readdir(Ino::ROOT, 2, &mut |e| {
        listed.push(String::from_utf8_lossy(&e.name).into_owned());
        true
    })
    .expect("readdir");
    listed.sort();
    let expected: Vec<String> = files.keys().cloned().collect();
    assert_eq!(
        listed, expected,
        "the copy's root holds the snapshot's files only"
    );
    let retained: Vec<Option<Vec<u8>>> = fs.checkpoints().into_iter().map(|c| c.snapshot).collect();
    // The snapshot, and the state its clean unmount retains (the same
    // tree): nothing else of the source's history.
    assert_eq!(
        retained,
        vec![Some(name.as_bytes().to_vec()), None],
        "the snapshot, and nothing else"
    );
    assert!(fs.branches().is_empty());
    fs.unmount().expect("unmount copy");
    std::fs::remove_dir_all(dir.join(cache)).expect("rm cache");
}

/// The files of a snapshot, or of the live tree.
type Files = BTreeMap<String, Vec<u8>>;

/// A source with snapshot `one` (files `a`), then more written, some
/// removed, another snapshot and a branch: none of which the copy of
/// `one` may show. Returns `one`'s files and the live tree's.
fn source(spec: &str) -> (Arc<MemDevice>, Option<MasterKey>, Files, Files) {
    let dev = support::formatted_storing(PAGES, PPS, spec);
    let key = support::key_for(spec);
    let mut fs = support::mount_keyed(&dev, key.clone());
    let one = write_files(&mut fs, "a", 30, 40_000);
    fs.create_snapshot(b"one", None).expect("snapshot");
    let mut live = one.clone();
    live.extend(write_files(&mut fs, "later", 10, 60_000));
    let names: Vec<String> = one.keys().take(5).cloned().collect();
    remove(&mut fs, &mut live, &names);
    fs.create_snapshot(b"unrelated", None).expect("snapshot");
    fs.create_branch(b"work", &At::Snapshot(b"one".to_vec()))
        .expect("branch");
    fs.unmount().expect("unmount");
    (dev, key, one, live)
}

#[test]
fn a_sent_snapshot_is_a_read_only_volume_of_its_own() {
    for spec in ["none", "zstd:1+sealed"] {
        let dir = tempfile::tempdir().expect("tmp");
        let (src, key, one, _) = source(spec);
        let before = image_digest(&src);
        let sent = send_to(&src, key.as_ref(), "one", to(dir.path())).expect("send");
        assert_eq!(
            image_digest(&src),
            before,
            "{spec}: the source is never written"
        );
        assert_eq!(sent.uploaded, sent.segments + 2, "{spec}: {sent:?}");
        assert_eq!(sent.kept, 0);
        copy_is(dir.path(), key.clone(), "one", &one);
        // A copy is not a filesystem to write to.
        let writable = ObjectDevice::open(
            Box::new(target(dir.path())),
            &dir.path().join("rw"),
            StoreOptions::default(),
        );
        match writable {
            Err(Error::Refused(msg)) => assert!(msg.contains("read-only"), "{msg}"),
            other => panic!("{spec}: a copy opened for writing: {other:?}"),
        }
    }
}

#[test]
fn a_second_send_ships_only_what_the_copy_lacks() {
    let dir = tempfile::tempdir().expect("tmp");
    let (src, key, one, mut two) = source("none");
    let first = send_to(&src, key.as_ref(), "one", to(dir.path())).expect("send one");
    let mut fs = support::mount_keyed(&src, key.clone());
    let names: Vec<String> = one.keys().skip(10).take(3).cloned().collect();
    remove(&mut fs, &mut two, &names);
    let new = write_files(&mut fs, "b", 3, 20_000);
    let new_bytes: u64 = two
        .iter()
        .chain(&new)
        .filter(|(n, _)| !one.contains_key(*n))
        .map(|(_, d)| d.len() as u64)
        .sum();
    two.extend(new);
    fs.create_snapshot(b"two", None).expect("snapshot");
    fs.unmount().expect("unmount");
    let second = send_to(&src, key.as_ref(), "two", to(dir.path())).expect("send two");
    assert_eq!(second.replaced.as_deref(), Some("one"));
    assert!(second.kept > 0, "{second:?}");
    // What is new, and a few segments of tables and the commit that made
    // the copy (each 256 KiB at most).
    assert!(
        second.uploaded_bytes < new_bytes + 4 * 256 * 1024,
        "a change ships little more than itself ({new_bytes} bytes): {first:?} then {second:?}"
    );
    assert!(second.uploaded_bytes < second.bytes, "{second:?}");
    copy_is(dir.path(), key.clone(), "two", &two);
    // The copy replaced keeps its objects until the next send (a mount of
    // it reads on); then what only it held goes.
    let t = target(dir.path());
    let named = |generation: u64| -> Vec<String> {
        let bytes = t
            .get(&Manifest::key(generation))
            .expect("get")
            .expect("manifest");
        let m = Manifest::decode(&bytes, "test").expect("decode");
        m.objects.into_values().collect()
    };
    let first_objects = named(1);
    let there = |name: &String| t.get(name).expect("get").is_some();
    assert!(
        first_objects.iter().all(there),
        "the replaced copy is whole"
    );
    assert_eq!(t.list(Manifest::PREFIX).expect("list").len(), 2);
    let third = send_to(&src, key.as_ref(), "two", to(dir.path())).expect("send two again");
    assert_eq!(third.leftover, 0);
    let (second_objects, third_objects) = (named(2), named(3));
    for o in &first_objects {
        let kept = second_objects.contains(o) || third_objects.contains(o);
        assert_eq!(there(o), kept, "{o}: kept only while a copy named it");
    }
    assert_eq!(t.list(Manifest::PREFIX).expect("list").len(), 2);
    copy_is(dir.path(), key, "two", &two);
}

/// Copies the directory tree `from` to `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        match e.file_type().expect("type").is_dir() {
            true => copy_dir(&e.path(), &dest),
            false => {
                std::fs::copy(e.path(), &dest).expect("copy");
            }
        }
    }
}

/// A directory store whose puts of objects fail after `left` more
/// succeed, and whose deletes fail if `no_deletes` (the lease is never
/// refused: a send's own).
#[derive(Debug)]
struct CutShort {
    inner: DirBackend,
    left: AtomicUsize,
    no_deletes: bool,
}

impl ObjectBackend for CutShort {
    fn put(&self, key: &str, data: &[u8]) -> io::Result<()> {
        if key == "writer.json" {
            return self.inner.put(key, data);
        }
        let took = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        match took {
            Ok(_) => self.inner.put(key, data),
            Err(_) => Err(io::Error::other("the sender died")),
        }
    }
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn delete(&self, key: &str) -> io::Result<()> {
        if self.no_deletes && key != "writer.json" {
            return Err(io::Error::other("no deletes today"));
        }
        self.inner.delete(key)
    }
    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[test]
fn a_send_cut_short_leaves_the_copy_it_was_replacing() {
    let dir = tempfile::tempdir().expect("tmp");
    let (src, key, one, mut two) = source("none");
    send_to(&src, key.as_ref(), "one", to(dir.path())).expect("send one");
    let mut fs = support::mount_keyed(&src, key.clone());
    let names: Vec<String> = one.keys().skip(5).take(15).cloned().collect();
    remove(&mut fs, &mut two, &names);
    two.extend(write_files(&mut fs, "b", 20, 50_000));
    fs.create_snapshot(b"two", None).expect("snapshot");
    fs.unmount().expect("unmount");
    // Every point a send can stop at, each from the copy of `one` as the
    // first send left it; then a send that stopped part way is finished
    // by the next (what it put is not put again).
    let pristine = dir.path().join("pristine");
    copy_dir(&dir.path().join("copy"), &pristine);
    let mut cut = 0;
    let whole = loop {
        std::fs::remove_dir_all(dir.path().join("copy")).expect("rm");
        copy_dir(&pristine, &dir.path().join("copy"));
        let short = CutShort {
            inner: target(dir.path()),
            left: AtomicUsize::new(cut),
            no_deletes: false,
        };
        match send_to(&src, key.as_ref(), "two", Box::new(short)) {
            Ok(sent) => break sent,
            Err(e) => {
                assert!(e.to_string().contains("the sender died"), "{e}");
                copy_is(dir.path(), key.clone(), "one", &one);
            }
        }
        cut += 1;
    };
    // The last put is the descriptor; a cut before it is a cut above.
    assert_eq!(cut as u64, whole.uploaded + 2, "{whole:?}");
    copy_is(dir.path(), key.clone(), "two", &two);
    std::fs::remove_dir_all(dir.path().join("copy")).expect("rm");
    copy_dir(&pristine, &dir.path().join("copy"));
    let short = CutShort {
        inner: target(dir.path()),
        left: AtomicUsize::new(cut / 2),
        no_deletes: false,
    };
    send_to(&src, key.as_ref(), "two", Box::new(short)).expect_err("cut short");
    let rest = send_to(&src, key.as_ref(), "two", to(dir.path())).expect("send");
    assert!(rest.uploaded < whole.uploaded, "{rest:?} after {whole:?}");
    copy_is(dir.path(), key, "two", &two);
}

#[test]
fn a_send_refuses_what_it_must_not_write_over() {
    let dir = tempfile::tempdir().expect("tmp");
    let (src, key, one, _) = source("none");
    // No such snapshot: nothing is written.
    let missing = send_to(&src, key.as_ref(), "nope", to(dir.path()));
    assert!(matches!(missing, Err(Error::Refused(_))), "{missing:?}");
    assert!(target(dir.path()).list("").expect("list").is_empty());
    // A store holding a filesystem.
    let fs_dir = dir.path().join("fs");
    let volume = DirBackend::new(&fs_dir).expect("dir");
    ObjectDevice::create(
        Box::new(DirBackend::new(&fs_dir).expect("dir")),
        &dir.path().join("fs-cache"),
        PAGES,
        PPS,
        false,
        StoreOptions::default(),
    )
    .expect("create");
    match send_to(&src, key.as_ref(), "one", Box::new(volume)) {
        Err(Error::Refused(msg)) => assert!(msg.contains("holds a filesystem"), "{msg}"),
        other => panic!("sent over a filesystem: {other:?}"),
    }
    // The copy of another filesystem: refused, unless forced.
    send_to(&src, key.as_ref(), "one", to(dir.path())).expect("send");
    let (other, other_key, other_one, _) = source("none");
    match send_to(&other, other_key.as_ref(), "one", to(dir.path())) {
        Err(Error::Refused(msg)) => assert!(msg.contains("another filesystem"), "{msg}"),
        other => panic!("replaced another filesystem's copy: {other:?}"),
    }
    copy_is(dir.path(), key, "one", &one);
    send(
        other.clone() as Arc<dyn BlockDevice>,
        other_key.as_ref(),
        &At::Snapshot(b"one".to_vec()),
        "one",
        to(dir.path()),
        &quick(true),
    )
    .expect("forced");
    copy_is(dir.path(), other_key, "one", &other_one);
}

/// A source whose segments read differently the second time they are
/// read whole (as if a writer elsewhere had used them again meanwhile).
#[derive(Debug)]
struct Shifting {
    inner: Arc<MemDevice>,
    reads: std::sync::Mutex<BTreeMap<u64, u32>>,
}

impl BlockDevice for Shifting {
    fn len_pages(&self) -> u64 {
        self.inner.len_pages()
    }
    fn read(&self, addr: pagelog_core::PageAddr, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read(addr, buf)?;
        if buf.len() == PPS as usize * 4096 {
            let mut reads = self.reads.lock().expect("lock");
            let n = reads.entry(addr.0).or_default();
            *n += 1;
            if *n > 1 {
                let last = buf.len() - 1;
                buf[last] ^= 0x5a;
            }
        }
        Ok(())
    }
    fn write(&self, _addr: pagelog_core::PageAddr, _buf: &[u8]) -> io::Result<()> {
        Err(io::Error::other("the source is not written"))
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_segment_changed_while_sent_publishes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let (src, key, _, _) = source("none");
    let shifting = Arc::new(Shifting {
        inner: src,
        reads: Default::default(),
    });
    let got = send(
        shifting,
        key.as_ref(),
        &At::Snapshot(b"one".to_vec()),
        "one",
        to(dir.path()),
        &quick(false),
    );
    match got {
        Err(Error::Refused(msg)) => assert!(msg.contains("changed while it was read"), "{msg}"),
        other => panic!("a changing source was sent: {other:?}"),
    }
    let t = target(dir.path());
    assert!(
        t.get("volume.json").expect("get").is_none(),
        "nothing was published"
    );
    assert!(t.list(Manifest::PREFIX).expect("list").is_empty());
    drop(key);
}

/// The copy is published before what no copy needs is deleted: a delete
/// that fails leaves the object for the next send, and the send is done.
#[test]
fn a_delete_that_fails_after_the_switch_is_left_for_the_next_send() {
    let dir = tempfile::tempdir().expect("tmp");
    let (src, key, _, mut two) = source("none");
    send_to(&src, key.as_ref(), "one", to(dir.path())).expect("send one");
    send_to(&src, key.as_ref(), "unrelated", to(dir.path())).expect("send unrelated");
    let mut fs = support::mount_keyed(&src, key.clone());
    two.extend(write_files(&mut fs, "c", 4, 30_000));
    fs.create_snapshot(b"two", None).expect("snapshot");
    fs.unmount().expect("unmount");
    let failing = CutShort {
        inner: target(dir.path()),
        left: AtomicUsize::new(usize::MAX),
        no_deletes: true,
    };
    let sent = send_to(&src, key.as_ref(), "two", Box::new(failing)).expect("send");
    assert!(sent.leftover > 0 && sent.deleted == 0, "{sent:?}");
    copy_is(dir.path(), key.clone(), "two", &two);
    let next = send_to(&src, key.as_ref(), "two", to(dir.path())).expect("send");
    assert!(next.deleted >= sent.leftover, "{next:?} after {sent:?}");
    copy_is(dir.path(), key, "two", &two);
}
