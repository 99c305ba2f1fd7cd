//! The names of a volume's objects, and its descriptor: the one object
//! written when the store is made, saying how pages map onto objects
//! (FORMAT.md, "Segments as objects").

use serde::{Deserialize, Serialize};

use crate::layout::Geometry;

/// The object holding a page or a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// A page outside the segment area (the superblock copies), alone.
    Fixed(u64),
    /// A segment, whole.
    Segment(u64),
}

impl Key {
    /// The object's name under the volume's prefix. Numbers are padded
    /// so that names sort as numbers do.
    pub fn name(self) -> String {
        match self {
            Key::Fixed(p) => format!("pages/{p:010}"),
            Key::Segment(s) => format!("segments/{s:010}"),
        }
    }

    /// The prefix of the pieces a segment being written is stored as
    /// (`open/N/FROM`: its pages from offset FROM, as of one flush), and
    /// the name of the piece that starts at page `from`.
    pub fn pieces(seg: u64) -> String {
        format!("open/{seg:010}/")
    }

    /// See [`Key::pieces`].
    pub fn piece(seg: u64, from: u64) -> String {
        format!("open/{seg:010}/{from:05}")
    }

    /// The key an object name is for, if it is one of ours (a piece is
    /// its segment's).
    pub fn parse(name: &str) -> Option<Key> {
        let (dir, rest) = name.split_once('/')?;
        match dir {
            "pages" => Some(Key::Fixed(rest.parse().ok()?)),
            "segments" => Some(Key::Segment(rest.parse().ok()?)),
            "open" => {
                let (n, from) = rest.split_once('/')?;
                from.parse::<u64>().ok()?;
                Some(Key::Segment(n.parse().ok()?))
            }
            _ => None,
        }
    }
}

/// What the `volume.json` object says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// Always [`Descriptor::FORMAT`].
    pub format: String,
    /// Version of this layout of objects.
    pub version: u32,
    /// Pages of the volume.
    pub device_pages: u64,
    /// Pages of a segment (as in the superblock).
    pub pages_per_segment: u32,
    /// Segments (as in the superblock).
    pub segment_count: u64,
    /// Page address of segment 0 (as in the superblock).
    pub first_segment_page: u64,
    /// A snapshot copy (`pagelog-snapshot send`) only: the manifest
    /// object naming the objects that hold its pages (version 3; read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<String>,
}

impl Descriptor {
    /// The descriptor's object name.
    pub const KEY: &'static str = "volume.json";
    /// The `format` value.
    pub const FORMAT: &'static str = "pagelog-segments";
    /// The layout version this build writes and reads (2: segments being
    /// written are stored as pieces, which version 1 would read as zeros).
    pub const VERSION: u32 = 2;
    /// The layout version of a snapshot copy: its objects are named by a
    /// manifest, which version 2 would not look for.
    pub const COPY_VERSION: u32 = 3;

    /// The descriptor of a volume of `device_pages` pages laid out as `geo`.
    pub fn new(device_pages: u64, geo: Geometry) -> Descriptor {
        Descriptor {
            format: Self::FORMAT.to_string(),
            version: Self::VERSION,
            device_pages,
            pages_per_segment: geo.pages_per_segment,
            segment_count: geo.segment_count,
            first_segment_page: geo.first_segment_page,
            copy: None,
        }
    }

    /// The descriptor of a snapshot copy of a volume like this one, whose
    /// objects the manifest `manifest` names.
    pub fn copy_of(&self, manifest: &str) -> Descriptor {
        Descriptor {
            version: Self::COPY_VERSION,
            copy: Some(manifest.to_string()),
            ..self.clone()
        }
    }

    /// The segment layout.
    pub fn geometry(&self) -> Geometry {
        Geometry {
            pages_per_segment: self.pages_per_segment,
            segment_count: self.segment_count,
            first_segment_page: self.first_segment_page,
        }
    }

    /// The object's bytes (pretty JSON: an administrator reads it).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Reads the object of the store `where_`, checking what the device
    /// relies on.
    pub fn decode(bytes: &[u8], where_: &str) -> crate::Result<Descriptor> {
        let bad = |why: String| crate::Error::NotPagelog(format!("{where_}/{}: {why}", Self::KEY));
        let d: Descriptor = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if d.format != Self::FORMAT {
            return Err(bad(format!(
                "format {:?}, not {:?}",
                d.format,
                Self::FORMAT
            )));
        }
        let known = match &d.copy {
            None => d.version == Self::VERSION,
            Some(m) => {
                if super::manifest::Manifest::generation(m).is_none() {
                    return Err(bad(format!("copy {m:?} is not a manifest's name")));
                }
                d.version == Self::COPY_VERSION
            }
        };
        if !known {
            return Err(crate::Error::Unsupported(format!(
                "{where_}: object layout version {}{} (this build reads {} and copies of {})",
                d.version,
                match d.copy {
                    Some(_) => " for a snapshot copy",
                    None => "",
                },
                Self::VERSION,
                Self::COPY_VERSION
            )));
        }
        let geo = crate::format::geometry(d.device_pages, d.pages_per_segment)
            .map_err(|e| bad(e.to_string()))?;
        if geo != d.geometry() {
            return Err(bad(format!(
                "segments {} from page {} do not match a volume of {} pages",
                d.segment_count, d.first_segment_page, d.device_pages
            )));
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_as_numbers() {
        for k in [
            Key::Fixed(0),
            Key::Fixed(1),
            Key::Segment(7),
            Key::Segment(123_456),
        ] {
            assert_eq!(Key::parse(&k.name()), Some(k));
        }
        assert!(Key::Segment(9).name() < Key::Segment(10).name());
        assert_eq!(Key::parse(&Key::piece(12, 34)), Some(Key::Segment(12)));
        assert!(Key::piece(12, 34).starts_with(&Key::pieces(12)));
        assert!(Key::piece(12, 9) < Key::piece(12, 10));
        assert_eq!(Key::parse("open/12"), None);
        assert_eq!(Key::parse("volume.json"), None);
        assert_eq!(Key::parse("segments/x"), None);
    }

    #[test]
    fn descriptor_round_trips_and_refuses_nonsense() {
        let geo = crate::format::geometry(65536, 512).expect("geometry");
        let d = Descriptor::new(65536, geo);
        assert_eq!(Descriptor::decode(&d.encode(), "dir:x").expect("decode"), d);
        let mut wrong = d.clone();
        wrong.segment_count += 1;
        assert!(Descriptor::decode(&wrong.encode(), "dir:x").is_err());
        assert!(Descriptor::decode(b"{}", "dir:x").is_err());
        assert!(Descriptor::decode(b"\xff", "dir:x").is_err());
        let copy = d.copy_of("manifests/0000000001.json");
        assert_eq!(
            Descriptor::decode(&copy.encode(), "dir:x").expect("copy"),
            copy
        );
        let mut unnamed = copy.clone();
        unnamed.copy = None;
        assert!(Descriptor::decode(&unnamed.encode(), "dir:x").is_err());
        let mut old = copy;
        old.version = Descriptor::VERSION;
        assert!(Descriptor::decode(&old.encode(), "dir:x").is_err());
    }
}
