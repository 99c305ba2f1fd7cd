//! POSIX access control lists through the mount, with `setfacl`, `getfacl`
//! and other users (setpriv): the same script runs on a pagelog mount and
//! on a tmpfs, whose lists are Linux's own (fs/posix_acl.c, the code ext4
//! uses for the same rules), and the two transcripts must be equal: what
//! each user may do, every list, mode and owner. Then lists survive a
//! remount, `cp -a` and `tar --acls`.

use std::path::Path;
use std::process::Command;

use pagelog_tests::{run, sh, Mount, Scratch, Tmpfs};

/// Allow and deny, the mask on chmod, default lists handed down (and the
/// umask skipped under one), the set-group-id rule, refusals.
const SCRIPT: &str = r#"
cd "$1" || exit 1
umask 022
r() { if "$@" >/dev/null 2>&1; then echo "ok   $*"; else echo "FAIL $*"; fi; }
as() { u=$1; shift; setpriv --reuid "$u" --regid "$u" --clear-groups "$@"; }
asg() { u=$1; g=$2; shift 2; setpriv --reuid "$u" --regid "$u" --groups "$g" "$@"; }
show() { for f in "$@"; do stat -c '%a %u:%g %n' "$f"; getfacl -p "$f" 2>&1; done; }
mkdir shared && chmod 777 shared && cd shared || exit 1

touch f && chmod 640 f
r as 1001 sh -c 'echo x >> f'
r setfacl -m u:1001:rw f
show f
r as 1001 sh -c 'echo x >> f'
r as 1002 cat f
r setfacl -m g:2000:r f
r asg 1002 2000 cat f
r chmod 600 f
show f
r as 1001 sh -c 'echo y >> f'
r chmod 660 f
show f
r as 1001 sh -c 'echo y >> f'
r setfacl -m m::r f
show f
r as 1001 sh -c 'echo z >> f'
r as 1002 setfacl -m u:1002:rwx f
r setfacl -d -m u:1001:r f
r setfacl -b f
show f

mkdir d && chmod 777 d
r setfacl -d -m u:1001:rwx,g:2000:rx d
show d
r as 1003 sh -c 'umask 077; touch d/file; mkdir d/sub; mkfifo d/fifo; ln -s file d/link'
show d/file d/sub d/fifo
stat -c '%a %n' d/link
r as 1001 sh -c 'echo w >> d/file'
r as 1002 cat d/file
r as 1003 sh -c 'umask 077; mkdir d/sub/deeper; touch d/sub/deeper/leaf'
show d/sub/deeper d/sub/deeper/leaf
r setfacl -k d
r as 1003 sh -c 'umask 027; touch d/after'
show d/after
r as 1003 sh -c 'umask 027; touch plain; mkdir plaindir'
show plain plaindir

touch sg && chown 1001:2000 sg && chmod 2770 sg
r as 1001 setfacl -m u:1002:r sg
show sg
touch sg2 && chown 1001:2000 sg2 && chmod 2770 sg2
r asg 1001 2000 setfacl -m u:1002:r sg2
show sg2
r setfacl -m u:1002:r sg2
r chmod 2770 sg2
r setfacl -m u:1003:r sg2
show sg2
"#;

fn transcript(dir: &Path) -> String {
    let out = run(Command::new("sh").arg("-c").arg(SCRIPT).arg("sh").arg(dir));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn same_as_tmpfs(s: &Scratch, m: &Mount) {
    let reference = Tmpfs::mount(&s.path("tmpfs"), "16m");
    let want = transcript(&reference.dir);
    let got = transcript(&m.dir);
    // The script must have exercised what it claims: both outcomes occur.
    assert!(
        want.contains("\nok   as 1001 sh -c echo x >> f\n"),
        "{want}"
    );
    assert!(want.contains("\nFAIL as 1002 cat f\n"), "{want}");
    assert!(want.contains("default:user:1001:rwx"), "{want}");
    for (i, (w, g)) in want.lines().zip(got.lines()).enumerate() {
        assert_eq!(
            g,
            w,
            "line {} differs\n--- tmpfs\n{want}\n--- pagelog\n{got}",
            i + 1
        );
    }
    assert_eq!(got.lines().count(), want.lines().count(), "{got}");
}

#[test]
fn lists_behave_as_linux_own_under_the_kernels_checks() {
    let s = Scratch::new();
    let m = s.mounted("64M", "allow_other");
    same_as_tmpfs(&s, &m);
    let img = m.image.clone();
    assert!(m.unmount().success());
    pagelog_tests::assert_checks_clean(&img);
}

#[test]
fn lists_behave_as_linux_own_under_pagelogs_checks() {
    let s = Scratch::new();
    let m = s.mounted("64M", "allow_other,no_default_permissions");
    same_as_tmpfs(&s, &m);
    assert!(m.unmount().success());
}

/// `getfacl -R` of `dir`, with paths relative to it.
fn lists(dir: &Path) -> String {
    sh(&format!("cd '{}' && getfacl -R -p .", dir.display()))
}

#[test]
fn lists_survive_remount_cp_and_tar() {
    let s = Scratch::new();
    let m = s.mounted("64M", "allow_other");
    sh(&format!(
        "cd '{}' && mkdir -p tree/a/b && touch tree/f tree/a/g tree/a/b/h && \
         setfacl -m u:1001:rw,g:2000:r tree/f && setfacl -R -m u:1002:rx tree/a && \
         setfacl -d -m u:1003:rwx tree/a/b && touch tree/a/b/inherited",
        m.dir.display()
    ));
    let before = lists(&m.path("tree"));
    assert!(before.contains("user:1002:r-x") && before.contains("default:user:1003:rwx"));
    let m = m.remount("allow_other");
    assert_eq!(lists(&m.path("tree")), before, "after a remount");

    sh(&format!("cd '{}' && cp -a tree copy", m.dir.display()));
    assert_eq!(lists(&m.path("copy")), before, "cp -a");
    let tar = s.path("tree.tar");
    sh(&format!(
        "cd '{}' && tar --acls -cf '{}' tree && mkdir untar && tar --acls -xf '{}' -C untar",
        m.dir.display(),
        tar.display(),
        tar.display()
    ));
    assert_eq!(lists(&m.path("untar/tree")), before, "tar --acls");
    let img = m.image.clone();
    assert!(m.unmount().success());
    pagelog_tests::assert_checks_clean(&img);
}
