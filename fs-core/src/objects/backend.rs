//! What a segment store needs of an object store: whole objects put, got,
//! deleted and listed by key. Every implementation is strongly consistent
//! (a get after a put that returned sees it; a list sees every put that
//! returned): S3 has been since December 2020, Garage is (quorum reads and
//! writes), a local directory is.

use std::fmt::Debug;
use std::io;

/// An object store holding one filesystem's objects under its own keys.
pub trait ObjectBackend: Send + Sync + Debug {
    /// Stores `data` as `key`, whole, replacing any object of that name.
    /// When it returns, the object is durable (the store acknowledged it).
    fn put(&self, key: &str, data: &[u8]) -> io::Result<()>;
    /// The object `key`, or `None` if there is none.
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>>;
    /// Removes `key`; removing a missing object is not an error.
    fn delete(&self, key: &str) -> io::Result<()>;
    /// The keys that start with `prefix`, in byte order.
    fn list(&self, prefix: &str) -> io::Result<Vec<String>>;
    /// Where the objects are, for messages (`s3://bucket/prefix`).
    fn describe(&self) -> String;
    /// Why this writer may write no more, if another took the store over
    /// (`lease.rs`); a store reached without a lease never is.
    fn fenced(&self) -> Option<String> {
        None
    }
    /// The longest one request may take, retries across endpoints
    /// included: what a writer's lease must outlast (`lease.rs`).
    fn longest_request(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}
