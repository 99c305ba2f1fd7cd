//! fsop: performs one system call and prints its result, so that tests can
//! run it as any user (under setpriv) and compare errno names, in the
//! manner of pjdfstest's helper.
//!
//! Usage: fsop OP ARGS...   prints `0` (or a value) on success, else the
//! errno name (`EACCES`, ...). Exit status is always 0 unless the usage is
//! wrong.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use nix::errno::Errno;
use nix::fcntl::{self, OFlag, RenameFlags, AT_FDCWD};
use nix::sys::stat::{self, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{self, Gid, Uid};

fn name(e: Errno) -> String {
    format!("{e:?}")
}

fn num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("not a number: {s}"))
}

fn oflags(s: &str) -> Result<OFlag, String> {
    let mut f = OFlag::empty();
    for part in s.split(',') {
        f |= match part {
            "O_RDONLY" => OFlag::O_RDONLY,
            "O_WRONLY" => OFlag::O_WRONLY,
            "O_RDWR" => OFlag::O_RDWR,
            "O_CREAT" => OFlag::O_CREAT,
            "O_EXCL" => OFlag::O_EXCL,
            "O_TRUNC" => OFlag::O_TRUNC,
            "O_APPEND" => OFlag::O_APPEND,
            "O_DIRECTORY" => OFlag::O_DIRECTORY,
            "O_NOFOLLOW" => OFlag::O_NOFOLLOW,
            other => return Err(format!("unknown flag {other}")),
        };
    }
    Ok(f)
}

fn time_arg(s: &str) -> Result<TimeSpec, String> {
    match s {
        "now" => Ok(TimeSpec::UTIME_NOW),
        "omit" => Ok(TimeSpec::UTIME_OMIT),
        _ => {
            let (sec, nsec) = s.split_once('.').unwrap_or((s, "0"));
            Ok(TimeSpec::new(num(sec)?, num(nsec)?))
        }
    }
}

fn xattr_call(op: &str, a: &[&str]) -> Result<String, String> {
    let path = CString::new(a.first().ok_or("path")?.as_bytes()).map_err(|_| "NUL in path")?;
    let attr = CString::new(a.get(1).ok_or("name")?.as_bytes()).map_err(|_| "NUL in name")?;
    // SAFETY: every pointer passed below points into a live CString or
    // buffer of the stated length for the duration of the call.
    let rc = unsafe {
        match op {
            "setxattr" => {
                let v = a.get(2).ok_or("value")?.as_bytes();
                let flags: i32 = match a.get(3).copied().unwrap_or("0") {
                    "create" => libc::XATTR_CREATE,
                    "replace" => libc::XATTR_REPLACE,
                    other => num(other)?,
                };
                libc::setxattr(
                    path.as_ptr(),
                    attr.as_ptr(),
                    v.as_ptr().cast(),
                    v.len(),
                    flags,
                ) as isize
            }
            "getxattr" => {
                let size: usize = num(a.get(2).copied().unwrap_or("65536"))?;
                let mut buf = vec![0u8; size];
                let n = libc::getxattr(path.as_ptr(), attr.as_ptr(), buf.as_mut_ptr().cast(), size);
                if n >= 0 {
                    return Ok(String::from_utf8_lossy(&buf[..n as usize]).into_owned());
                }
                n
            }
            "removexattr" => libc::removexattr(path.as_ptr(), attr.as_ptr()) as isize,
            _ => return Err(format!("unknown op {op}")),
        }
    };
    Ok(if rc < 0 {
        name(Errno::last())
    } else {
        "0".into()
    })
}

fn stat_field(path: &str, field: &str, follow: bool) -> Result<String, String> {
    let st = match if follow {
        stat::stat(path)
    } else {
        stat::lstat(path)
    } {
        Ok(st) => st,
        Err(e) => return Ok(name(e)),
    };
    Ok(match field {
        "mode" => format!("{:o}", st.st_mode & 0o7777),
        "type" => format!("{:o}", st.st_mode & libc::S_IFMT),
        "uid" => st.st_uid.to_string(),
        "gid" => st.st_gid.to_string(),
        "nlink" => st.st_nlink.to_string(),
        "size" => st.st_size.to_string(),
        "blocks" => st.st_blocks.to_string(),
        "ino" => st.st_ino.to_string(),
        "rdev" => st.st_rdev.to_string(),
        "atime" => format!("{}.{:09}", st.st_atime, st.st_atime_nsec),
        "mtime" => format!("{}.{:09}", st.st_mtime, st.st_mtime_nsec),
        "ctime" => format!("{}.{:09}", st.st_ctime, st.st_ctime_nsec),
        other => return Err(format!("unknown field {other}")),
    })
}

