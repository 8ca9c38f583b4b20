//! The chunk manifest: a JSON array of [`ChunkItem`] written by `plan` and
//! read by the Distributed Map's ItemReader (cloud) or the local runner.
//!
//! URIs: `s3://bucket/key`, a local path, or a `file://` URL.
//! * Default location (no URI given): `s3://$THAW_MANIFEST_BUCKET/manifests/<run_id>/chunks.json`
//!   when `THAW_MANIFEST_BUCKET` is set (the Lambdas), else
//!   `$THAW_MANIFEST_DIR/<run_id>.json`, else `<temp dir>/thaw-manifests/<run_id>.json`.
//! * S3 goes through the `object_store` crate with the standard AWS
//!   environment (credentials, `AWS_REGION`/`AWS_DEFAULT_REGION`). The
//!   endpoint can be overridden with `AWS_ENDPOINT_URL_S3` or
//!   `AWS_ENDPOINT_URL` (the AWS SDKs' names; a local moto server in tests);
//!   an override uses path-style requests and allows plain `http://`.
//!
//! [`read_object`] / [`write_object`] are the same transport for any small
//! object (the Lambdas read their `config.json` from S3 with it).

use std::path::PathBuf;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use uuid::Uuid;

use crate::error::{Error, ErrorKind, Result};
use crate::contract::ChunkItem;

/// Write the manifest of `run_id` to `uri` (or the default location, see the
/// module docs) and return the URI written.
///
/// Errors: [`ErrorKind::ConfigInvalid`] for an unusable location,
/// [`ErrorKind::Transient`] for a failed S3 request.
pub async fn write(uri: Option<&str>, run_id: Uuid, items: &[ChunkItem]) -> Result<String> {
    let uri = match uri {
        Some(u) => u.to_string(),
        None => default_uri(run_id),
    };
    let text = serde_json::to_string_pretty(items).expect("manifest serialises");
    write_object(&uri, text.into_bytes()).await.map_err(|e| e.context("writing the chunk manifest"))?;
    Ok(uri)
}

/// Read a manifest written by [`write()`].
///
/// Errors: [`ErrorKind::Internal`] when it is missing or not a JSON array of
/// chunk items, [`ErrorKind::Transient`] for a failed S3 request.
pub async fn read(uri: &str) -> Result<Vec<ChunkItem>> {
    let bytes = read_object(uri).await.map_err(|e| e.context("reading the chunk manifest"))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::internal(format!("manifest {uri} is not a JSON array of chunk items: {e}")))
}

/// The default manifest location of `run_id` (see the module docs).
pub fn default_uri(run_id: Uuid) -> String {
    match std::env::var("THAW_MANIFEST_BUCKET") {
        Ok(bucket) if !bucket.is_empty() => format!("s3://{bucket}/manifests/{run_id}/chunks.json"),
        _ => {
            let dir = std::env::var_os("THAW_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("thaw-manifests"));
            dir.join(format!("{run_id}.json")).display().to_string()
        }
    }
}

/// Read a whole object: `s3://bucket/key`, `file://path` or a local path.
///
/// Errors: [`ErrorKind::ConfigInvalid`] when it does not exist (naming the
/// URI), [`ErrorKind::Transient`] for other S3 failures, [`ErrorKind::Internal`]
/// for other local I/O failures.
pub async fn read_object(uri: &str) -> Result<Vec<u8>> {
    match parse_s3(uri)? {
        Some((bucket, key)) => {
            let store = s3_store(&bucket)?;
            let got = store.get(&key).await.map_err(|e| s3_error(e, "read", uri))?;
            let bytes = got.bytes().await.map_err(|e| s3_error(e, "read", uri))?;
            Ok(bytes.to_vec())
        }
        None => {
            let path = local_path(uri);
            std::fs::read(&path).map_err(|e| {
                let kind = if e.kind() == std::io::ErrorKind::NotFound { ErrorKind::ConfigInvalid } else { ErrorKind::Internal };
                Error::new(kind, format!("cannot read {}: {e}", path.display()))
            })
        }
    }
}

/// Write a whole object (replacing it): `s3://bucket/key`, `file://path` or a
/// local path (parent directories are created).
///
/// Errors: [`ErrorKind::Transient`] for a failed S3 request,
/// [`ErrorKind::ConfigInvalid`] for a local location that cannot be written.
pub async fn write_object(uri: &str, bytes: Vec<u8>) -> Result<()> {
    match parse_s3(uri)? {
        Some((bucket, key)) => {
            let store = s3_store(&bucket)?;
            store.put(&key, PutPayload::from(bytes)).await.map_err(|e| s3_error(e, "write", uri))?;
            Ok(())
        }
        None => {
            let path = local_path(uri);
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| Error::config(format!("cannot create directory {}: {e}", parent.display())))?;
            }
            std::fs::write(&path, bytes).map_err(|e| Error::config(format!("cannot write {}: {e}", path.display())))
        }
    }
}

