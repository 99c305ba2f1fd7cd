//! Segments as objects: the segment store on an object store (a local
//! directory, or S3), with a local cache file in front. `DESIGN.md`,
//! "Segments as objects", says why a closed segment maps onto one object;
//! FORMAT.md, "Segments as objects", names the objects.

pub mod backend;
pub mod backing;
pub mod descriptor;
pub mod device;
pub mod dir;
pub mod lease;
pub mod location;
pub mod manifest;
pub mod s3;
pub mod send;

pub use backend::ObjectBackend;
pub use backing::Backing;
pub use descriptor::{Descriptor, Key};
pub use device::{ObjectDevice, StoreOptions, StoreStats};
pub use dir::DirBackend;
pub use location::{Location, S3Config, StoreSettings};
pub use manifest::Manifest;
pub use s3::S3Backend;
