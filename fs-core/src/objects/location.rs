//! Where a volume's objects are (`s3://BUCKET/PREFIX`, `dir:/PATH`), and
//! the settings that reach them: from a config file and the environment,
//! never from the command line (a secret in argv is visible to every user
//! through /proc).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::backend::ObjectBackend;
use super::device::{ObjectDevice, StoreOptions};
use super::dir::DirBackend;
use super::s3::S3Backend;

/// The config file read when none is named.
pub const DEFAULT_CONFIG: &str = "/etc/pagelog/store.toml";
/// Where caches go when the config names no directory.
pub const DEFAULT_CACHE_ROOT: &str = "/var/cache/pagelog";

/// A volume's objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// Files under a local directory.
    Dir(PathBuf),
    /// A bucket, and a prefix in it (may be empty).
    S3 {
        /// The bucket.
        bucket: String,
        /// Keys start with this (no leading or trailing `/`).
        prefix: String,
    },
}

impl Location {
    /// The location `arg` names, or `None` when it is not a store's (an
    /// image file or a block device).
    pub fn parse(arg: &str) -> Option<Result<Location, String>> {
        if let Some(rest) = arg.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Some(Err(format!("{arg}: no bucket (s3://BUCKET/PREFIX)")));
            }
            return Some(Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            }));
        }
        let path = arg.strip_prefix("dir:")?;
        if path.is_empty() {
            return Some(Err(format!("{arg}: no directory (dir:/PATH)")));
        }
        Some(Ok(Location::Dir(PathBuf::from(path))))
    }

    /// The cache directory of this location under `root` (the settings'
    /// `cache_dir`, or [`DEFAULT_CACHE_ROOT`]): a readable name, and a hash
    /// of the whole location, so that two locations never share one.
    pub fn cache_dir_under(&self, root: &Path) -> PathBuf {
        let full = self.to_string();
        let readable: String = full
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let hash = xxhash_rust::xxh3::xxh3_64(full.as_bytes());
        root.join(format!("{readable}-{:08x}", hash >> 32))
    }

    /// A client for the objects.
    pub fn backend(&self, settings: &StoreSettings) -> io::Result<Box<dyn ObjectBackend>> {
        match self {
            Location::Dir(p) => Ok(Box::new(DirBackend::new(p)?)),
            Location::S3 { bucket, prefix } => {
                let config = settings
                    .s3()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                Ok(Box::new(S3Backend::new(&config, bucket, prefix)?))
            }
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(p) => write!(f, "dir:{}", p.display()),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// How to reach an S3 endpoint.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// `http://host:port` or `https://host`.
    pub endpoint: String,
    /// Other nodes of the same store, tried in turn when the one in use
    /// does not answer (a cluster without a load balancer in front).
    pub fallback_endpoints: Vec<String>,
    /// The region requests are signed for (Garage's is its `s3_region`).
    pub region: String,
    /// Credentials.
    pub access_key_id: String,
    /// Credentials.
    pub secret_access_key: String,
    /// Bucket in the path (`host/bucket/key`), as Garage, Ceph and MinIO
    /// serve it, rather than in the host name.
    pub path_style: bool,
    /// One request's time limit.
    pub request_timeout: Duration,
}

/// The config file's fields (all optional; the environment overrides).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    endpoint: Option<String>,
    fallback_endpoints: Option<Vec<String>>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    path_style: Option<bool>,
    cache_dir: Option<PathBuf>,
    cache_size: Option<String>,
    timeout_secs: Option<u64>,
}

/// Settings for opening stores: the config file's, then the environment's.
#[derive(Debug, Default)]
pub struct StoreSettings {
    file: ConfigFile,
    /// Where the settings came from, for messages.
    source: String,
}

