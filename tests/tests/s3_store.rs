//! A filesystem on a real distributed S3 store: a three-node Garage
//! cluster on loopback, replication factor 3 (`scripts/garage.sh`, which
//! the test command builds once). Through FUSE with ordinary tools: it
//! survives the loss of the node it talks to, an unreachable store (a
//! failed fsync, nothing lost, writable again once the store is back) and
//! a SIGKILL of the daemon followed by a mount from another cache
//! directory (another machine) that sees every fsync'd byte; freed
//! segments' objects are deleted; fsck and pagelog-frag work on it.
//!
//! One test runs the scenarios in turn: they share the cluster, and
//! stopping nodes would disturb anything running beside them.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pagelog_tests::{bin, run, sh, Mount, Scratch};

fn garage_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/garage.sh")
}

/// The cluster, stopped when dropped.
struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let out = run(Command::new(garage_sh()).arg("start").arg(dir));
        assert!(
            out.status.success(),
            "garage.sh start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Cluster {
            dir: dir.to_path_buf(),
        }
    }

    fn node(&self, what: &str, n: u32) {
        let out = run(Command::new(garage_sh())
            .arg(what)
            .arg(&self.dir)
            .arg(n.to_string()));
        assert!(
            out.status.success(),
            "garage.sh {what} {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Waits until every node serves the bucket again.
    fn wait(&self) {
        let out = run(Command::new(garage_sh()).arg("wait").arg(&self.dir));
        assert!(
            out.status.success(),
            "garage.sh wait: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn config(&self) -> PathBuf {
        self.dir.join("store.toml")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(garage_sh())
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

/// What every command on the store is given: the cluster's settings and
/// a cache directory (one per "machine").
struct Machine {
    config: PathBuf,
    cache: PathBuf,
    cache_size: &'static str,
}

impl Machine {
    fn env(&self) -> Vec<(&'static str, &OsStr)> {
        vec![
            ("PAGELOG_STORE_CONFIG", self.config.as_os_str()),
            ("PAGELOG_CACHE_DIR", self.cache.as_os_str()),
            ("PAGELOG_CACHE_SIZE", OsStr::new(self.cache_size)),
        ]
    }

    fn tool(&self, name: &str, args: &[&str]) -> std::process::Output {
        run(Command::new(bin(name)).envs(self.env()).args(args))
    }

    fn mount(&self, url: &str, dir: &Path, opts: &str) -> Mount {
        std::fs::create_dir_all(dir).expect("mkdir");
        Mount::start_env(Path::new(url), dir, opts, &self.env()).expect("mount")
    }
}

fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sha256sum` of every file under `dir`, by relative path.
fn sums(dir: &Path) -> String {
    sh(&format!(
        "cd '{}' && find . -type f ! -name '.*' | LC_ALL=C sort | xargs -d '\\n' sha256sum",
        dir.display()
    ))
}

/// `sums` output without the lines of files whose names contain `name`.
fn without(sums: &str, name: &str) -> String {
    sums.lines()
        .filter(|l| !l.contains(name))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn stat(m: &Mount, key: &str) -> u64 {
    let text = sh(&format!(
        "getfattr --only-values -n pagelog.stats '{}'",
        m.dir.display()
    ));
    pagelog_tests::parse_stats(&text)
        .get(key)
        .and_then(|v| v.split('.').next()?.parse().ok())
        .unwrap_or_else(|| panic!("pagelog.stats has no {key}: {text}"))
}

#[test]
fn a_filesystem_on_a_three_node_garage_cluster() {
    let s = Scratch::new();
    let cluster = Cluster::start(&s.path("garage"));
    let url = format!("s3://pagelog/t{}", std::process::id());
    // A cache smaller than what is written: reads must come back from the
    // store.
    let a = Machine {
        config: cluster.config(),
        cache: s.path("cache-a"),
        cache_size: "24M",
    };
    ok(
        &a.tool("pagelog-mkfs", &["--store", &url, "--size", "2G", "-q"]),
        "mkfs",
    );
    let again = a.tool("pagelog-mkfs", &["--store", &url, "--size", "2G"]);
    assert!(!again.status.success(), "a second mkfs must be refused");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let mnt = s.path("mnt");
    // No protection window: what a delete frees is free at once (retained
    // checkpoints would hold it otherwise, and their segments' objects).
    let mut m = a.mount(&url, &mnt, "protect=0");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fs-core/src");
    sh(&format!(
        "cp -a '{}' '{}/src' && head -c 48M /dev/urandom > '{}/big' && sync '{}/big'",
        src.display(),
        mnt.display(),
        mnt.display(),
        mnt.display()
    ));
    let before = sums(&mnt);
    assert!(stat(&m, "store_uploaded_mib") >= 48);

    // The node the filesystem talks to stops: it goes on through another,
    // reading (the cache holds less than was written) and writing.
    cluster.node("stop-node", 1);
    sh(&format!(
        "head -c 16M /dev/urandom > '{0}/during' && sync '{0}/during'",
        mnt.display()
    ));
    let misses = stat(&m, "store_cache_misses");
    // The kernel's page cache would answer the reads otherwise.
    std::fs::write("/proc/sys/vm/drop_caches", "3").expect("drop caches");
    assert_eq!(without(&sums(&mnt), "during"), before);
    assert!(
        stat(&m, "store_cache_misses") > misses,
        "nothing was read from the store"
    );
    cluster.node("start-node", 1);
    cluster.wait();

    // Segments emptied by a delete lose their objects.
    sh(&format!(
        "head -c 24M /dev/urandom > '{0}/doomed' && sync '{0}/doomed' && rm '{0}/doomed' && sync '{0}' && sync '{0}'",
        mnt.display()
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while stat(&m, "store_deletes") == 0 {
        assert!(
            Instant::now() < deadline,
            "no object deleted after a delete"
        );
        sh(&format!("sync '{}'", mnt.display()));
        std::thread::sleep(Duration::from_millis(200));
    }

    // The daemon dies with fsync'd and unsynced data; another machine
    // mounts the store and has every fsync'd byte.
    sh(&format!(
        "head -c 5M /dev/urandom > '{0}/synced' && sync '{0}/synced' && head -c 5M /dev/urandom > '{0}/unsynced'",
        mnt.display()
    ));
    let synced = without(&sums(&mnt), "unsynced");
    m.kill9();
    drop(m);
    let b = Machine {
        config: cluster.config(),
        cache: s.path("cache-b"),
        cache_size: "1G",
    };
    let m = b.mount(&url, &mnt, "");
    assert_eq!(
        without(&sums(&mnt), "unsynced"),
        synced,
        "a fsync'd byte is missing on the second machine"
    );
    assert!(m.unmount().success());

    // The tools read the store as they read an image.
    for args in [
        &["-n", "--fast"][..],
        &["-n"][..],
        &["-n", "--verify-data"][..],
    ] {
        let mut all = args.to_vec();
        all.push(&url);
        let out = b.tool("pagelog-fsck", &all);
        assert_eq!(
            out.status.code(),
            Some(0),
            "fsck {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let frag = ok(&b.tool("pagelog-frag", &[&url]), "pagelog-frag");
    assert!(frag.contains("fragmentation factor"), "{frag}");

    // A snapshot goes to a second bucket while the filesystem is mounted,
    // and a third machine mounts the copy read-only; the next snapshot
    // sent there uploads what changed.
    let m = b.mount(&url, &mnt, "");
    let at_snapshot = sums(&mnt);
    let mnt_s = mnt.to_str().expect("utf-8");
    ok(
        &b.tool("pagelog-snapshot", &["create", mnt_s, "backup"]),
        "create",
    );
    sh(&format!(
        "echo after > '{mnt_s}/after' && sync '{mnt_s}/after'"
    ));
    let copy = format!("s3://pagelog-copy/t{}", std::process::id());
    let send = |name: &str| -> serde_json::Value {
        let out = b.tool(
            "pagelog-snapshot",
            &["send", &url, name, "--to", &copy, "--json"],
        );
        serde_json::from_str(&ok(&out, "send")).expect("json")
    };
    let first = send("backup");
    assert!(
        first["uploaded_bytes"].as_u64().expect("bytes") > 64 << 20,
        "{first}"
    );
    let e = Machine {
        config: cluster.config(),
        cache: s.path("cache-e"),
        cache_size: "1G",
    };
    let there = s.path("there");
    let cm = e.mount(&copy, &there, "ro");
    assert_eq!(sums(&there), at_snapshot, "the copy is the snapshot");
    assert!(cm.unmount().success());
    sh(&format!(
        "echo more > '{mnt_s}/more' && sync '{mnt_s}/more'"
    ));
    ok(
        &b.tool("pagelog-snapshot", &["create", mnt_s, "backup-2"]),
        "create",
    );
    let second = send("backup-2");
    assert!(second["kept"].as_u64().expect("kept") > 0, "{second}");
    assert!(
        second["uploaded_bytes"].as_u64().expect("bytes") * 8
            < first["uploaded_bytes"].as_u64().expect("bytes"),
        "{first} then {second}"
    );
    assert!(m.unmount().success());
    let cm = e.mount(&copy, &there, "ro");
    assert_eq!(
        std::fs::read_to_string(there.join("more")).expect("more"),
        "more\n"
    );
    assert!(cm.unmount().success());
    let out = e.tool("pagelog-fsck", &["-n", "--verify-data", &copy]);
    assert_eq!(out.status.code(), Some(0), "fsck of the copy: {out:?}");

    // The store stops answering. A read the cache cannot serve fails
    // (EIO, after the timeout) and works again once the store is back.
    let short = s.path("short.toml");
    std::fs::write(
        &short,
        std::fs::read_to_string(cluster.config()).expect("config") + "timeout_secs = 4\n",
    )
    .expect("write config");
    std::fs::set_permissions(&short, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let cold = Machine {
        config: short.clone(),
        cache: s.path("cache-cold"),
        cache_size: "1G",
    };
    let m = cold.mount(&url, &mnt, "");
    all_nodes(&cluster, "stop-node");
    let read = Command::new("cat")
        .arg(mnt.join("big"))
        .output()
        .expect("cat");
    failed_with_eio(&read, "a read from a store that is down succeeded");
    all_nodes(&cluster, "start-node");
    cluster.wait();
    assert_eq!(
        sh(&format!("sha256sum < '{}'", mnt.join("big").display())),
        sh(&format!(
            "echo '{}' | cut -c1-64 | sed 's/$/  -/'",
            before
                .lines()
                .find(|l| l.ends_with("./big"))
                .expect("big's sum")
        ))
    );
    assert!(m.unmount().success());

    // With what it needs in its cache, a mount goes on writing: an fsync
    // fails after the timeout, the filesystem stays writable, and once
    // the store is back an fsync stores everything; a mount elsewhere then
    // has it all.
    let url2 = format!("{url}-warm");
    let c = Machine {
        config: short,
        cache: s.path("cache-c"),
        cache_size: "1G",
    };
    ok(
        &c.tool("pagelog-mkfs", &["--store", &url2, "--size", "1G", "-q"]),
        "mkfs",
    );
    let log = s.path("outage.log");
    let m = c.mount(&url2, &mnt, &format!("log={}", log.display()));
    sh(&format!(
        "head -c 3M /dev/urandom > '{0}/before' && sync '{0}/before'",
        mnt.display()
    ));
    all_nodes(&cluster, "stop-node");
    sh(&format!(
        "head -c 3M /dev/urandom > '{}/outage'",
        mnt.display()
    ));
    let failed = Command::new("sync")
        .arg(mnt.join("outage"))
        .output()
        .expect("sync");
    failed_with_eio(&failed, "fsync with the store down succeeded");
    all_nodes(&cluster, "start-node");
    cluster.wait();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new("sync")
            .arg(mnt.join("outage"))
            .output()
            .expect("sync");
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fsync still fails a minute after the store came back: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let with_outage = sums(&mnt);
    assert!(m.unmount().success());
    let d = Machine {
        config: cluster.config(),
        cache: s.path("cache-d"),
        cache_size: "1G",
    };
    let m = d.mount(&url2, &mnt, "");
    assert_eq!(sums(&mnt), with_outage);
    assert!(m.unmount().success());
}

/// `out` is a command that failed with EIO (`what`: what succeeding means).
fn failed_with_eio(out: &std::process::Output, what: &str) {
    assert!(!out.status.success(), "{what}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Input/output error"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn all_nodes(cluster: &Cluster, what: &str) {
    for n in 1..=3 {
        cluster.node(what, n);
    }
}