fn run(op: &str, a: &[&str]) -> Result<String, String> {
    let arg = |i: usize| {
        a.get(i)
            .copied()
            .ok_or_else(|| format!("{op}: missing argument {}", i + 1))
    };
    let res: nix::Result<()> = match op {
        "open" => {
            let mode = u32::from_str_radix(a.get(2).copied().unwrap_or("644"), 8)
                .map_err(|e| e.to_string())?;
            fcntl::open(arg(0)?, oflags(arg(1)?)?, Mode::from_bits_truncate(mode)).map(drop)
        }
        "openwrite" => {
            let data = arg(2)?.as_bytes().to_vec();
            fcntl::open(arg(0)?, oflags(arg(1)?)?, Mode::from_bits_truncate(0o644))
                .and_then(|fd| unistd::write(&fd, &data).map(drop))
        }
        "mkdir" => unistd::mkdir(
            arg(0)?,
            Mode::from_bits_truncate(u32::from_str_radix(arg(1)?, 8).map_err(|e| e.to_string())?),
        ),
        "rmdir" => Errno::result(unsafe_rmdir(arg(0)?)).map(drop),
        "unlink" => unistd::unlink(arg(0)?),
        "link" => unistd::linkat(
            AT_FDCWD,
            arg(0)?,
            AT_FDCWD,
            arg(1)?,
            unistd::LinkatFlags::empty(),
        ),
        "symlink" => unistd::symlinkat(arg(0)?, AT_FDCWD, arg(1)?),
        "rename" => fcntl::renameat(AT_FDCWD, arg(0)?, AT_FDCWD, arg(1)?),
        "rename_noreplace" => fcntl::renameat2(
            AT_FDCWD,
            arg(0)?,
            AT_FDCWD,
            arg(1)?,
            RenameFlags::RENAME_NOREPLACE,
        ),
        "rename_exchange" => fcntl::renameat2(
            AT_FDCWD,
            arg(0)?,
            AT_FDCWD,
            arg(1)?,
            RenameFlags::RENAME_EXCHANGE,
        ),
        "chmod" => stat::fchmodat(
            AT_FDCWD,
            arg(0)?,
            Mode::from_bits_truncate(u32::from_str_radix(arg(1)?, 8).map_err(|e| e.to_string())?),
            stat::FchmodatFlags::FollowSymlink,
        ),
        "chown" | "lchown" => {
            let uid: i64 = num(arg(1)?)?;
            let gid: i64 = num(arg(2)?)?;
            let u = (uid >= 0).then(|| Uid::from_raw(uid as u32));
            let g = (gid >= 0).then(|| Gid::from_raw(gid as u32));
            let flag = if op == "lchown" {
                fcntl::AtFlags::AT_SYMLINK_NOFOLLOW
            } else {
                fcntl::AtFlags::empty()
            };
            unistd::fchownat(AT_FDCWD, arg(0)?, u, g, flag)
        }
        "truncate" => unistd::truncate(arg(0)?, num(arg(1)?)?),
        "utimens" => stat::utimensat(
            AT_FDCWD,
            arg(0)?,
            &time_arg(arg(1)?)?,
            &time_arg(arg(2)?)?,
            UtimensatFlags::FollowSymlink,
        ),
        "mknod" => {
            let kind = match arg(1)? {
                "fifo" => SFlag::S_IFIFO,
                "sock" => SFlag::S_IFSOCK,
                "chr" => SFlag::S_IFCHR,
                "blk" => SFlag::S_IFBLK,
                "reg" => SFlag::S_IFREG,
                other => return Err(format!("unknown type {other}")),
            };
            let mode = Mode::from_bits_truncate(
                u32::from_str_radix(arg(2)?, 8).map_err(|e| e.to_string())?,
            );
            let dev = stat::makedev(
                num(a.get(3).copied().unwrap_or("0"))?,
                num(a.get(4).copied().unwrap_or("0"))?,
            );
            stat::mknod(arg(0)?, kind, mode, dev)
        }
        "setxattr" | "getxattr" | "removexattr" => return xattr_call(op, a),
        "stat" => return stat_field(arg(0)?, arg(1)?, true),
        "lstat" => return stat_field(arg(0)?, arg(1)?, false),
        "readlink" => {
            return Ok(match fcntl::readlink(arg(0)?) {
                Ok(t) => t.to_string_lossy().into_owned(),
                Err(e) => name(e),
            })
        }
        _ => return Err(format!("unknown op {op}")),
    };
    Ok(match res {
        Ok(()) => "0".into(),
        Err(e) => name(e),
    })
}

fn unsafe_rmdir(path: &str) -> i32 {
    let Ok(c) = CString::new(OsStr::new(path).as_bytes()) else {
        return -1;
    };
    // SAFETY: `c` is a valid NUL-terminated path for the call's duration.
    unsafe { libc::rmdir(c.as_ptr()) }
}

fn main() -> ExitCode {
    // Modes are given exactly, as pjdfstest does.
    stat::umask(Mode::empty());
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((op, rest)) = args.split_first() else {
        eprintln!("usage: fsop OP ARGS...");
        return ExitCode::from(2);
    };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match run(op, &rest) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fsop: {e}");
            ExitCode::from(2)
        }
    }
}
