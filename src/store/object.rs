//! Vaults on object storage: Amazon S3 and S3-compatible servers (MinIO, Ceph, ...) as `s3://BUCKET/PREFIX`, Azure
//! Blob Storage as `azure://CONTAINER/PREFIX`, through the `object_store` crate.
//!
//! Object names map 1:1 to keys: the object `data/ab/ab12…` of the vault `s3://b/srv/vault` is the key
//! `srv/vault/data/ab/ab12…` of bucket `b`. The bucket or container must exist; coffer never creates one.
//!
//! Credentials and endpoints come from the environment, read as `object_store`'s `from_env` builders read it: every
//! `AWS_*` (S3) or `AZURE_*` (Azure) variable whose lower-cased name is one of the builder's configuration keys.
//! The usual ones: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or
//! `AWS_DEFAULT_REGION`; default `us-east-1`), `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`; for S3-compatible servers),
//! `AWS_ALLOW_HTTP=true` (plain-HTTP endpoints), `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`; `AZURE_STORAGE_ACCOUNT_NAME`,
//! `AZURE_STORAGE_ACCOUNT_KEY` (or `AZURE_STORAGE_SAS_TOKEN`, `AZURE_STORAGE_CLIENT_ID`/`_SECRET`/`AZURE_STORAGE_TENANT_ID`),
//! `AZURE_STORAGE_ENDPOINT`, `AZURE_ALLOW_HTTP=true`, and `AZURE_STORAGE_USE_EMULATOR=true` for Azurite (at
//! `AZURITE_BLOB_STORAGE_URL`, default `http://127.0.0.1:10000`, with its well-known account and key). Without
//! S3 credentials the instance metadata service is asked, as the AWS tools do.
//!
//! Create-if-absent is a conditional PUT with `If-None-Match: *`, which S3 (since 2024), MinIO, Azure and Azurite
//! refuse atomically when the key exists; conditional put is forced on (`S3ConditionalPut::ETagMatch`) whatever
//! `AWS_CONDITIONAL_PUT` says, since vault locks and settings depend on it.
//!
//! Transient failures (5xx, 429, dropped connections, timeouts of reads) are retried by `object_store` with
//! exponential backoff and jitter, up to [`MAX_RETRIES`] times within [`RETRY_WINDOW`]; anything else fails at once
//! with a message naming the object. A create whose first attempt landed but whose answer was lost is refused on
//! retry; for objects up to [`COMPARE_LIMIT`] the existing bytes are compared and an identical object counts as
//! created (the `Store::create` contract allows it).
//!
//! The `Store` trait is synchronous and called from many threads (rayon workers); `object_store` is async. Each
//! store owns one multi-thread tokio runtime with 2-4 worker threads that drive the connections, and every call
//! blocks its calling thread in `block_on` until its request is done. No task ever blocks inside the runtime. The
//! calling threads must not themselves be tokio workers (coffer has no other runtime).

use super::{ObjectInfo, OpenError, Store, StoreError, check_name};
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientConfigKey, Error as OsError, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, RetryConfig,
};
use std::future::Future;
use std::io;
use std::ops::Range;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Attempts after the first for a request that failed transiently.
pub const MAX_RETRIES: usize = 10;
/// No retry starts later than this after a request's first attempt.
pub const RETRY_WINDOW: Duration = Duration::from_secs(4 * 60);
/// The whole of one request, upload included (a 32 MiB pack over a slow uplink takes minutes); `AWS_TIMEOUT` or
/// `AZURE_TIMEOUT` (e.g. `600s`) replaces it.
const REQUEST_TIMEOUT: &str = "300s";
/// Largest object whose existing bytes are compared with a refused create's (see the module comment).
pub const COMPARE_LIMIT: usize = 4 << 20;

/// Which service a vault URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    S3,
    Azure,
}

/// A parsed vault URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub service: Service,
    /// The S3 bucket or Azure container.
    pub bucket: String,
    /// Key prefix of the vault's objects, without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
}