/// Reads an environment variable, empty as unset.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl StoreSettings {
    /// Reads `file`, else `$PAGELOG_STORE_CONFIG`, else
    /// [`DEFAULT_CONFIG`] if it exists; then applies the environment
    /// (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `PAGELOG_CACHE_DIR`, `PAGELOG_CACHE_SIZE`).
    pub fn load(file: Option<&Path>) -> Result<StoreSettings, String> {
        let named = file
            .map(Path::to_path_buf)
            .or_else(|| env("PAGELOG_STORE_CONFIG").map(PathBuf::from));
        let path = named.clone().or_else(|| {
            let d = PathBuf::from(DEFAULT_CONFIG);
            d.exists().then_some(d)
        });
        let mut settings = StoreSettings::default();
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("store config {}: {e}", path.display()))?;
            settings.file = toml::from_str(&text)
                .map_err(|e| format!("store config {}: {e}", path.display()))?;
            settings.source = path.display().to_string();
            warn_if_readable_by_others(&path, &settings.file);
        }
        let f = &mut settings.file;
        let overrides = [
            (
                &mut f.endpoint,
                env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL")),
            ),
            (
                &mut f.region,
                env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")),
            ),
            (&mut f.access_key_id, env("AWS_ACCESS_KEY_ID")),
            (&mut f.secret_access_key, env("AWS_SECRET_ACCESS_KEY")),
            (&mut f.cache_size, env("PAGELOG_CACHE_SIZE")),
        ];
        for (field, value) in overrides {
            if value.is_some() {
                *field = value;
            }
        }
        if let Some(d) = env("PAGELOG_CACHE_DIR") {
            f.cache_dir = Some(PathBuf::from(d));
        }
        Ok(settings)
    }

    fn where_(&self) -> String {
        if self.source.is_empty() {
            format!("{DEFAULT_CONFIG} or the environment")
        } else {
            format!("{} or the environment", self.source)
        }
    }

    /// The S3 endpoint's settings; an error names what is missing and
    /// where to give it.
    pub fn s3(&self) -> Result<S3Config, String> {
        let f = &self.file;
        let need = |v: &Option<String>, key: &str, var: &str| {
            v.clone().ok_or_else(|| {
                format!(
                    "the S3 store needs `{key}`: set it in {} ({var})",
                    self.where_()
                )
            })
        };
        Ok(S3Config {
            endpoint: need(&f.endpoint, "endpoint", "AWS_ENDPOINT_URL")?,
            fallback_endpoints: f.fallback_endpoints.clone().unwrap_or_default(),
            region: f.region.clone().unwrap_or_else(|| "us-east-1".into()),
            access_key_id: need(&f.access_key_id, "access_key_id", "AWS_ACCESS_KEY_ID")?,
            secret_access_key: need(
                &f.secret_access_key,
                "secret_access_key",
                "AWS_SECRET_ACCESS_KEY",
            )?,
            path_style: f.path_style.unwrap_or(true),
            // One request never outlasts what a flush or a read waits.
            request_timeout: Duration::from_secs(f.timeout_secs.unwrap_or(60).clamp(1, 30)),
        })
    }

    /// How the device runs: the cache's size and the store's timeout.
    pub fn options(&self, read_only: bool) -> Result<StoreOptions, String> {
        let mut o = StoreOptions {
            read_only,
            ..StoreOptions::default()
        };
        if let Some(s) = &self.file.cache_size {
            o.cache_bytes = crate::size::parse_size(s, 1)
                .ok_or_else(|| format!("cache_size {s:?}: not a size (like 4G)"))?;
        }
        if let Some(t) = self.file.timeout_secs {
            o.timeout = Duration::from_secs(t.max(1));
        }
        Ok(o)
    }

    /// The cache directory for `loc`.
    pub fn cache_dir(&self, loc: &Location) -> PathBuf {
        let root = self
            .file
            .cache_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_ROOT));
        loc.cache_dir_under(&root)
    }

    /// Opens the volume at `loc`.
    pub fn open(&self, loc: &Location, read_only: bool) -> crate::Result<ObjectDevice> {
        let opts = self.options(read_only).map_err(crate::Error::Store)?;
        ObjectDevice::open(loc.backend(self)?, &self.cache_dir(loc), opts)
    }
}

/// Secrets in a file others can read are not secret: says so (as ssh
/// does of keys), without refusing.
fn warn_if_readable_by_others(path: &Path, file: &ConfigFile) {
    use std::os::unix::fs::PermissionsExt;
    if file.secret_access_key.is_none() {
        return;
    }
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            log::warn!(
                "{} holds a secret key and can be read by others (chmod 600 it)",
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(Location::parse("/srv/a.img"), None);
        assert_eq!(
            Location::parse("s3://b/p/q/").and_then(Result::ok),
            Some(Location::S3 {
                bucket: "b".into(),
                prefix: "p/q".into()
            })
        );
        assert_eq!(
            Location::parse("s3://b").and_then(Result::ok),
            Some(Location::S3 {
                bucket: "b".into(),
                prefix: String::new()
            })
        );
        assert!(matches!(Location::parse("s3:///x"), Some(Err(_))));
        assert_eq!(
            Location::parse("dir:/x/y").and_then(Result::ok),
            Some(Location::Dir("/x/y".into()))
        );
        let loc = Location::parse("s3://b/p/q")
            .and_then(Result::ok)
            .expect("loc");
        let dir = loc.cache_dir_under(Path::new("/c"));
        assert!(
            dir.to_string_lossy().starts_with("/c/s3___b_p_q-"),
            "{}",
            dir.display()
        );
        let other = Location::parse("s3://b/p_q")
            .and_then(Result::ok)
            .expect("loc");
        assert_ne!(other.cache_dir_under(Path::new("/c")), dir);
    }

    #[test]
    fn a_config_file_is_read_and_checked() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("store.toml");
        std::fs::write(
            &p,
            "endpoint = \"http://127.0.0.1:3900\"\nregion = \"garage\"\n\
             access_key_id = \"GK1\"\nsecret_access_key = \"s\"\ncache_size = \"64M\"\n",
        )
        .expect("write");
        let s = StoreSettings::load(Some(&p)).expect("load");
        let c = s.s3().expect("s3");
        assert_eq!(c.region, "garage");
        assert!(c.path_style);
        assert_eq!(s.options(false).expect("opts").cache_bytes, 64 << 20);
        std::fs::write(&p, "endpoint = \"x\"\nbogus = 1\n").expect("write");
        let err = StoreSettings::load(Some(&p)).expect_err("unknown field");
        assert!(err.contains("bogus"), "{err}");
        std::fs::write(&p, "region = \"r\"\n").expect("write");
        let s = StoreSettings::load(Some(&p)).expect("load");
        if env("AWS_ENDPOINT_URL").is_none() && env("AWS_ENDPOINT_URL_S3").is_none() {
            let err = s.s3().expect_err("no endpoint");
            assert!(
                err.contains("endpoint") && err.contains("store.toml"),
                "{err}"
            );
        }
    }
}
