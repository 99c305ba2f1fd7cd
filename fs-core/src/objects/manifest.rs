//! The manifest of a snapshot copy (`pagelog-snapshot send`): which object
//! holds each page or segment of the copy (FORMAT.md, "Snapshot copies").
//!
//! A copy's objects are named by their content (`segments/N-HASH`), so a
//! send never replaces an object the copy in place still reads: it puts
//! what the target lacks, then the manifest, then the descriptor naming
//! the manifest (one PUT: the switch), then deletes what no manifest
//! names any more. A send cut short anywhere leaves the copy before it.

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};

use super::backend::ObjectBackend;
use super::descriptor::Key;

/// What a copy's manifest object says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`Manifest::FORMAT`].
    pub format: String,
    /// The source filesystem's UUID (as `pagelog-info` shows it): a send
    /// refuses to replace the copy of another filesystem unless forced.
    pub source: String,
    /// The snapshot the copy is (its name, lossy UTF-8).
    pub snapshot: String,
    /// Its checkpoint number in the source.
    pub checkpoint: u64,
    /// When it was sent (ns since the epoch).
    pub sent_ns: i64,
    /// Bytes of the objects named.
    pub bytes: u64,
    /// For each page or segment of the copy (by its name in a volume,
    /// `pages/N`, `segments/N`), the object holding it. One not named
    /// reads as zeros: nothing in the copy refers to it.
    pub objects: BTreeMap<String, String>,
}

impl Manifest {
    /// The `format` value.
    pub const FORMAT: &'static str = "pagelog-snapshot-copy";
    /// Where manifests are kept.
    pub const PREFIX: &'static str = "manifests/";

    /// The object name of manifest number `generation`.
    pub fn key(generation: u64) -> String {
        format!("{}{generation:010}.json", Self::PREFIX)
    }

    /// The number of a manifest's object name.
    pub fn generation(name: &str) -> Option<u64> {
        name.strip_prefix(Self::PREFIX)?
            .strip_suffix(".json")?
            .parse()
            .ok()
    }

    /// The object holding `key`'s bytes whose digest is `hash`.
    pub fn object_name(key: Key, hash: u128) -> String {
        format!("{}-{hash:032x}", key.name())
    }

    /// Is `name` one of the objects a copy is made of (a manifest, or a page
    /// or segment named by content)?
    pub fn is_copy_object(name: &str) -> bool {
        if Self::generation(name).is_some() {
            return true;
        }
        name.rsplit_once('-').is_some_and(|(k, h)| {
            Key::parse(k).is_some_and(|key| key.name() == k)
                && h.len() == 32
                && h.bytes().all(|b| b.is_ascii_hexdigit())
        })
    }

    /// The object's bytes (pretty JSON).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Reads a manifest, checking that each object it names is one for
    /// the page or segment it maps.
    pub fn decode(bytes: &[u8], where_: &str) -> crate::Result<Manifest> {
        let bad = |why: String| crate::Error::NotPagelog(format!("{where_}: {why}"));
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if m.format != Self::FORMAT {
            return Err(bad(format!(
                "format {:?}, not {:?}",
                m.format,
                Self::FORMAT
            )));
        }
        for (key, object) in &m.objects {
            let ours = Key::parse(key).is_some_and(|k| k.name() == *key)
                && object.strip_prefix(key.as_str()).is_some_and(|h| {
                    h.len() == 33
                        && h.starts_with('-')
                        && h[1..].bytes().all(|b| b.is_ascii_hexdigit())
                });
            if !ours {
                return Err(bad(format!("{key} mapped to {object:?}")));
            }
        }
        Ok(m)
    }
}

/// The digest an object's name ends with.
fn digest_in(object: &str) -> Option<u128> {
    u128::from_str_radix(object.rsplit_once('-')?.1, 16).ok()
}

