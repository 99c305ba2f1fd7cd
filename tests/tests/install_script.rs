//! scripts/install.sh, into a staging root: every pagelog-* program of
//! the workspace's shipped packages, stripped; the mkfs.pagelog,
//! fsck.pagelog and mount.pagelog links (mkfs and fsck work through
//! them); man pages that `man -l` renders; bash and zsh completions (bash's
//! completes an option); and `--uninstall` leaves the root exactly as it
//! was, also after a second install over the first.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pagelog_tests::{run, Scratch};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the install script with `args` into the staging `root`.
fn install(root: &Path, args: &[&str]) {
    let out = run(Command::new("bash")
        .arg(repo().join("scripts/install.sh"))
        .arg("--destdir")
        .arg(root)
        .args(args));
    assert!(out.status.success(), "install.sh {args:?}: {}", text(&out));
}

/// The pagelog-* programs of every workspace package that is published
/// (the test package's tools are not installed), from `cargo metadata`.
fn expected_programs() -> BTreeSet<String> {
    let out = run(Command::new(env!("CARGO")).current_dir(repo()).args([
        "metadata",
        "--no-deps",
        "--format-version",
        "1",
    ]));
    assert!(out.status.success(), "cargo metadata: {}", text(&out));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let mut names = BTreeSet::new();
    for pkg in meta["packages"].as_array().expect("packages") {
        if pkg["publish"].as_array().is_some_and(Vec::is_empty) {
            continue;
        }
        for t in pkg["targets"].as_array().expect("targets") {
            let is_bin = t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"));
            let name = t["name"].as_str().unwrap_or_default();
            if is_bin && name.starts_with("pagelog-") {
                names.insert(name.to_string());
            }
        }
    }
    assert!(names.contains("pagelog-mkfs") && names.contains("pagelog-mount"));
    names
}

/// Every path under `root` with what it is: a directory, a link and its
/// target, or a file and its bytes.
fn tree(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).expect("read_dir") {
            let p = entry.expect("entry").path();
            let md = fs::symlink_metadata(&p).expect("lstat");
            let what = if md.is_symlink() {
                format!("link {}", fs::read_link(&p).expect("readlink").display())
            } else if md.is_dir() {
                todo.push(p.clone());
                "dir".to_string()
            } else {
                let bytes = fs::read(&p).expect("read");
                let mut h = DefaultHasher::new();
                bytes.hash(&mut h);
                format!("file of {} bytes, hash {:x}", bytes.len(), h.finish())
            };
            out.insert(p.strip_prefix(root).expect("inside").to_path_buf(), what);
        }
    }
    out
}

/// Things already in the root that the install must leave alone.
fn bystanders(root: &Path) {
    for (path, content) in [
        ("usr/local/sbin/other-tool", "#!/bin/sh\n"),
        ("usr/local/share/man/man8/other.8", ".TH OTHER 8\n"),
        ("sbin/mkfs.ext4", "not ours\n"),
    ] {
        let p = root.join(path);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, content).expect("write");
    }
}

fn assert_stripped(bin: &Path) {
    let out = run(Command::new("readelf").arg("-S").arg("--wide").arg(bin));
    let sections = text(&out);
    assert!(out.status.success(), "readelf: {sections}");
    for s in [".symtab", ".debug_info", ".debug_line"] {
        assert!(!sections.contains(s), "{} keeps {s}", bin.display());
    }
}

/// `man -l` renders the page with NAME and `option` in it.
fn assert_man_renders(page: &Path, name_line: &str, option: &str) {
    let out = run(Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat"));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "man -l {}: {}",
        page.display(),
        text(&out)
    );
    assert!(
        shown.contains("NAME") && shown.contains(name_line) && shown.contains(option),
        "{} renders as: {shown}",
        page.display()
    );
}