fn local_path(uri: &str) -> PathBuf {
    PathBuf::from(uri.strip_prefix("file://").unwrap_or(uri))
}

/// `s3://bucket/key` → `(bucket, key)`; `None` for anything that is not S3.
fn parse_s3(uri: &str) -> Result<Option<(String, ObjectPath)>> {
    let Some(rest) = uri.strip_prefix("s3://") else {
        return Ok(None);
    };
    match rest.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
            let key = ObjectPath::parse(key).map_err(|e| Error::config(format!("{uri}: the key is not a valid S3 object path: {e}")))?;
            Ok(Some((bucket.to_string(), key)))
        }
        _ => Err(Error::config(format!("{uri} is not an S3 object URI; use s3://<bucket>/<key>"))),
    }
}

/// A client for `bucket` from the AWS environment, honouring the endpoint
/// overrides `AWS_ENDPOINT_URL_S3` and `AWS_ENDPOINT_URL`.
fn s3_store(bucket: &str) -> Result<impl ObjectStore> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"].iter().find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    if let Some(endpoint) = endpoint {
        builder = builder
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .with_endpoint(endpoint);
    }
    if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
        builder = builder.with_region("us-east-1");
    }
    builder.build().map_err(|e| Error::config(format!("cannot set up the S3 client for bucket {bucket}: {e}. Check the AWS_* environment.")))
}

/// What to check when the S3 host name does not exist (bad input, never retried).
pub(crate) const S3_HOST_NOT_FOUND_HINT: &str = "the S3 host name does not exist (it does not resolve): check the S3 endpoint \
    (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL), the bucket name and AWS_REGION; retrying cannot help";

fn s3_error(err: object_store::Error, action: &str, uri: &str) -> Error {
    if crate::error::name_resolution_failure(&err) == Some(crate::error::NameResolution::NotFound) {
        return Error::config(format!("cannot {action} {uri}: {S3_HOST_NOT_FOUND_HINT} ({err})"));
    }
    match err {
        object_store::Error::NotFound { .. } => Error::config(format!("cannot {action} {uri}: no such object. Check the bucket and key.")),
        other => Error::new(ErrorKind::Transient, format!("cannot {action} {uri}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(chunk_id: i32) -> ChunkItem {
        ChunkItem { run_id: Uuid::nil(), source_name: "analytics".into(), source_table: "DIMPAYER".into(), chunk_id, file_key: None, staged: None }
    }

    #[tokio::test]
    async fn local_manifest_round_trips_through_a_file_url() {
        let dir = std::env::temp_dir().join(format!("thaw-manifest-test-{}", Uuid::new_v4()));
        let uri = format!("file://{}/nested/chunks.json", dir.display());
        let written = write(Some(&uri), Uuid::nil(), &[item(0), item(1)]).await.unwrap();
        assert_eq!(written, uri);
        assert_eq!(read(&uri).await.unwrap(), vec![item(0), item(1)]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn missing_local_object_is_named_in_the_error() {
        let err = read_object("/nonexistent/thaw/chunks.json").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::ConfigInvalid);
        assert!(err.message.contains("/nonexistent/thaw/chunks.json"), "{}", err.message);
    }

    /// Session 12 (issue 9): an S3 endpoint whose host does not exist was
    /// `Transient`, retried as if the network had dropped. It is bad input
    /// naming the endpoint settings, at once. (nextest runs each test in its
    /// own process, so the variable reaches no other test.)
    #[tokio::test]
    async fn an_s3_endpoint_whose_host_does_not_exist_is_bad_input_at_once() {
        std::env::set_var("AWS_ENDPOINT_URL_S3", "http://no-such-host.invalid:9000");
        std::env::set_var("AWS_ACCESS_KEY_ID", "x");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "x");
        let started = std::time::Instant::now();
        let err = read_object("s3://thaw-staging/manifests/x/chunks.json").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::ConfigInvalid, "{err}");
        assert!(err.message.contains("AWS_ENDPOINT_URL_S3") && err.message.contains("does not exist"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "not retried for {:?}", started.elapsed());
    }

    #[test]
    fn s3_uris_need_a_bucket_and_a_key() {
        let (bucket, key) = parse_s3("s3://data-bucket/manifests/exec-1/chunks.json").unwrap().unwrap();
        assert_eq!(bucket, "data-bucket");
        assert_eq!(key.as_ref(), "manifests/exec-1/chunks.json");
        assert!(parse_s3("/tmp/chunks.json").unwrap().is_none());
        let err = parse_s3("s3://data-bucket").unwrap_err();
        assert!(err.message.contains("s3://<bucket>/<key>"), "{}", err.message);
    }
}
