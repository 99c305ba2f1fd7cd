//! Objects as files in a local directory: the segment store's tests run on
//! it, and an administrator can keep a filesystem's segments on another
//! mount (an NFS share, a second disk) with it.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::backend::ObjectBackend;

/// A directory holding one file per object (keys with `/` become
/// subdirectories).
#[derive(Debug)]
pub struct DirBackend {
    root: PathBuf,
}

impl DirBackend {
    /// Objects under `root`, created if missing.
    pub fn new(root: &Path) -> io::Result<DirBackend> {
        fs::create_dir_all(root)?;
        Ok(DirBackend {
            root: root.to_path_buf(),
        })
    }

    fn path(&self, key: &str) -> io::Result<PathBuf> {
        // Keys are made by the segment store; a key that could leave the
        // directory is a bug, refused rather than followed.
        if key.is_empty()
            || key
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("object key {key:?} is not a relative path"),
            ));
        }
        Ok(self.root.join(key))
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

impl ObjectBackend for DirBackend {
    fn put(&self, key: &str, data: &[u8]) -> io::Result<()> {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir)?;
        // Written aside and renamed over: a reader sees the old object or
        // the new one, whole, as an object store shows them.
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
        tmp.write_all(data)?;
        tmp.as_file().sync_data()?;
        tmp.persist(&path).map_err(|e| e.error)?;
        sync_dir(&dir)
    }

    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.path(key)?) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(path.parent().unwrap_or(&self.root)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let mut keys = Vec::new();
        walk(&self.root, "", &mut keys)?;
        keys.retain(|k| k.starts_with(prefix));
        keys.sort();
        Ok(keys)
    }

    fn describe(&self) -> String {
        format!("dir:{}", self.root.display())
    }
}

/// Every file under `dir`, as keys relative to the root (`rel`); the
/// temporary files of puts in progress are skipped.
fn walk(dir: &Path, rel: &str, keys: &mut Vec<String>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp") {
            continue;
        }
        let key = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if entry.file_type()?.is_dir() {
            walk(&entry.path(), &key, keys)?;
        } else {
            keys.push(key);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list_delete() {
        let dir = tempfile::tempdir().expect("tmp");
        let b = DirBackend::new(dir.path()).expect("new");
        assert_eq!(b.get("seg/1").expect("get"), None);
        b.put("seg/1", b"one").expect("put");
        b.put("seg/2", b"two").expect("put");
        b.put("seg/1", b"uno").expect("replace");
        b.put("super/0", b"s").expect("put");
        assert_eq!(b.get("seg/1").expect("get").as_deref(), Some(&b"uno"[..]));
        assert_eq!(b.list("seg/").expect("list"), vec!["seg/1", "seg/2"]);
        b.delete("seg/1").expect("delete");
        b.delete("seg/1").expect("delete again");
        assert_eq!(b.list("").expect("list"), vec!["seg/2", "super/0"]);
        assert!(b.put("../x", b"").is_err());
        assert!(b.put("a//b", b"").is_err());
    }
}