/// The helper links resolve into the installed programs, and mkfs and
/// fsck work through them.
fn check_links(root: &Path, scratch: &Scratch) {
    let sbin = root.join("usr/local/sbin");
    for (link, prog) in [
        ("mkfs.pagelog", "pagelog-mkfs"),
        ("fsck.pagelog", "pagelog-fsck"),
        ("mount.pagelog", "pagelog-mount"),
    ] {
        let l = root.join("sbin").join(link);
        let target = fs::read_link(&l).expect("a link");
        assert!(target.is_relative(), "{link} -> {}", target.display());
        assert_eq!(
            l.canonicalize().expect("resolves"),
            sbin.join(prog).canonicalize().expect("program")
        );
    }
    let img = scratch.path("via-link.img");
    let out = run(Command::new(root.join("sbin/mkfs.pagelog"))
        .arg(&img)
        .arg("64M"));
    assert!(out.status.success(), "mkfs.pagelog: {}", text(&out));
    assert!(text(&out).contains("pagelog filesystem of 64 MiB"));
    let out = run(Command::new(root.join("sbin/fsck.pagelog"))
        .arg("-n")
        .arg(&img));
    assert!(out.status.success(), "fsck.pagelog: {}", text(&out));
}

/// bash completes an option of the installed program from its --help; the
/// zsh function uses _gnu_generic for the program and its link.
fn check_completions(root: &Path) {
    let comp = root.join("usr/local/share/bash-completion/completions/pagelog-mkfs");
    let script = r#"source /usr/share/bash-completion/bash_completion
        complete -p pagelog-mkfs 2>/dev/null && echo "completed before the file"
        source "$1"
        complete -p mkfs.pagelog
        COMP_LINE="pagelog-mkfs --seg"; COMP_POINT=${#COMP_LINE}
        COMP_WORDS=(pagelog-mkfs --seg); COMP_CWORD=1
        _longopt pagelog-mkfs --seg pagelog-mkfs
        printf 'reply %s\n' "${COMPREPLY[@]}""#;
    let path = format!(
        "{}:{}",
        root.join("usr/local/sbin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run(Command::new("bash")
        .env("PATH", path)
        .args(["-c", script, "bash"])
        .arg(&comp));
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("completed before"), "{said}");
    assert!(said.contains("complete -F _longopt mkfs.pagelog"), "{said}");
    assert!(said.contains("reply --segment-size"), "{said}");
    assert!(root
        .join("usr/local/share/bash-completion/completions/mkfs.pagelog")
        .exists());
    let zsh = fs::read_to_string(root.join("usr/local/share/zsh/site-functions/_pagelog-mkfs"))
        .expect("zsh completion");
    assert!(
        zsh.starts_with("#compdef pagelog-mkfs mkfs.pagelog\n"),
        "{zsh}"
    );
    assert!(zsh.contains("_gnu_generic"), "{zsh}");
}

#[test]
fn install_and_uninstall_into_a_staging_root() {
    let s = Scratch::new();
    let root = s.path("root");
    bystanders(&root);
    let before = tree(&root);
    install(&root, &[]);

    let sbin = root.join("usr/local/sbin");
    let man8 = root.join("usr/local/share/man/man8");
    let installed: BTreeSet<String> = fs::read_dir(&sbin)
        .expect("sbin")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pagelog-"))
        .collect();
    assert_eq!(installed, expected_programs());
    for prog in &installed {
        assert_stripped(&sbin.join(prog));
        assert_man_renders(&man8.join(format!("{prog}.8")), prog, "--help");
        assert!(root
            .join("usr/local/share/bash-completion/completions")
            .join(prog)
            .exists());
    }
    assert_man_renders(
        &man8.join("mkfs.pagelog.8"),
        "pagelog-mkfs - make a pagelog filesystem",
        "--segment-size",
    );
    check_links(&root, &s);
    check_completions(&root);

    // A second install replaces the first; one uninstall removes it all.
    install(&root, &[]);
    install(&root, &["--uninstall"]);
    assert_eq!(
        tree(&root),
        before,
        "uninstall must leave the root as it was"
    );
}
