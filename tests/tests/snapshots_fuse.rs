//! Snapshots and retained checkpoints with the real binaries: a snapshot
//! made with `pagelog-snapshot create`, backed up with tar from a
//! read-only mount of it; a checkpoint never marked, mounted with
//! `-o ro,cp=N` and `-o ro,at=TIME`; `cat` from the past without
//! mounting; `list --json`; delete; refusals said clearly; a snapshot
//! mounted beside the live mount by its daemon and backed up while
//! writers run; read-write branches from a checkpoint never marked,
//! mounted alone and beside the live mount, diverging without touching it.

use std::fs;
use std::process::Command;

use pagelog_tests::{assert_checks_clean, bin, run, sh, Mount, Scratch};

fn snapshot_tool(args: &[&str]) -> std::process::Output {
    run(Command::new(bin("pagelog-snapshot")).args(args))
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deletes `name` on the mount at `dir`, retrying for up to 5 s while its
/// own mount is still going away (an unmount closes the view a moment
/// after umount returns). Returns whether it was deleted.
fn deleted_once_unmounted(dir: &str, name: &str) -> bool {
    for _ in 0..50 {
        if snapshot_tool(&["delete", dir, name]).status.success() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

fn list(img: &str) -> serde_json::Value {
    let out = ok(&snapshot_tool(&["list", img, "--json"]));
    serde_json::from_str(&out).expect("json")
}

#[test]
fn backup_of_a_snapshot_and_mounts_of_the_past() {
    let s = Scratch::new();
    let m = s.mounted("128M", "");
    sh(&format!(
        "mkdir -p '{0}/etc' && seq 1 20000 > '{0}/etc/app.conf' && head -c 3000000 /dev/urandom > '{0}/blob' && sync",
        m.dir.display()
    ));
    let original = fs::read(m.path("blob")).expect("blob");
    let img = m.image.clone();
    let dir = m.dir.clone();
    assert!(m.unmount().success());
    let img_s = img.to_str().expect("utf-8 path");

    ok(&snapshot_tool(&["create", img_s, "before-upgrade"]));
    let l = list(img_s);
    let snaps: Vec<&serde_json::Value> = l["checkpoints"]
        .as_array()
        .expect("array")
        .iter()
        .filter(|c| c["kind"] == "snapshot")
        .collect();
    assert_eq!(snaps.len(), 1, "{l}");
    assert_eq!(snaps[0]["name"], "before-upgrade");
    let err = snapshot_tool(&["create", img_s, "before-upgrade"]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("exists"));

    // The live tree moves on.
    let m = Mount::start(&img, &dir, "").expect("mount");
    sh(&format!(
        "echo changed > '{0}/etc/app.conf' && rm '{0}/blob' && echo new > '{0}/new' && sync",
        m.dir.display()
    ));
    assert!(m.unmount().success());

    // cat from the past, without mounting.
    let out = snapshot_tool(&["cat", img_s, "before-upgrade", "etc/app.conf"]);
    let text = ok(&out);
    assert!(text.starts_with("1\n2\n3\n") && text.ends_with("20000\n"));

    // A backup with tar of the snapshot, mounted read-only.
    let snapdir = s.path("snap");
    fs::create_dir_all(&snapdir).expect("mkdir");
    let snap = Mount::start(&img, &snapdir, "ro,snapshot=before-upgrade").expect("mount snapshot");
    let tarball = s.path("backup.tar");
    sh(&format!(
        "tar -C '{}' -cf '{}' .",
        snap.dir.display(),
        tarball.display()
    ));
    assert!(
        !snap.path("new").exists(),
        "the snapshot does not see later files"
    );
    drop(snap);
    let restored = s.path("restored");
    fs::create_dir_all(&restored).expect("mkdir");
    sh(&format!(
        "tar -C '{}' -xf '{}'",
        restored.display(),
        tarball.display()
    ));
    assert_eq!(
        fs::read(restored.join("blob")).expect("restored blob"),
        original
    );

    // A checkpoint never marked: the one before the snapshot's, by number.
    let l = list(img_s);
    let plain: Vec<u64> = l["checkpoints"]
        .as_array()
        .expect("array")
        .iter()
        .filter(|c| c["kind"] == "checkpoint")
        .map(|c| c["checkpoint"].as_u64().expect("number"))
        .collect();
    assert!(!plain.is_empty(), "{l}");
    let cpdir = s.path("cp");
    fs::create_dir_all(&cpdir).expect("mkdir");
    let newest_plain = *plain.last().expect("one");
    let past = Mount::start(&img, &cpdir, &format!("ro,cp={newest_plain}")).expect("mount cp");
    assert_eq!(
        fs::read_to_string(past.path("etc/app.conf")).expect("read"),
        "changed\n"
    );
    drop(past);

    // A checkpoint that is not retained, and a missing snapshot, are
    // refused by name; so is a read-only branch made from the past.
    let err = Mount::start(&img, &cpdir, "cp=999999").expect_err("not retained");
    assert!(
        err.to_string()
            .contains("checkpoint 999999 is not retained"),
        "{err}"
    );
    let err = Mount::start(&img, &cpdir, "ro,cp=1,branch=x").expect_err("ro branch");
    assert!(err.to_string().contains("drop -o ro"), "{err}");
    let err = Mount::start(&img, &cpdir, "ro,snapshot=nope").expect_err("missing");
    assert!(
        err.to_string().contains("no snapshot is named 'nope'"),
        "{err}"
    );

    // Delete: the snapshot is gone, and its space comes back to df.
    ok(&snapshot_tool(&["delete", img_s, "before-upgrade"]));
    let l = list(img_s);
    assert!(l["checkpoints"]
        .as_array()
        .expect("array")
        .iter()
        .all(|c| c["kind"] == "checkpoint"));
    let err = snapshot_tool(&["delete", img_s, "before-upgrade"]);
    assert!(!err.status.success());
}

#[test]
fn a_running_mount_takes_snapshots_through_its_control_socket() {
    let s = Scratch::new();
    let m = s.mounted("64M", "");
    let dir = m.dir.to_str().expect("utf-8").to_string();
    let img = m.image.to_str().expect("utf-8").to_string();
    // Written without fsync: the kernel may still hold it; the snapshot
    // of the present must see it all the same.
    fs::write(m.path("f"), b"first").expect("write");
    ok(&snapshot_tool(&["create", &dir, "one"]));
    fs::write(m.path("f"), b"second").expect("write");
    ok(&snapshot_tool(&["create", &img, "two"]));
    // A client that connects and says nothing holds up no one.
    let idle = std::os::unix::net::UnixStream::connect(control_socket(&img)).expect("connect");
    let l = list(&dir);
    drop(idle);
    let names: Vec<&str> = l["checkpoints"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["one", "two"], "{l}");
    ok(&snapshot_tool(&["delete", &dir, "one"]));
    let err = snapshot_tool(&["delete", &dir, "one"]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("no snapshot is named 'one'"));
    // Reading the past goes through the daemon too, streamed.
    let out = ok(&snapshot_tool(&["cat", &dir, "two", "f"]));
    assert_eq!(out, "second");
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(m.path("big"), &big).expect("write big");
    ok(&snapshot_tool(&["create", &dir, "three"]));
    fs::write(m.path("big"), b"gone").expect("overwrite");
    let out = snapshot_tool(&["cat", &dir, "three", "big"]);
    assert!(out.status.success());
    assert!(out.stdout == big, "5 MB read back as it was");
    let err = snapshot_tool(&["cat", &dir, "three", "nothing"]);
    assert!(!err.status.success());
    // Only root or the mounter may use the socket.
    let other = pagelog_tests::sh_as(
        65534,
        65534,
        &[],
        &format!("'{}' list '{dir}'", bin("pagelog-snapshot").display()),
    );
    assert!(!other.status.success());
    fs::write(m.path("f"), b"third").expect("write");
    assert!(m.unmount().success());
    let out = ok(&snapshot_tool(&["cat", &img, "two", "f"]));
    assert_eq!(out, "second");
    let sock = control_socket(&img);
    assert!(!sock.exists(), "the socket goes with the mount: {sock:?}");
}

/// The control socket of the filesystem in `img`.
fn control_socket(img: &str) -> std::path::PathBuf {
    let out = run(Command::new(bin("pagelog-info")).arg(img).arg("--json"));
    let uuid = serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("info json")["uuid"]
        .as_str()
        .unwrap_or_default()
        .replace('-', "");
    assert_eq!(uuid.len(), 32, "{}", String::from_utf8_lossy(&out.stdout));
    std::path::Path::new("/run/pagelog").join(format!("{uuid}.sock"))
}

#[test]
fn a_socket_left_by_a_killed_daemon_is_replaced() {
    let s = Scratch::new();
    let mut m = s.mounted("64M", "");
    let (img, dir) = (m.image.clone(), m.dir.clone());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(m.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    m.wait();
    let _ = Command::new("umount").arg("-l").arg(&dir).output();
    let m = Mount::start(&img, &dir, "").expect("mount again");
    let d = dir.to_str().expect("utf-8");
    ok(&snapshot_tool(&["create", d, "after-crash"]));
    assert!(list(d)["checkpoints"].to_string().contains("after-crash"));
    assert!(m.unmount().success());
}

/// Every file under `root`, by relative path, with its bytes.
fn tree(root: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d)
            .expect("readdir")
            .map(|e| e.expect("entry"))
        {
            let p = e.path();
            if e.file_type().expect("type").is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(root).expect("under root");
                out.insert(
                    rel.to_string_lossy().into_owned(),
                    fs::read(&p).expect("read"),
                );
            }
        }
    }
    out
}

#[test]
fn a_backup_of_a_snapshot_mounted_beside_the_live_mount_while_writers_run() {
    let s = Scratch::new();
    let m = s.mounted("256M", "");
    let dir = m.dir.to_str().expect("utf-8").to_string();
    sh(&format!(
        "cd '{dir}' && mkdir -p a/b c && for i in $(seq 1 200); do seq $i 3000 > a/f$i; done \
         && head -c 4000000 /dev/urandom > c/blob && seq 1 100000 > a/b/deep && sync"
    ));
    let expected = tree(&m.dir);
    ok(&snapshot_tool(&["create", &dir, "backup"]));

    // Writers: rewrite, delete and create, until told to stop.
    let stop = s.path("stop");
    let writer = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "n=0; while [ ! -e '{stop}' ]; do n=$((n+1)); \
             head -c 1000000 /dev/urandom > '{dir}/c/blob'; rm -f '{dir}/a/f'$((n % 200 + 1)); \
             seq $n 5000 > '{dir}/new'$((n % 50)); mv '{dir}/a/b/deep' '{dir}/deep' 2>/dev/null \
             || mv '{dir}/deep' '{dir}/a/b/deep'; done",
            stop = stop.display()
        ))
        .spawn()
        .expect("writer");

    let snapdir = s.path("snap");
    fs::create_dir_all(&snapdir).expect("mkdir");
    let snap_s = snapdir.to_str().expect("utf-8");
    let said = ok(&snapshot_tool(&["mount", &dir, "backup", snap_s]));
    assert!(said.contains("read-only"), "{said}");
    assert!(pagelog_tests::is_mounted(&snapdir));
    let l = list(&dir);
    let entry = l["checkpoints"]
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["name"] == "backup")
        .expect("listed")
        .clone();
    assert_eq!(
        entry["mounted_at"].as_str(),
        Some(
            snapdir
                .canonicalize()
                .expect("canon")
                .to_str()
                .expect("utf-8")
        ),
        "{l}"
    );
    // Mounted, it is not deleted, and it cannot be written.
    let err = snapshot_tool(&["delete", &dir, "backup"]);
    assert!(!err.status.success());
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("is mounted"),
        "{}",
        String::from_utf8_lossy(&err.stderr)
    );
    let denied = fs::write(snapdir.join("x"), b"no");
    assert_eq!(denied.map_err(|e| e.raw_os_error()), Err(Some(libc::EROFS)));

    // The backup, twice, while the writers run and the live tree changes.
    let tarball = s.path("backup.tar");
    for _ in 0..2 {
        sh(&format!("tar -C '{snap_s}' -cf '{}' .", tarball.display()));
    }
    fs::write(&stop, b"").expect("stop");
    let status = { writer }.wait().expect("writer");
    assert!(status.success());
    assert_ne!(tree(&m.dir), expected, "the writers changed the live tree");
    assert!(m.path("new1").exists());

    pagelog_tests::umount(std::path::Path::new(&snap_s));
    let restored = s.path("restored");
    fs::create_dir_all(&restored).expect("mkdir");
    sh(&format!(
        "tar -C '{}' -xf '{}'",
        restored.display(),
        tarball.display()
    ));
    assert!(tree(&restored) == expected, "the backup is the snapshot");

    // Unmounted, the snapshot can go; the filesystem checks clean.
    assert!(
        deleted_once_unmounted(&dir, "backup"),
        "the snapshot is deletable once its mount is gone"
    );
    let img = m.image.clone();
    assert!(m.unmount().success());
    assert_checks_clean(&img);
}

