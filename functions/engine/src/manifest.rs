//! The chunk manifest: a JSON array of [`ChunkItem`] written by `plan` and
//! read by the Distributed Map's ItemReader (cloud) or the local runner.
//!
//! URIs: a local path (or `file://` URL). The default location is
//! `$THAW_MANIFEST_DIR/<run_id>.json`, else `<temp dir>/thaw-manifests/<run_id>.json`.

use std::path::PathBuf;

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::handlers::ChunkItem;

/// Write the manifest of `run_id` to `uri` (or the default location) and
/// return the URI written.
pub async fn write(uri: Option<&str>, run_id: Uuid, items: &[ChunkItem]) -> Result<String> {
    let path: PathBuf = match uri {
        Some(u) if u.starts_with("s3://") => {
            return Err(Error::config(format!("manifest_uri {u}: S3 manifests are not supported by this build; give a local path")))
        }
        Some(u) => PathBuf::from(u.trim_start_matches("file://")),
        None => {
            let dir = std::env::var_os("THAW_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("thaw-manifests"));
            dir.join(format!("{run_id}.json"))
        }
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::config(format!("cannot create manifest directory {}: {e}", parent.display())))?;
    }
    let text = serde_json::to_string_pretty(items).expect("manifest serialises");
    std::fs::write(&path, text).map_err(|e| Error::config(format!("cannot write manifest {}: {e}", path.display())))?;
    Ok(path.display().to_string())
}

/// Read a manifest written by [`write`].
pub async fn read(uri: &str) -> Result<Vec<ChunkItem>> {
    let path = uri.trim_start_matches("file://");
    let text = std::fs::read_to_string(path).map_err(|e| Error::internal(format!("cannot read manifest {uri}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| Error::internal(format!("manifest {uri} is not a JSON array of chunk items: {e}")))
}