impl Location {
    /// Parses `s3://BUCKET[/PREFIX]` or `azure://CONTAINER[/PREFIX]` (percent-escapes in PREFIX are decoded).
    pub fn parse(url: &str) -> Result<Location, OpenError> {
        let bad = |reason: String| OpenError::BadUrl {
            url: url.to_string(),
            reason,
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("not a URL".into()))?;
        let service = match scheme {
            "s3" => Service::S3,
            "azure" => Service::Azure,
            other => {
                return Err(bad(format!(
                    "unsupported scheme '{other}': use s3://BUCKET/PREFIX, azure://CONTAINER/PREFIX or a directory"
                )));
            }
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket or container name".into()));
        }
        if !bucket.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            return Err(bad(format!("'{bucket}' is not a bucket or container name")));
        }
        if prefix.contains(['?', '#']) {
            return Err(bad("query strings and fragments are not supported".into()));
        }
        let prefix = Path::from_url_path(prefix).map_err(|e| bad(one_line(&e.to_string())))?;
        Ok(Location {
            service,
            bucket: bucket.to_string(),
            prefix: prefix.as_ref().to_string(),
        })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.service {
            Service::S3 => "s3",
            Service::Azure => "azure",
        };
        write!(f, "{scheme}://{}", self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

/// A vault in an S3 bucket or Azure container, below a key prefix.
pub struct CloudStore {
    inner: Arc<dyn ObjectStore>,
    location: Location,
    runtime: tokio::runtime::Runtime,
}

impl CloudStore {
    /// The store at `url`, configured from the environment (see the module comment).
    pub fn open(url: &str) -> Result<CloudStore, OpenError> {
        Self::open_with(url, &[])
    }

    /// As [`CloudStore::open`], with `vars` (named like the environment variables, e.g. `AWS_ENDPOINT_URL`) taking
    /// precedence over the environment; a name that is no configuration key of the service is refused.
    pub fn open_with(url: &str, vars: &[(String, String)]) -> Result<CloudStore, OpenError> {
        let location = Location::parse(url)?;
        let inner: Arc<dyn ObjectStore> = match location.service {
            Service::S3 => Arc::new(s3(&location, vars)?),
            Service::Azure => Arc::new(azure(&location, vars)?),
        };
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 4);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("coffer-io")
            .enable_all()
            .build()
            .map_err(OpenError::Runtime)?;
        Ok(CloudStore {
            inner,
            location,
            runtime,
        })
    }

    /// Runs one request to completion on the store's runtime, blocking the calling thread.
    fn run<F: Future>(&self, request: F) -> F::Output {
        self.runtime.block_on(request)
    }

    /// The key of a vault-relative name (or of a name prefix ending before a `/`).
    fn key(&self, name: &str) -> Result<Path, StoreError> {
        let full = match (self.location.prefix.as_str(), name) {
            (p, "") => p.to_string(),
            ("", n) => n.to_string(),
            (p, n) => format!("{p}/{n}"),
        };
        Path::parse(&full).map_err(|_| StoreError::BadName(name.to_string()))
    }

    /// The vault-relative name of a listed key, if it lies below the prefix.
    fn relative(&self, key: &str) -> Option<String> {
        if self.location.prefix.is_empty() {
            return Some(key.to_string());
        }
        let rest = key.strip_prefix(&self.location.prefix)?.strip_prefix('/')?;
        Some(rest.to_string())
    }

    /// The size of `name`, from a HEAD request.
    fn size(&self, name: &str, key: &Path) -> Result<u64, StoreError> {
        self.run(self.inner.head(key))
            .map(|m| m.size)
            .map_err(|e| store_error(name, e))
    }

    /// A ranged GET; anything ending past the object's end is `OutOfRange`, whatever the server sent.
    fn read_range(&self, name: &str, key: &Path, r: Range<u64>) -> Result<Vec<u8>, StoreError> {
        if r.start >= r.end {
            // No bytes to fetch (or an inverted range): only existence and size matter.
            let size = self.size(name, key)?;
            return check_range(name, size, &r).map(|()| Vec::new());
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(r.clone())),
            ..GetOptions::default()
        };
        let fetched = self.run(async {
            let got = self.inner.get_opts(key, options).await?;
            let size = got.meta.size;
            Ok::<_, OsError>((size, got.bytes().await?))
        });
        match fetched {
            Ok((size, bytes)) => {
                check_range(name, size, &r)?;
                if bytes.len() as u64 != r.end - r.start {
                    return Err(io_error(name, io::ErrorKind::UnexpectedEof, "short read".into()));
                }
                Ok(bytes.to_vec())
            }
            // A range starting at or past the end is refused by the server (416): find out which case this was.
            Err(e @ OsError::NotFound { .. }) => Err(store_error(name, e)),
            Err(e) => match self.size(name, key) {
                Ok(size) if size < r.end => Err(out_of_range(name, size, r)),
                _ => Err(store_error(name, e)),
            },
        }
    }

