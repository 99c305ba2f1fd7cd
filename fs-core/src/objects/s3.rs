//! Objects in an S3 bucket (AWS S3, Garage, Ceph's RADOS gateway, MinIO):
//! requests signed by `rusty-s3` (SigV4, as presigned URLs) and sent by
//! `ureq`, blocking, from the store's worker threads.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rusty_s3::actions::ListObjectsV2;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::backend::ObjectBackend;
use super::location::S3Config;

/// How long a signed request stays valid: it is sent at once.
const SIGNED_FOR: Duration = Duration::from_secs(300);

/// One bucket, under one prefix, reached through one endpoint or, when it
/// does not answer, the next of its fallbacks.
#[derive(Debug)]
pub struct S3Backend {
    /// The bucket as each endpoint serves it.
    buckets: Vec<Bucket>,
    /// The endpoint in use.
    current: AtomicUsize,
    credentials: Credentials,
    /// Prepended to every key; empty or ending in `/`.
    prefix: String,
    agent: ureq::Agent,
    /// One request's time limit, at one endpoint.
    request_timeout: Duration,
}

fn other(msg: String) -> io::Error {
    io::Error::other(msg)
}

impl S3Backend {
    /// The bucket `bucket` of the store `config` describes, keys under
    /// `prefix`.
    pub fn new(config: &S3Config, bucket: &str, prefix: &str) -> io::Result<S3Backend> {
        let style = if config.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let buckets = std::iter::once(&config.endpoint)
            .chain(&config.fallback_endpoints)
            .map(|endpoint| {
                let bad = |e: String| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("S3 bucket {bucket:?} at {endpoint:?}: {e}"),
                    )
                };
                let url = endpoint
                    .parse()
                    .map_err(|e: url::ParseError| bad(e.to_string()))?;
                Bucket::new(url, style, bucket.to_string(), config.region.clone())
                    .map_err(|e| bad(e.to_string()))
            })
            .collect::<io::Result<Vec<_>>>()?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.request_timeout))
            .http_status_as_error(false)
            .build()
            .new_agent();
        let prefix = prefix.trim_matches('/');
        Ok(S3Backend {
            buckets,
            current: AtomicUsize::new(0),
            credentials: Credentials::new(&config.access_key_id, &config.secret_access_key),
            request_timeout: config.request_timeout,
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            agent,
        })
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A failed request, as an error naming the object.
    fn failed(&self, what: &str, key: &str, status: u16, body: &str) -> io::Error {
        let kind = match status {
            403 => io::ErrorKind::PermissionDenied,
            404 => io::ErrorKind::NotFound,
            _ => io::ErrorKind::Other,
        };
        // S3 error bodies are XML with a <Code> and a <Message>: the code
        // is what an administrator looks up.
        let code = between(body, "<Code>", "</Code>").unwrap_or("");
        let message = between(body, "<Message>", "</Message>").unwrap_or("");
        io::Error::new(
            kind,
            format!(
                "{what} {}: HTTP {status} {code} {message}",
                self.location(key)
            )
            .trim_end()
            .to_string(),
        )
    }

    fn location(&self, key: &str) -> String {
        format!("s3://{}/{}", self.buckets[0].name(), self.full(key))
    }

    /// Sends a request to the endpoint in use, or, when it does not
    /// answer or answers with a server error (a node that cannot reach a
    /// quorum: another may), to each other one in turn; the first that
    /// answers otherwise is used from then on. With every endpoint
    /// failing, the last answer or error is returned.
    fn send(
        &self,
        what: &str,
        key: &str,
        sign: impl Fn(&Bucket) -> url::Url,
        body: Option<&[u8]>,
    ) -> io::Result<ureq::http::Response<ureq::Body>> {
        let n = self.buckets.len();
        let first = self.current.load(Ordering::Relaxed) % n;
        let mut last = None;
        let mut last_answer = None;
        for k in 0..n {
            let i = (first + k) % n;
            let url = sign(&self.buckets[i]);
            let sent = match (what, body) {
                ("put", Some(data)) => self.agent.put(url.as_str()).send(data),
                ("delete", _) => self.agent.delete(url.as_str()).call(),
                _ => self.agent.get(url.as_str()).call(),
            };
            match sent {
                Ok(resp) if resp.status().is_server_error() && k + 1 < n => {
                    last_answer = Some(resp);
                }
                Ok(resp) => {
                    if i != first && !resp.status().is_server_error() {
                        log::warn!(
                            "S3 endpoint {} does not answer; using {}",
                            self.buckets[first].base_url(),
                            self.buckets[i].base_url()
                        );
                        self.current.store(i, Ordering::Relaxed);
                    }
                    return Ok(resp);
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(resp) = last_answer {
            return Ok(resp);
        }
        let e = last.map_or_else(|| "no endpoint".to_string(), |e| e.to_string());
        Err(other(format!("{what} {}: {e}", self.location(key))))
    }
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let from = s.find(open)? + open.len();
    let to = s[from..].find(close)? + from;
    Some(&s[from..to])
}

fn body_text(resp: &mut ureq::http::Response<ureq::Body>) -> String {
    resp.body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .unwrap_or_default()
}

impl ObjectBackend for S3Backend {
    fn put(&self, key: &str, data: &[u8]) -> io::Result<()> {
        let full = self.full(key);
        let sign = |b: &Bucket| {
            b.put_object(Some(&self.credentials), &full)
                .sign(SIGNED_FOR)
        };
        let mut resp = self.send("put", key, sign, Some(data))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(self.failed("put", key, status, &body_text(&mut resp)));
        }
        Ok(())
    }

    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        let full = self.full(key);
        let sign = |b: &Bucket| {
            b.get_object(Some(&self.credentials), &full)
                .sign(SIGNED_FOR)
        };
        let mut resp = self.send("get", key, sign, None)?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            return Err(self.failed("get", key, status, &body_text(&mut resp)));
        }
        let data = resp
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(|e| other(format!("get {}: {e}", self.location(key))))?;
        Ok(Some(data))
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        let full = self.full(key);
        let sign = |b: &Bucket| {
            b.delete_object(Some(&self.credentials), &full)
                .sign(SIGNED_FOR)
        };
        let mut resp = self.send("delete", key, sign, None)?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) && status != 404 {
            return Err(self.failed("delete", key, status, &body_text(&mut resp)));
        }
        Ok(())
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        let full = self.full(prefix);
        loop {
            let sign = |b: &Bucket| {
                let mut action = ListObjectsV2::new(b, Some(&self.credentials));
                action.with_prefix(full.as_str());
                if let Some(t) = &token {
                    action.with_continuation_token(t.as_str());
                }
                action.sign(SIGNED_FOR)
            };
            let mut resp = self.send("list", prefix, sign, None)?;
            let status = resp.status().as_u16();
            let text = body_text(&mut resp);
            if !(200..300).contains(&status) {
                return Err(self.failed("list", prefix, status, &text));
            }
            let parsed = ListObjectsV2::parse_response(&text)
                .map_err(|e| other(format!("list {}: {e}", self.location(prefix))))?;
            keys.extend(
                parsed
                    .contents
                    .into_iter()
                    .filter_map(|c| c.key.strip_prefix(&self.prefix).map(str::to_string)),
            );
            match parsed.next_continuation_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn longest_request(&self) -> Duration {
        self.request_timeout * self.buckets.len() as u32
    }

    fn describe(&self) -> String {
        format!(
            "s3://{}/{}",
            self.buckets[0].name(),
            self.prefix.trim_end_matches('/')
        )
    }
}
