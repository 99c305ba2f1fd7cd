//! Helpers for the end-to-end tests: make an image with the real
//! `pagelog-mkfs`, mount it with the real `pagelog-mount`, run commands as
//! another user.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Path of a workspace binary (built next to the test executable).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        p.display()
    );
    p
}

/// Runs `cmd` and returns its output, panicking if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// A loop device over a file, detached when dropped.
#[derive(Debug)]
pub struct LoopDevice(pub String);

impl LoopDevice {
    /// Attaches `backing` to a free loop device.
    pub fn attach(backing: &Path) -> LoopDevice {
        let out = run(Command::new("losetup")
            .arg("--find")
            .arg("--show")
            .arg(backing));
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        LoopDevice(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).output();
    }
}

/// Unmounts `dir` with umount(8) and asserts success. "target is busy" is
/// retried for a few seconds: a file this test just closed can still be
/// referenced by a child another test forked in that instant (it holds the
/// descriptor until its exec closes it), which is not the filesystem's doing.
pub fn umount(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = run(Command::new("umount").arg(dir));
        if out.status.success() {
            return;
        }
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            err.contains("busy") && Instant::now() < deadline,
            "umount {} failed: {err}",
            dir.display()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts that `pagelog-fsck -n` finds `image` clean.
pub fn assert_checks_clean(image: &Path) {
    let out = run(Command::new(bin("pagelog-fsck")).arg("-n").arg(image));
    assert!(
        out.status.success(),
        "fsck -n {}: {}{}",
        image.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a shell command line as root and asserts success.
pub fn sh(script: &str) -> String {
    let out = run(Command::new("sh").arg("-c").arg(script));
    assert!(
        out.status.success(),
        "`{script}` failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `setpriv` command that runs what follows as `uid`:`gid` with exactly
/// the supplementary `groups`.
fn as_user(uid: u32, gid: u32, groups: &[u32]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"));
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        let g: Vec<String> = groups.iter().map(u32::to_string).collect();
        cmd.arg(format!("--groups={}", g.join(",")));
    }
    cmd.arg("--");
    cmd
}

/// Runs a shell command line as `uid`:`gid` (no supplementary groups
/// unless given) and returns its output.
pub fn sh_as(uid: u32, gid: u32, groups: &[u32], script: &str) -> Output {
    run(as_user(uid, gid, groups).arg("sh").arg("-c").arg(script))
}

/// Is `path` a mount point right now?
pub fn is_mounted(path: &Path) -> bool {
    let Ok(canon) = path.canonicalize() else {
        return false;
    };
    let want = canon.to_string_lossy().replace(' ', "\\040");
    fs::read_to_string("/proc/self/mountinfo")
        .map(|info| {
            info.lines()
                .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
        })
        .unwrap_or(false)
}

/// A scratch directory holding an image and a mount point.
#[derive(Debug)]
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A new scratch directory.
    pub fn new() -> Scratch {
        let base = std::env::var_os("PAGELOG_TEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("pagelog-test-")
            .tempdir_in(base)
            .expect("tempdir");
        // Other users must reach the mount point inside.
        sh(&format!("chmod 755 '{}'", dir.path().display()));
        Scratch { dir }
    }

    /// A path inside.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Makes an image of `size` (like "256M") with extra mkfs arguments.
    pub fn mkfs(&self, name: &str, size: &str, extra: &[&str]) -> PathBuf {
        let img = self.path(name);
        let out = run(Command::new(bin("pagelog-mkfs"))
            .arg(&img)
            .arg("--size")
            .arg(size)
            .arg("-q")
            .args(extra));
        assert!(
            out.status.success(),
            "mkfs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        img
    }

    /// Makes an image and mounts it at `<scratch>/mnt` with `opts`.
    pub fn mounted(&self, size: &str, opts: &str) -> Mount {
        self.mounted_with(size, &[], opts)
    }

    /// [`Scratch::mounted`] with extra mkfs arguments.
    pub fn mounted_with(&self, size: &str, mkfs_args: &[&str], opts: &str) -> Mount {
        let img = self.mkfs("fs.img", size, mkfs_args);
        let mnt = self.path("mnt");
        fs::create_dir_all(&mnt).expect("mkdir mnt");
        Mount::start(&img, &mnt, opts).expect("mount")
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

/// A running `pagelog-mount -f`.
#[derive(Debug)]
pub struct Mount {
    child: Option<Child>,
    /// The mount point.
    pub dir: PathBuf,
    /// The image.
    pub image: PathBuf,
}

impl Mount {
    /// Mounts `image` on `dir` in the foreground and waits until it is ready.
    pub fn start(image: &Path, dir: &Path, opts: &str) -> io::Result<Mount> {
        Mount::start_env(image, dir, opts, &[])
    }

    /// [`Mount::start`] with variables set in the daemon's environment.
    pub fn start_env(
        image: &Path,
        dir: &Path,
        opts: &str,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> io::Result<Mount> {
        let mut cmd = Command::new(bin("pagelog-mount"));
        cmd.envs(env.iter().copied());
        cmd.arg(image)
            .arg(dir)
            .arg("-f")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !opts.is_empty() {
            cmd.arg("-o").arg(opts);
        }
        let mut child = cmd.spawn()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_mounted(dir) {
            if let Some(status) = child.try_wait()? {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                return Err(io::Error::other(format!(
                    "pagelog-mount exited with {status}: {err}"
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(io::Error::other("mount did not become ready in 20 s"));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(Mount {
            child: Some(child),
            dir: dir.to_path_buf(),
            image: image.to_path_buf(),
        })
    }

    /// A path inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Unmounts with umount(8) and waits for the daemon to write back and
    /// exit; returns its exit status.
    pub fn unmount(mut self) -> ExitStatus {
        umount(&self.dir);
        self.wait()
    }

    /// Waits for the daemon to exit (after an unmount by other means).
    pub fn wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = child.try_wait().expect("wait") {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit within 60 s of unmount"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the daemon with SIGKILL (a crash, as far as the image
    /// knows), waits for it, and detaches the dead mount.
    pub fn kill9(&mut self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill");
        let _ = self.wait();
        let _ = Command::new("umount").arg("-l").arg(&self.dir).output();
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Unmounts and mounts the same image again with `opts`.
    pub fn remount(self, opts: &str) -> Mount {
        let (image, dir) = (self.image.clone(), self.dir.clone());
        let status = self.unmount();
        assert!(status.success(), "daemon exit status {status}");
        Mount::start(&image, &dir, opts).expect("remount")
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).output();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The errno of a failed `nix` call, or 0 on success.
pub fn errno_of<T>(r: nix::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e as i32,
    }
}

/// The errno of a failed `std::io` call, or 0 on success.
pub fn io_errno<T>(r: io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

/// Runs the `fsop` helper as root and returns its one-line answer.
pub fn op(args: &[&str]) -> String {
    let out = run(Command::new(bin("fsop")).args(args));
    assert!(
        out.status.success(),
        "fsop {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim_end_matches('\n')
        .to_string()
}

/// Runs the `fsop` helper as `uid`:`gid` with supplementary `groups`.
pub fn op_as(uid: u32, gid: u32, groups: &[u32], args: &[&str]) -> String {
    let out = run(as_user(uid, gid, groups).arg(bin("fsop")).args(args));
    assert!(
        out.status.success(),
        "fsop {args:?} as {uid}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim_end_matches('\n')
        .to_string()
}

/// The `key: value` lines of a mount's `pagelog.stats` attribute.
pub fn parse_stats(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A tmpfs mounted for a test (a small host filesystem to fill up under
/// an image), unmounted when dropped.
#[derive(Debug)]
pub struct Tmpfs {
    /// Where it is mounted.
    pub dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (like "24m") on `dir`, creating `dir`.
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).expect("mkdir");
        sh(&format!(
            "mount -t tmpfs -o size={size} pagelog-test '{}'",
            dir.display()
        ));
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    /// Gives it `size` in all (the host disk has room again).
    pub fn resize(&self, size: &str) {
        sh(&format!(
            "mount -o remount,size={size} '{}'",
            self.dir.display()
        ));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).output();
    }
}
