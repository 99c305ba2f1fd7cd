//! Recognising what a device already holds, so that mkfs does not destroy
//! a filesystem by accident.

/// Bytes from the start of the device that the checks look at.
pub const PROBE_BYTES: usize = 68 * 1024;

fn at(buf: &[u8], off: usize, magic: &[u8]) -> bool {
    buf.get(off..off + magic.len()) == Some(magic)
}

/// The name of the filesystem or container whose signature `buf` (the
/// first bytes of a device) carries, if any.
pub fn detect(buf: &[u8]) -> Option<&'static str> {
    let checks: &[(&str, usize, &[u8])] = &[
        ("pagelog", 0, b"PGLOG-SB"),
        ("pagelog", 4096, b"PGLOG-SB"),
        ("ext2/ext3/ext4", 1080, &[0x53, 0xEF]),
        ("xfs", 0, b"XFSB"),
        ("btrfs", 0x10040, b"_BHRfS_M"),
        ("f2fs", 1024, &[0x10, 0x20, 0xF5, 0xF2]),
        ("nilfs2", 1030, &[0x34, 0x34]),
        ("swap", 4086, b"SWAPSPACE2"),
        ("swap", 4086, b"SWAP-SPACE"),
        ("LUKS", 0, b"LUKS\xba\xbe"),
        ("squashfs", 0, b"hsqs"),
        ("ntfs", 3, b"NTFS    "),
        ("iso9660", 32769, b"CD001"),
        ("LVM2 physical volume", 536, b"LVM2 001"),
        ("GPT partition table", 512, b"EFI PART"),
        ("FAT", 54, b"FAT1"),
        ("FAT32", 82, b"FAT32"),
    ];
    for (name, off, magic) in checks {
        if at(buf, *off, magic) {
            return Some(name);
        }
    }
    if at(buf, 510, &[0x55, 0xAA]) {
        return Some("boot sector or partition table");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_and_ignores() {
        let mut buf = vec![0u8; PROBE_BYTES];
        assert_eq!(detect(&buf), None);
        buf[1080] = 0x53;
        buf[1081] = 0xEF;
        assert_eq!(detect(&buf), Some("ext2/ext3/ext4"));
        let mut buf = vec![0u8; PROBE_BYTES];
        buf[0x10040..0x10048].copy_from_slice(b"_BHRfS_M");
        assert_eq!(detect(&buf), Some("btrfs"));
        assert_eq!(detect(&buf[..100]), None, "short buffers are fine");
    }
}
