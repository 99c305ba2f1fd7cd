//! Which mount sits on a directory, from /proc/self/mountinfo (asking the
//! directory itself would wait for this very daemon once it is ours).

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// One line of /proc/self/mountinfo, the fields the daemon needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    /// The device number, `major:minor`: tells one mount from a later one
    /// on the same directory.
    pub dev: String,
    /// Where it is mounted (unescaped bytes).
    pub mount_point: Vec<u8>,
    /// Filesystem type, such as `fuse.pagelog`.
    pub fstype: String,
    /// Source (unescaped bytes), such as the image path.
    pub source: Vec<u8>,
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\134` for a
/// backslash, ...).
fn unescape(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')));
        match octal.and_then(|n| u8::try_from(n).ok()) {
            Some(c) => {
                out.push(c);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// Parses one line: `id parent major:minor root mount_point options
/// [optional fields...] - fstype source super_options`.
fn parse_line(line: &str) -> Option<MountEntry> {
    let mut fields = line.split(' ');
    let dev = fields.nth(2)?.to_string();
    let mount_point = unescape(fields.nth(1)?);
    let mut rest = fields.skip_while(|f| *f != "-").skip(1);
    let fstype = rest.next()?.to_string();
    let source = unescape(rest.next()?);
    Some(MountEntry {
        dev,
        mount_point,
        fstype,
        source,
    })
}

/// The topmost mount on `dir`, if `dir` is a mount point.
pub fn mount_at(dir: &Path) -> Option<MountEntry> {
    let want = dir.canonicalize().ok()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .rev()
        .filter_map(parse_line)
        .find(|e| e.mount_point == want.as_os_str().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_optional_fields_and_escapes() {
        let e = parse_line(
            "712 30 0:72 / /srv/my\\040web rw,nosuid,nodev,relatime shared:400 master:1 - \
             fuse.pagelog /srv/a\\134b.img rw,user_id=0,group_id=0,default_permissions",
        )
        .expect("parses");
        assert_eq!(e.dev, "0:72");
        assert_eq!(e.mount_point, b"/srv/my web");
        assert_eq!(e.fstype, "fuse.pagelog");
        assert_eq!(e.source, b"/srv/a\\b.img");
        let e = parse_line("36 35 98:0 / /mnt rw - ext4 /dev/vda rw").expect("parses");
        assert_eq!(
            (e.fstype.as_str(), &e.source[..]),
            ("ext4", &b"/dev/vda"[..])
        );
        assert_eq!(parse_line("36 35 98:0 / /mnt rw"), None);
        assert_eq!(unescape("a\\12b\\0400"), b"a\\12b 0");
    }
}