/// A copy's objects as the device reads them: a page or segment is the
/// object its manifest names, and nothing is written.
#[derive(Debug)]
pub struct Mapped {
    inner: Box<dyn ObjectBackend>,
    manifest: Manifest,
}

impl Mapped {
    /// Reads `inner` through `manifest`.
    pub fn new(inner: Box<dyn ObjectBackend>, manifest: Manifest) -> Mapped {
        Mapped { inner, manifest }
    }

    fn refuse(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is a snapshot copy: it is read-only", self.describe()),
        )
    }
}

impl ObjectBackend for Mapped {
    fn put(&self, _key: &str, _data: &[u8]) -> io::Result<()> {
        Err(self.refuse())
    }

    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        let Some(object) = self.manifest.objects.get(key) else {
            return Ok(None);
        };
        match self.inner.get(object)? {
            // The name holds the digest: damage is found, not read.
            Some(data) if Some(xxhash_rust::xxh3::xxh3_128(&data)) == digest_in(object) => {
                Ok(Some(data))
            }
            Some(_) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: {object} is damaged (its bytes do not have the digest its name says)",
                    self.inner.describe()
                ),
            )),
            // Never zeros for what the copy needs.
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{}: {object}, which the copy's manifest names, is missing",
                    self.inner.describe()
                ),
            )),
        }
    }

    fn delete(&self, _key: &str) -> io::Result<()> {
        Err(self.refuse())
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        Ok(self
            .manifest
            .objects
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(objects: &[(&str, &str)]) -> Manifest {
        Manifest {
            format: Manifest::FORMAT.into(),
            source: "00".into(),
            snapshot: "s".into(),
            checkpoint: 7,
            sent_ns: 1,
            bytes: 0,
            objects: objects
                .iter()
                .map(|(k, o)| (k.to_string(), o.to_string()))
                .collect(),
        }
    }

    #[test]
    fn round_trips_and_refuses_foreign_names() {
        let seg = Key::Segment(3);
        let name = Manifest::object_name(seg, 0xabc);
        let m = manifest(&[(&seg.name(), &name)]);
        assert_eq!(Manifest::decode(&m.encode(), "x").expect("decode"), m);
        let other = Manifest::object_name(Key::Segment(4), 0xabc);
        let wrong = manifest(&[(&seg.name(), &other)]);
        assert!(Manifest::decode(&wrong.encode(), "x").is_err());
        let outside = manifest(&[("volume.json", "volume.json")]);
        assert!(Manifest::decode(&outside.encode(), "x").is_err());
        assert_eq!(Manifest::generation(&Manifest::key(12)), Some(12));
        assert_eq!(Manifest::generation("manifests/x.json"), None);
    }

    proptest::proptest! {
        /// Whatever a store hands back as a manifest or a descriptor, it is
        /// read or refused, never a panic; a manifest read maps every page
        /// or segment to an object named for it.
        #[test]
        fn any_bytes_are_read_or_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = Manifest::decode(&bytes, "x");
            let _ = super::super::Descriptor::decode(&bytes, "x");
        }

        #[test]
        fn a_damaged_manifest_is_refused_or_still_consistent(at in 0usize..4096, byte in proptest::prelude::any::<u8>()) {
            let seg = Key::Segment(3);
            let fixed = Key::Fixed(0);
            let m = manifest(&[
                (&seg.name(), &Manifest::object_name(seg, 0xabc)),
                (&fixed.name(), &Manifest::object_name(fixed, 0xdef)),
            ]);
            let mut bytes = m.encode();
            let i = at % bytes.len();
            bytes[i] = byte;
            if let Ok(read) = Manifest::decode(&bytes, "x") {
                for (key, object) in &read.objects {
                    proptest::prop_assert!(Key::parse(key).is_some());
                    let prefix = format!("{key}-");
                    proptest::prop_assert!(object.starts_with(&prefix));
                    proptest::prop_assert!(Manifest::is_copy_object(object));
                }
            }
        }
    }
}
