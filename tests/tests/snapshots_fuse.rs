//! Snapshots and retained checkpoints with the real binaries: a snapshot
//! made with `pagelog-snapshot create`, backed up with tar from a
//! read-only mount of it; a checkpoint never marked, mounted with
//! `-o ro,cp=N` and `-o ro,at=TIME`; `cat` from the past without
//! mounting; `list --json`; delete; refusals said clearly.

use std::fs;
use std::process::Command;

use pagelog_tests::{bin, run, sh, Mount, Scratch};

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

    // Read-write mounts of the past are refused by name, as is a missing
    // snapshot.
    let err = Mount::start(&img, &cpdir, "cp=1").expect_err("rw past");
    assert!(err.to_string().contains("read-only"), "{err}");
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
    let l = list(&dir);
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
    // Reading the past needs the image to itself, and says so.
    let out = snapshot_tool(&["cat", &img, "two", "f"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is mounted or in use"));
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
    let sock_dir = std::path::Path::new("/run/pagelog");
    let left: Vec<_> = fs::read_dir(sock_dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    let out = run(Command::new(bin("pagelog-info")).arg(&img).arg("--json"));
    let uuid = serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("info json")["uuid"]
        .as_str()
        .unwrap_or_default()
        .replace('-', "");
    assert!(
        !left.iter().any(|p| p.to_string_lossy().contains(&uuid)),
        "the socket goes with the mount: {left:?}"
    );
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