    /// A failed listing, named by the vault and prefix. `object_store` reports listings as generic errors whose
    /// message carries the HTTP status; a 404 there means the bucket or container is missing.
    fn list_error(&self, prefix: &str, e: OsError) -> StoreError {
        let missing = match &e {
            OsError::NotFound { .. } => true,
            other => other.to_string().contains("status code: 404 Not Found"),
        };
        if missing {
            self.missing_bucket()
        } else {
            store_error(&format!("{}/{prefix}", self.location), e)
        }
    }

    /// What a listing or a create answered with "not found" means.
    fn missing_bucket(&self) -> StoreError {
        let message = "the bucket or container does not exist".to_string();
        io_error(&self.location.to_string(), io::ErrorKind::NotFound, message)
    }

    /// After a refused create: `Ok` if the object already holds exactly `data`, as after a retried request whose
    /// first attempt landed. Only small objects are compared.
    fn existing_matches(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        let exists = StoreError::AlreadyExists(name.to_string());
        if data.len() > COMPARE_LIMIT {
            return Err(exists);
        }
        match self.read(name, None) {
            Ok(existing) if existing == data => Ok(()),
            _ => Err(exists),
        }
    }
}

/// Packs uploaded at once: enough to hide a round trip per pack, few enough to bound memory (one 32 MiB pack each).
const PARALLEL_UPLOADS: usize = 4;

impl Store for CloudStore {
    /// Lists below the `/`-aligned part of `prefix` (object stores list by path segments) and keeps the names that
    /// start with all of it.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let dir = &prefix[..prefix.rfind('/').unwrap_or(0)];
        let key = self.key(dir).map_err(|_| StoreError::BadName(prefix.to_string()))?;
        let below = (!key.as_ref().is_empty()).then_some(&key);
        let metas: Vec<_> = self
            .run(self.inner.list(below).try_collect())
            .map_err(|e| self.list_error(prefix, e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let name = self.relative(m.location.as_ref())?;
                name.starts_with(prefix).then_some(ObjectInfo { name, size: m.size })
            })
            .collect())
    }

    fn read(&self, name: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        check_name(name)?;
        let key = self.key(name)?;
        match range {
            Some(r) => self.read_range(name, &key, r),
            None => self
                .run(async { self.inner.get(&key).await?.bytes().await })
                .map(|b| b.to_vec())
                .map_err(|e| store_error(name, e)),
        }
    }

    fn create(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        check_name(name)?;
        let key = self.key(name)?;
        let options = PutOptions::from(PutMode::Create);
        let payload = PutPayload::from(data.to_vec());
        match self.run(self.inner.put_opts(&key, payload, options)) {
            Ok(_) => Ok(()),
            Err(OsError::AlreadyExists { .. } | OsError::Precondition { .. }) => self.existing_matches(name, data),
            Err(OsError::NotFound { .. }) => Err(self.missing_bucket()),
            Err(e) => Err(store_error(name, e)),
        }
    }

    /// S3 answers a DELETE of a missing key with success, Azure with 404 (`NotFound`); both fit the contract.
    fn delete(&self, name: &str) -> Result<(), StoreError> {
        check_name(name)?;
        let key = self.key(name)?;
        self.run(self.inner.delete(&key)).map_err(|e| store_error(name, e))
    }

    fn parallel_writes(&self) -> usize {
        PARALLEL_UPLOADS
    }

    fn describe(&self) -> String {
        self.location.to_string()
    }
}

/// The S3 client: environment, then `vars`, then coffer's retry, timeout and conditional-put settings.
fn s3(location: &Location, vars: &[(String, String)]) -> Result<object_store::aws::AmazonS3, OpenError> {
    let mut b = AmazonS3Builder::from_env();
    for (name, value) in vars {
        b = b.with_config(config_key(location, name)?, value);
    }
    if !timeout_given("AWS_TIMEOUT", vars) {
        b = b.with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), REQUEST_TIMEOUT);
    }
    let endpoint = b.get_config_value(&AmazonS3ConfigKey::Endpoint);
    let allow_http = b.get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp));
    plain_http_allowed(location, endpoint, allow_http, "AWS_ALLOW_HTTP")?;
    b.with_bucket_name(&location.bucket)
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_retry(retry_config())
        .build()
        .map_err(|e| config_error(location, e))
}

