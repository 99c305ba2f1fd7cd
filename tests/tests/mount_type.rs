//! A mount is `fuse.pagelog` with the image as its source, so `findmnt -t`
//! and `df -T` find it, and mount(8) never takes the source for a program:
//! `mount -o remount` runs pagelog's own helper (`mount.fuse.pagelog`),
//! which refuses clearly and changes nothing, or, where that is not
//! installed, fuse3's generic `mount.fuse`, which looks for a program named
//! after the subtype, never the source.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use pagelog_tests::{bin, run, Mount, Scratch};

fn sh_out(script: &str) -> (bool, String) {
    let out = run(Command::new("sh").arg("-c").arg(script));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn findmnt_and_df_show_the_type_and_the_image() {
    let s = Scratch::new();
    let m = s.mounted("64M", "");
    let image = m.image.canonicalize().expect("image path");
    let dir = m.dir.display();
    let (ok, source) = sh_out(&format!("findmnt -n -t fuse.pagelog -o SOURCE -M '{dir}'"));
    assert!(ok, "findmnt -t fuse.pagelog does not find {dir}: {source}");
    assert_eq!(source.trim(), image.to_string_lossy());
    let (ok, df) = sh_out(&format!("df -T '{dir}'"));
    assert!(ok, "{df}");
    let fstype = df.lines().nth(1).and_then(|l| l.split_whitespace().nth(1));
    assert_eq!(fstype, Some("fuse.pagelog"), "{df}");
    assert!(m.unmount().success());
}

/// Puts an executable script where the image was (the daemon keeps the
/// image open): a source taken for a program would run it.
fn plant_script(image: &Path, marker: &Path) {
    fs::rename(image, image.with_extension("moved")).expect("move the image");
    fs::write(image, format!("#!/bin/sh\ntouch '{}'\n", marker.display())).expect("script");
    fs::set_permissions(image, fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn remount_never_runs_the_source_and_refuses_clearly() {
    let s = Scratch::new();
    let m = s.mounted("64M", "");
    let marker = s.path("marker");
    plant_script(&m.image, &marker);
    let dir = m.dir.display();

    // With the helpers this machine has (fuse3's mount.fuse, if installed).
    let (ok, out) = sh_out(&format!("mount -o remount,ro '{dir}'"));
    assert!(!marker.exists(), "mount(8) ran the image path: {out}");
    assert!(
        !ok,
        "mount(8) found no helper and remounted the kernel alone (scripts/deps.sh installs \
         fuse3's mount.fuse; pagelog installs mount.fuse.pagelog): {out}"
    );

    // With pagelog's helper where mount(8) looks for it (in a private
    // mount namespace, so the system's /sbin is untouched).
    let helpers = s.path("sbin");
    fs::create_dir(&helpers).expect("mkdir");
    symlink(bin("pagelog-mount"), helpers.join("mount.fuse.pagelog")).expect("symlink");
    for opts in ["remount,ro", "remount,rw"] {
        let (ok, out) = sh_out(&format!(
            "unshare --mount --propagation private sh -c \
             'mount --bind \"{}\" \"$(readlink -f /sbin)\" && mount -o {opts} \"{dir}\"'",
            helpers.display()
        ));
        assert!(!ok, "{opts}: {out}");
        assert!(
            out.contains("pagelog-mount: remount is not supported; unmount and mount again"),
            "{opts}: {out}"
        );
        assert!(!marker.exists(), "{opts} ran the image path");
    }
    // Nothing changed: still mounted read-write.
    fs::write(m.path("after"), b"still writable").expect("write after the refusals");
    let (image, dir) = (m.image.clone(), m.dir.clone());
    assert!(m.unmount().success());
    fs::rename(image.with_extension("moved"), &image).expect("move back");
    let m = Mount::start(&image, &dir, "ro").expect("mount again");
    assert_eq!(fs::read(m.path("after")).expect("read"), b"still writable");
    assert!(m.unmount().success());
}