#[test]
fn the_live_mount_ending_takes_its_snapshot_mounts_with_it() {
    let s = Scratch::new();
    let m = s.mounted("64M", "");
    let dir = m.dir.to_str().expect("utf-8").to_string();
    fs::write(m.path("f"), b"then").expect("write");
    ok(&snapshot_tool(&["create", &dir, "s"]));
    fs::write(m.path("f"), b"now").expect("write");
    let snapdir = s.path("snap");
    fs::create_dir_all(&snapdir).expect("mkdir");
    let snap_s = snapdir.to_str().expect("utf-8");
    ok(&snapshot_tool(&["mount", &dir, "s", snap_s]));
    assert_eq!(fs::read(snapdir.join("f")).expect("read"), b"then");
    assert_eq!(fs::read(m.path("f")).expect("read"), b"now");
    // A second mount of the same directory is refused by name.
    let again = snapshot_tool(&["mount", &dir, "s", snap_s]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already a mount point"));
    assert!(m.unmount().success());
    assert!(
        !pagelog_tests::is_mounted(&snapdir),
        "the view went with the live mount"
    );
}

fn branches(target: &str) -> Vec<serde_json::Value> {
    list(target)["branches"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_branch_from_a_checkpoint_never_marked_mounts_read_write_and_diverges() {
    let s = Scratch::new();
    let m = s.mounted("128M", "");
    sh(&format!(
        "cd '{}' && mkdir d && seq 1 5000 > d/list && echo one > a && sync",
        m.dir.display()
    ));
    let img = m.image.clone();
    let live_dir = m.dir.clone();
    assert!(m.unmount().success());
    let img_s = img.to_str().expect("utf-8").to_string();
    // The newest plain checkpoint: the unmount's, never marked.
    let then = list(&img_s)["checkpoints"]
        .as_array()
        .expect("array")
        .iter()
        .filter(|c| c["kind"] == "checkpoint")
        .map(|c| c["checkpoint"].as_u64().expect("number"))
        .max()
        .expect("a retained checkpoint");
    // The live tree moves on.
    let m = Mount::start(&img, &live_dir, "").expect("mount");
    sh(&format!(
        "cd '{}' && echo two > a && rm d/list && echo later > later && sync",
        m.dir.display()
    ));
    assert!(m.unmount().success());

    // Mounted read-write from that checkpoint: a branch, named.
    let brdir = s.path("branch");
    fs::create_dir_all(&brdir).expect("mkdir");
    let br = Mount::start(&img, &brdir, &format!("cp={then},branch=retry")).expect("branch");
    assert_eq!(fs::read_to_string(br.path("a")).expect("a"), "one\n");
    assert!(br.path("d/list").exists() && !br.path("later").exists());
    sh(&format!(
        "cd '{}' && echo three > a && head -c 2000000 /dev/urandom > big && mkdir e && sync",
        br.dir.display()
    ));
    let big = fs::read(br.path("big")).expect("big");
    // A snapshot of the present would be of the live tree, not of what
    // this mount shows: refused, by name.
    let err = snapshot_tool(&["create", br.dir.to_str().expect("utf-8"), "x"]);
    assert!(!err.status.success());
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("serves branch 'retry'"),
        "{}",
        String::from_utf8_lossy(&err.stderr)
    );
    assert!(br.unmount().success());

    // The live tree did not move; the branch is listed.
    let m = Mount::start(&img, &live_dir, "").expect("mount");
    assert_eq!(fs::read_to_string(m.path("a")).expect("a"), "two\n");
    assert!(!m.path("big").exists() && m.path("later").exists());
    let dir = m.dir.to_str().expect("utf-8").to_string();
    let b = branches(&dir);
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(
        (b[0]["name"].as_str(), b[0]["origin"].as_u64()),
        (Some("retry"), Some(then))
    );

    // Beside the live mount, through the daemon, read-write.
    let brs = brdir.to_str().expect("utf-8");
    let said = ok(&snapshot_tool(&["mount", &dir, "retry", brs, "--rw"]));
    assert!(said.contains("read-write"), "{said}");
    assert_eq!(fs::read(brdir.join("big")).expect("big"), big);
    fs::write(brdir.join("beside"), b"written beside").expect("write in branch");
    fs::write(m.path("live-only"), b"live").expect("write in live");
    assert!(!brdir.join("live-only").exists() && !m.path("beside").exists());
    let b = branches(&dir);
    assert!(b[0]["mounted_at"].as_str().is_some(), "{b:?}");
    let err = snapshot_tool(&["delete", &dir, "retry"]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("is mounted"));
    // A second branch from a snapshot, through the tool.
    ok(&snapshot_tool(&["create", &dir, "base"]));
    ok(&snapshot_tool(&["clone", &dir, "base", "second"]));
    let err = snapshot_tool(&["delete", &dir, "base"]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("delete the branch first"));
    pagelog_tests::umount(std::path::Path::new(&brs));
    assert!(
        deleted_once_unmounted(&dir, "retry"),
        "the branch is deletable once unmounted"
    );
    ok(&snapshot_tool(&["delete", &dir, "second"]));
    ok(&snapshot_tool(&["delete", &dir, "base"]));
    assert!(branches(&dir).is_empty());
    assert!(m.unmount().success());

    // Without branch=, a read-write mount of the past makes one named
    // after its checkpoint.
    let auto = Mount::start(&img, &brdir, &format!("cp={then}")).expect("auto branch");
    assert_eq!(fs::read_to_string(auto.path("a")).expect("a"), "one\n");
    assert!(auto.unmount().success());
    let b = branches(&img_s);
    assert!(
        b.len() == 1
            && b[0]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(&format!("cp{then}-"))),
        "{b:?}"
    );
    assert_checks_clean(&img);
}

#[test]
fn rollback_keeps_history() {
    let s = Scratch::new();
    let m = s.mounted("64M", "");
    let dir = m.dir.to_str().expect("utf-8").to_string();
    sh(&format!(
        "cd '{dir}' && echo v1 > conf && mkdir data && seq 1 1000 > data/x && sync"
    ));
    ok(&snapshot_tool(&["create", &dir, "before-upgrade"]));
    sh(&format!(
        "cd '{dir}' && echo v2 > conf && rm data/x && echo new > added && sync"
    ));
    ok(&snapshot_tool(&["create", &dir, "after-upgrade"]));
    // What the upgrade changed, zfs diff style, through the daemon.
    let d = ok(&snapshot_tool(&[
        "diff",
        &dir,
        "before-upgrade",
        "after-upgrade",
    ]));
    for line in ["M\t/conf", "-\t/data/x", "+\t/added", "M\t/data", "M\t/"] {
        assert!(d.lines().any(|l| l == line), "{line:?} missing from {d}");
    }
    assert_eq!(d.lines().count(), 5, "{d}");
    sh(&format!("cd '{dir}' && echo v3 > conf && sync"));
    // Not while mounted: the kernel's caches would outlive the tree.
    let img = m.image.clone();
    let img_s = img.to_str().expect("utf-8").to_string();
    let err = snapshot_tool(&["rollback", &img_s, "before-upgrade"]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("needs the filesystem unmounted"));
    let live_dir = m.dir.clone();
    assert!(m.unmount().success());

    // The same offline, as JSON.
    let d = ok(&snapshot_tool(&[
        "diff",
        &img_s,
        "before-upgrade",
        "after-upgrade",
        "--json",
    ]));
    let d: serde_json::Value = serde_json::from_str(&d).expect("json");
    assert!(d
        .as_array()
        .expect("array")
        .iter()
        .any(|c| c["mark"] == "+" && c["path"] == "/added"));
    let said = ok(&snapshot_tool(&["rollback", &img_s, "before-upgrade"]));
    assert!(said.contains("kept as snapshot 'pre-rollback-"), "{said}");
    let m = Mount::start(&img, &live_dir, "").expect("mount");
    assert_eq!(fs::read_to_string(m.path("conf")).expect("conf"), "v1\n");
    assert!(m.path("data/x").exists() && !m.path("added").exists());
    let l = list(&dir);
    let names: Vec<&str> = l["checkpoints"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names.len(), 3, "{l}");
    assert_eq!(&names[..2], ["before-upgrade", "after-upgrade"]);
    assert!(names[2].starts_with("pre-rollback-"));
    // The newer snapshot and the kept present read as they were.
    let out = ok(&snapshot_tool(&["cat", &dir, "after-upgrade", "added"]));
    assert_eq!(out, "new\n");
    let out = ok(&snapshot_tool(&["cat", &dir, names[2], "conf"]));
    assert_eq!(out, "v3\n");
    // The live tree moves on from the rolled-back state.
    fs::write(m.path("conf"), b"v4\n").expect("write");
    assert!(m.unmount().success());
    assert_checks_clean(&img);
}

#[test]
fn a_branch_beside_the_live_mount_keeps_its_writes_when_the_live_mount_ends() {
    let s = Scratch::new();
    // Ending the live mount unmounts the branch mounted beside it first,
    // then commits: the branch's writes are in that commit (in the
    // writeback mode too, where the kernel caches writes).
    let m = s.mounted("64M", "journal=writeback");
    let dir = m.dir.to_str().expect("utf-8").to_string();
    fs::write(m.path("f"), b"then").expect("write");
    ok(&snapshot_tool(&["create", &dir, "s"]));
    ok(&snapshot_tool(&["clone", &dir, "s", "b"]));
    let brdir = s.path("branch");
    fs::create_dir_all(&brdir).expect("mkdir");
    let br_s = brdir.to_str().expect("utf-8");
    ok(&snapshot_tool(&["mount", &dir, "b", br_s, "--rw"]));
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    fs::write(brdir.join("new"), &data).expect("write in the branch");
    let img = m.image.clone();
    assert!(m.unmount().success());
    assert!(!pagelog_tests::is_mounted(&brdir));
    let br = Mount::start(&img, &brdir, "branch=b").expect("branch again");
    assert!(
        fs::read(br.path("new")).expect("read") == data,
        "the branch's write survived"
    );
    assert_eq!(fs::read(br.path("f")).expect("read"), b"then");
    assert!(br.unmount().success());
}

/// `pagelog-snapshot send` from a mounted image to a directory store: the
/// copy mounts read-only (and nothing else), holds the snapshot and not
/// what came after, checks clean, refuses to be written; the next
/// snapshot sent there uploads little more than what changed.
#[test]
fn a_snapshot_sent_to_a_store_mounts_read_only_anywhere() {
    let s = Scratch::new();
    let m = s.mounted("128M", "");
    sh(&format!(
        "mkdir -p '{0}/etc' && seq 1 20000 > '{0}/etc/app.conf' && head -c 6000000 /dev/urandom > '{0}/blob' && sync",
        m.dir.display()
    ));
    let blob = fs::read(m.path("blob")).expect("blob");
    let conf = fs::read(m.path("etc/app.conf")).expect("conf");
    let mnt = m.dir.to_str().expect("utf-8").to_string();
    let img = m.image.to_str().expect("utf-8").to_string();
    ok(&snapshot_tool(&["create", &mnt, "nightly"]));
    sh(&format!(
        "rm '{mnt}/blob' && echo later > '{mnt}/later' && sync"
    ));
    let copy = format!("dir:{}", s.path("copy").display());
    // Sent while the filesystem is mounted: its newest commit is read.
    let first: serde_json::Value = serde_json::from_str(&ok(&snapshot_tool(&[
        "send", &img, "nightly", "--to", &copy, "--json",
    ])))
    .expect("json");
    assert_eq!(first["kept"], 0, "{first}");
    assert!(
        first["uploaded_bytes"].as_u64().expect("bytes") >= 6_000_000,
        "{first}"
    );

    let there = s.path("there");
    fs::create_dir_all(&there).expect("mkdir");
    let c = Mount::start(std::path::Path::new(&copy), &there, "ro").expect("mount the copy");
    assert_eq!(fs::read(c.path("blob")).expect("blob in the copy"), blob);
    assert_eq!(fs::read(c.path("etc/app.conf")).expect("conf"), conf);
    assert!(
        !c.path("later").exists(),
        "what came after the snapshot is not in the copy"
    );
    assert!(
        fs::write(c.path("x"), b"x").is_err(),
        "the copy is read-only"
    );
    assert!(c.unmount().success());
    assert_checks_clean(std::path::Path::new(&copy));
    let rw = Mount::start(std::path::Path::new(&copy), &there, "");
    let err = rw.expect_err("a copy mounted read-write").to_string();
    assert!(err.contains("read-only"), "{err}");

    // The next night: a small change, sent to the same place.
    sh(&format!("echo tuesday >> '{mnt}/etc/app.conf' && sync"));
    ok(&snapshot_tool(&["create", &mnt, "nightly-2"]));
    let second: serde_json::Value = serde_json::from_str(&ok(&snapshot_tool(&[
        "send",
        &img,
        "nightly-2",
        "--to",
        &copy,
        "--json",
    ])))
    .expect("json");
    assert_eq!(second["replaced"], "nightly", "{second}");
    assert!(second["kept"].as_u64().expect("kept") > 0, "{second}");
    assert!(
        second["uploaded_bytes"].as_u64().expect("bytes") < 2_000_000,
        "the unchanged segments are not uploaded again: {second}"
    );
    assert!(m.unmount().success());
    let listed = list(&copy);
    let names: Vec<&serde_json::Value> = listed["checkpoints"]
        .as_array()
        .expect("array")
        .iter()
        .filter(|c| c["kind"] == "snapshot")
        .map(|c| &c["name"])
        .collect();
    assert_eq!(names, vec!["nightly-2"], "{listed}");
    let c = Mount::start(std::path::Path::new(&copy), &there, "ro").expect("mount the copy");
    assert!(fs::read_to_string(c.path("etc/app.conf"))
        .expect("conf")
        .ends_with("tuesday\n"));
    assert!(c.path("later").exists() && !c.path("blob").exists());
    assert!(c.unmount().success());
}