/// The Azure client: environment, then `vars`, then coffer's retry and timeout settings.
fn azure(location: &Location, vars: &[(String, String)]) -> Result<object_store::azure::MicrosoftAzure, OpenError> {
    let mut b = MicrosoftAzureBuilder::from_env();
    for (name, value) in vars {
        b = b.with_config(config_key(location, name)?, value);
    }
    if !timeout_given("AZURE_TIMEOUT", vars) {
        b = b.with_config(AzureConfigKey::Client(ClientConfigKey::Timeout), REQUEST_TIMEOUT);
    }
    let endpoint = b.get_config_value(&AzureConfigKey::Endpoint);
    let allow_http = b.get_config_value(&AzureConfigKey::Client(ClientConfigKey::AllowHttp));
    plain_http_allowed(location, endpoint, allow_http, "AZURE_ALLOW_HTTP")?;
    b.with_container_name(&location.bucket)
        .with_retry(retry_config())
        .build()
        .map_err(|e| config_error(location, e))
}

/// The configuration key a variable name stands for, as `from_env` maps names (lower-cased).
fn config_key<K: FromStr>(location: &Location, name: &str) -> Result<K, OpenError> {
    name.to_ascii_lowercase().parse().map_err(|_| OpenError::Config {
        url: location.to_string(),
        message: format!("'{name}' is not a setting of this service"),
    })
}

/// Refuses a plain-HTTP endpoint that is not allowed with a message saying what to set (the HTTP client would only
/// say "builder error" at the first request).
fn plain_http_allowed(
    location: &Location,
    endpoint: Option<String>,
    allow_http: Option<String>,
    allow_var: &str,
) -> Result<(), OpenError> {
    match endpoint {
        Some(e) if e.starts_with("http://") && allow_http.as_deref() != Some("true") => Err(OpenError::Config {
            url: location.to_string(),
            message: format!("the endpoint {e} is plain HTTP: set {allow_var}=true to allow it"),
        }),
        _ => Ok(()),
    }
}

fn timeout_given(var: &str, vars: &[(String, String)]) -> bool {
    std::env::var_os(var).is_some() || vars.iter().any(|(k, _)| k == var)
}

/// Exponential backoff from 200 ms, doubling up to 30 s, each pause drawn at random below its bound (jitter).
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            base: 2.0,
        },
        max_retries: MAX_RETRIES,
        retry_timeout: RETRY_WINDOW,
    }
}

fn config_error(location: &Location, e: OsError) -> OpenError {
    OpenError::Config {
        url: location.to_string(),
        message: one_line(&e.to_string()),
    }
}

fn check_range(name: &str, size: u64, r: &Range<u64>) -> Result<(), StoreError> {
    if r.start > r.end || r.end > size {
        return Err(out_of_range(name, size, r.clone()));
    }
    Ok(())
}

fn out_of_range(name: &str, size: u64, range: Range<u64>) -> StoreError {
    StoreError::OutOfRange {
        name: name.to_string(),
        size,
        range,
    }
}

/// A store error naming `name`. Refused credentials become `PermissionDenied` I/O errors; the service's own
/// message (request, status, retries) is kept on one line.
fn store_error(name: &str, e: OsError) -> StoreError {
    let kind = match &e {
        OsError::NotFound { .. } => return StoreError::NotFound(name.to_string()),
        OsError::AlreadyExists { .. } | OsError::Precondition { .. } => {
            return StoreError::AlreadyExists(name.to_string());
        }
        OsError::PermissionDenied { .. } | OsError::Unauthenticated { .. } => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::Other,
    };
    io_error(name, kind, one_line(&e.to_string()))
}

fn io_error(name: &str, kind: io::ErrorKind, message: String) -> StoreError {
    StoreError::Io {
        name: name.to_string(),
        source: io::Error::new(kind, message),
    }
}

/// Service messages can hold XML bodies over several lines: one line, at most 600 characters.
fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(600) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

#[cfg(test)]
mod tests;
