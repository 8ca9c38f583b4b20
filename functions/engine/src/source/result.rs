//! Streaming a Snowflake query result: the inline first batch, then the
//! result's chunk URLs downloaded **in order with bounded prefetch**, as the
//! official drivers do (docs/sync.md §5.6).
//!
//! `snowflake-api`'s `exec_raw` downloads every chunk of a result at once and
//! returns them all in memory. thaw keeps the crate for the session (login,
//! key-pair JWT, token renewal, sequence ids) and takes over only the result:
//! a middleware on thaw's own HTTP client ([`ResultCapture`]) recognises the
//! answer to the one query thaw asked to stream (by its SQL text), keeps its
//! inline rowset, chunk list and chunk headers, and hands the crate the same
//! answer with no rows, so the crate downloads nothing.
//! [`ChunkedResult::into_batches`] then yields the rows as standard Arrow
//! batches ([`super::arrow::SnowflakeDecoder`]) while a background task
//! downloads the next chunk, at most [`PREFETCH_CHUNKS`] ahead of the one
//! being read and only once the process's [`DownloadBudget`] has room for
//! its bytes; the result's row count is checked at the end.
//!
//! Faults (docs/sync.md §9.3): a chunk download that fails transiently
//! (connection dropped or reset, body cut short, HTTP 5xx or 429) is retried
//! [`DOWNLOAD_ATTEMPTS`] times in all with the chunk retry policy's jittered
//! backoff ([`crate::sync::retry::RetryPolicy`]), waiting at least the
//! server's `Retry-After` (at most [`RETRY_AFTER_CAP`]); after that the stream
//! fails `Transient` and the copy's own retry budget takes over. A query
//! submission answered with HTTP 5xx, 408 or 429 (the server refused it, so
//! sending it again is safe) is sent again by the same middleware,
//! [`QUERY_ATTEMPTS`] times in all, after the same jittered backoff and at
//! least the server's `Retry-After` (at most [`RETRY_AFTER_CAP`]), each wait
//! logged; when the attempts are spent it fails with that status named
//! ([`ServerBusy`], `Transient`) instead of an undecodable-body error, and the
//! copy's retry budget takes over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::RecordBatch;
use base64::Engine as _;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use reqwest_middleware::ClientWithMiddleware;

use super::arrow::SnowflakeDecoder;
use super::download_budget::{ChunkReservation, DownloadBudget};
use crate::error::{Error, ErrorKind, Result};
use crate::sync::retry::RetryPolicy;

/// Chunks downloaded or downloading ahead of the one being read: one. The
/// next chunk's download starts when the reader takes the previous one, so
/// it overlaps the reading of that chunk (double buffering), and memory is
/// bounded by two chunks plus the batch being copied, whatever the size of
/// the result (docs/benchmarks.md §3 measured three chunks per worker as
/// the largest part of a worker's memory).
pub const PREFETCH_CHUNKS: usize = 1;

/// Attempts per result-chunk download (the first plus two retries) before
/// the stream fails and the chunk-level retry budget takes over.
pub const DOWNLOAD_ATTEMPTS: u32 = 3;

/// Attempts per query submission answered with a retryable HTTP status (the
/// first plus two retries) before it fails `Transient`.
pub const QUERY_ATTEMPTS: u32 = 3;

/// The longest `Retry-After` a download or query submission waits for: 15 seconds.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(15);

/// A Snowflake request answered with an HTTP status that means "try again"
/// (5xx, 429), as gateways and throttling answer without a Snowflake body.
#[derive(Debug, thiserror::Error)]
#[error("Snowflake answered HTTP {status} to {what}{}", retry_after.map(|s| format!(" (Retry-After: {} s)", s.as_secs())).unwrap_or_default())]
pub struct ServerBusy {
    /// The HTTP status.
    pub status: http::StatusCode,
    /// What was asked (`a query request`, `a result-chunk download`).
    pub what: &'static str,
    /// The server's `Retry-After`, when it sent one in seconds.
    pub retry_after: Option<Duration>,
}

/// Whether `status` is one a retry can cure: any 5xx, 408 and 429.
fn retryable_status(status: http::StatusCode) -> bool {
    status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS || status == http::StatusCode::REQUEST_TIMEOUT
}

/// The `Retry-After` header in seconds (the HTTP-date form is ignored).
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A Snowflake answer kept for streaming.
#[derive(Debug, Clone, Default)]
pub struct ChunkedResult {
    /// Rows the whole result holds (`data.total`).
    pub total_rows: u64,
    /// The first chunk, an Arrow IPC stream (decoded `rowsetBase64`; empty when none).
    pub inline: Bytes,
    /// The other chunks, in result order.
    pub chunks: Vec<ResultChunk>,
    /// Headers every chunk download must send (`chunkHeaders`).
    pub chunk_headers: HashMap<String, String>,
}

/// One downloadable chunk of a result (an entry of `data.chunks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultChunk {
    /// Where to download it (a presigned URL).
    pub url: String,
    /// Rows it holds (`rowCount`).
    pub rows: u64,
    /// Its size once downloaded and decompressed, in bytes
    /// (`uncompressedSize`; 0 when the answer does not say).
    pub uncompressed_bytes: u64,
}

/// Shared between a session's HTTP middleware and the session: which query
/// to capture, and what was captured.
#[derive(Debug, Default)]
struct CaptureState {
    /// SQL text of the query to capture.
    armed: Option<String>,
    /// The captured answer.
    captured: Option<std::result::Result<ChunkedResult, String>>,
    /// Why the last login or session-token request failed with a retryable
    /// HTTP status ([`ServerBusy`]); cleared by the next answered one.
    session_busy: Option<String>,
}

/// Captures the answer to one query for streaming (see the module docs).
/// Cheap to clone; one per session.
#[derive(Debug, Clone, Default)]
pub struct ResultCapture {
    state: Arc<Mutex<CaptureState>>,
}

impl ResultCapture {
    /// Why the session's last login or token request failed with a
    /// retryable HTTP status (5xx, 408, 429), if it did; taking it clears it.
    /// `snowflake-api` reports any failed login as an authentication error,
    /// so the caller uses this to tell a busy service (transient) from
    /// rejected credentials.
    pub fn take_session_busy(&self) -> Option<String> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).session_busy.take()
    }

    /// Capture the answer to the next query whose SQL text is `sql`.
    pub fn arm(&self, sql: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.armed = Some(sql.to_string());
        state.captured = None;
    }

    /// Stop capturing and return what was captured (`Err`: the answer could not be read).
    pub fn take(&self) -> Option<std::result::Result<ChunkedResult, String>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.armed = None;
        state.captured.take()
    }

    fn armed_for(&self, sql: &str) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).armed.as_deref() == Some(sql)
    }

    fn store(&self, result: std::result::Result<ChunkedResult, String>) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).captured = Some(result);
    }

    /// Add the capturing middleware to `builder` (the session's HTTP client).
    pub fn install(&self, builder: reqwest_middleware::ClientBuilder) -> reqwest_middleware::ClientBuilder {
        builder.with(self.clone())
    }

    /// Keep the rows of a query answer and give the crate the answer without them.
    async fn rewrite(&self, response: reqwest::Response) -> reqwest_middleware::Result<reqwest::Response> {
        let status = response.status();
        let version = response.version();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(reqwest_middleware::Error::Reqwest)?;
        let rebuilt = |body: Vec<u8>| {
            let mut builder = http::Response::builder().status(status).version(version);
            for (name, value) in &headers {
                if name != http::header::CONTENT_LENGTH {
                    builder = builder.header(name, value);
                }
            }
            builder.body(body).map(reqwest::Response::from).map_err(|e| reqwest_middleware::Error::Middleware(e.into()))
        };
        let Ok(mut answer) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return rebuilt(body.to_vec());
        };
        if answer.get("success").and_then(|s| s.as_bool()) != Some(true) {
            return rebuilt(body.to_vec());
        }
        let Some(data) = answer.get_mut("data").and_then(|d| d.as_object_mut()) else {
            return rebuilt(body.to_vec());
        };
        if data.get("rowtype").is_none() || data.get("rowset").is_some_and(|r| !r.is_null()) {
            // Not an Arrow query answer (JSON rows): leave it to the crate.
            return rebuilt(body.to_vec());
        }
        self.store(chunked_result(data));
        data.insert("returned".into(), 0.into());
        data.insert("rowsetBase64".into(), "".into());
        data.insert("chunks".into(), serde_json::Value::Array(Vec::new()));
        rebuilt(serde_json::to_vec(&answer).unwrap_or_else(|_| body.to_vec()))
    }
}

/// The `sqlText` of a query request body.
fn sql_text_of(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(body).ok()?.get("sqlText")?.as_str().map(str::to_string)
}

fn chunked_result(data: &serde_json::Map<String, serde_json::Value>) -> std::result::Result<ChunkedResult, String> {
    let number = |v: Option<&serde_json::Value>| v.and_then(|n| n.as_u64().or_else(|| n.as_f64().map(|f| f as u64))).unwrap_or(0);
    let inline = match data.get("rowsetBase64").and_then(|r| r.as_str()).unwrap_or("") {
        "" => Bytes::new(),
        text => Bytes::from(
            base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| format!("the inline rowset is not base64: {e}"))?,
        ),
    };
    let chunks = data
        .get("chunks")
        .and_then(|c| c.as_array())
        .map(|chunks| {
            chunks
                .iter()
                .map(|c| {
                    Ok(ResultChunk {
                        url: c.get("url").and_then(|u| u.as_str()).ok_or("a result chunk has no url")?.to_string(),
                        rows: number(c.get("rowCount")),
                        uncompressed_bytes: number(c.get("uncompressedSize")),
                    })
                })
                .collect::<std::result::Result<Vec<_>, &str>>()
        })
        .transpose()?
        .unwrap_or_default();
    let chunk_headers = data
        .get("chunkHeaders")
        .and_then(|h| h.as_object())
        .map(|h| h.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default();
    Ok(ChunkedResult { total_rows: number(data.get("total")), inline, chunks, chunk_headers })
}

/// Aborts the download task when the stream is dropped (a failed or
/// abandoned copy stops downloading).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for ResultCapture {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let sql = if req.url().path().ends_with("/queries/v1/query-request") {
            req.body().and_then(|b| b.as_bytes()).and_then(sql_text_of)
        } else {
            None
        };
        let is_query = sql.is_some();
        let path = req.url().path();
        let is_session = path.ends_with("/session/v1/login-request") || path.ends_with("/session/token-request");
        // A query request's body is bytes, so it can be sent again.
        let retry = if is_query { req.try_clone() } else { None };
        let response = next.clone().run(req, extensions).await?;
        if is_session {
            let busy = retryable_status(response.status())
                .then(|| ServerBusy { status: response.status(), what: "a login request", retry_after: retry_after(response.headers()) });
            self.state.lock().unwrap_or_else(|p| p.into_inner()).session_busy = busy.as_ref().map(|b| b.to_string());
            if let Some(busy) = busy {
                return Err(reqwest_middleware::Error::Middleware(busy.into()));
            }
        }
        let response = if is_query { submit_with_retries(response, retry, extensions, next).await? } else { response };
        match sql {
            Some(sql) if self.armed_for(&sql) => self.rewrite(response).await,
            _ => Ok(response),
        }
    }
}

/// The answer to a query submission, sending it again while the server
/// answers a retryable status and [`QUERY_ATTEMPTS`] are not spent: each
/// retry waits the policy's jittered backoff and at least the server's
/// `Retry-After` (capped at [`RETRY_AFTER_CAP`]), and logs the wait.
///
/// Errors: [`ServerBusy`] for the last refusal; transport errors as they come.
async fn submit_with_retries(
    mut response: reqwest::Response,
    mut retry: Option<reqwest::Request>,
    extensions: &mut http::Extensions,
    next: reqwest_middleware::Next<'_>,
) -> reqwest_middleware::Result<reqwest::Response> {
    let mut policy = RetryPolicy::new(Duration::ZERO, QUERY_ATTEMPTS);
    let mut attempt = 1;
    while retryable_status(response.status()) {
        let busy = ServerBusy { status: response.status(), what: "a query request", retry_after: retry_after(response.headers()) };
        let backoff = policy.next_delay(attempt, &Error::new(ErrorKind::Transient, busy.to_string()));
        let (Some(request), Some(backoff)) = (retry.take(), backoff) else {
            return Err(reqwest_middleware::Error::Middleware(busy.into()));
        };
        let wait = backoff.max(busy.retry_after.unwrap_or_default().min(RETRY_AFTER_CAP));
        tracing::warn!(
            attempt,
            wait_ms = wait.as_millis() as u64,
            "{busy}; sending it again in {:.3} s (attempt {} of {QUERY_ATTEMPTS})",
            wait.as_secs_f64(),
            attempt + 1
        );
        tokio::time::sleep(wait).await;
        retry = request.try_clone();
        response = next.clone().run(request, extensions).await?;
        attempt += 1;
    }
    Ok(response)
}

/// The reading side of a streamed result.
struct Reader {
    chunks: tokio::sync::mpsc::Receiver<Result<(Bytes, Option<ChunkReservation>)>>,
    /// The chunk being read: its Arrow IPC stream decoder, the bytes not yet
    /// decoded and its bytes' reservation in the download budget (none for
    /// the inline first part, which arrived with the answer). Batches are
    /// decoded in place: their buffers are slices of the downloaded chunk,
    /// not copies of its messages.
    current: Option<(arrow_ipc::reader::StreamDecoder, arrow_buffer::Buffer, Option<ChunkReservation>)>,
    decoder: Option<SnowflakeDecoder>,
    rows: u64,
    total_rows: u64,
    _downloads: AbortOnDrop,
}

impl Reader {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some((stream, remaining, _reservation)) = &mut self.current {
                let decoded = if remaining.is_empty() { Ok(None) } else { stream.decode(remaining) };
                match decoded {
                    Ok(Some(batch)) => {
                        if batch.num_rows() == 0 {
                            continue;
                        }
                        let decoder = match &self.decoder {
                            Some(d) => d,
                            None => self.decoder.insert(SnowflakeDecoder::new(&batch.schema())?),
                        };
                        self.rows += batch.num_rows() as u64;
                        return decoder.decode(&batch).map(Some);
                    }
                    // The chunk is read: it must end on a message boundary.
                    Ok(None) => {
                        stream.finish().map_err(|e| Error::internal(format!("Snowflake returned a truncated Arrow stream: {e}")))?;
                        self.current = None;
                    }
                    // Bytes after the end-of-stream marker are ignored, as
                    // arrow's `StreamReader` does; the row count still
                    // has to add up at the end.
                    Err(_) if stream.finish().is_ok() && stream.schema().is_some() => self.current = None,
                    Err(e) => return Err(Error::internal(format!("Snowflake returned an undecodable Arrow stream: {e}"))),
                }
                continue;
            }
            match self.chunks.recv().await {
                Some(chunk) => {
                    let (bytes, reservation) = chunk?;
                    if bytes.is_empty() {
                        continue;
                    }
                    self.current = Some((arrow_ipc::reader::StreamDecoder::new(), arrow_buffer::Buffer::from(bytes), reservation));
                }
                None if self.rows != self.total_rows => {
                    return Err(Error::new(
                        ErrorKind::Transient,
                        format!(
                            "the Snowflake result announced {} rows but {} arrived; the chunk will be fetched again",
                            self.total_rows, self.rows
                        ),
                    ));
                }
                None => return Ok(None),
            }
        }
    }
}

impl ChunkedResult {
    /// The rows as standard Arrow batches, in result order: the inline chunk,
    /// then each downloaded chunk. Downloads run in a background task, at most
    /// [`PREFETCH_CHUNKS`] ahead, each once `budget` has room for its bytes
    /// (held until the chunk is read), and stop when the stream is dropped.
    ///
    /// Stream errors: [`ErrorKind::Transient`]/[`ErrorKind::Unreachable`] for
    /// a failed download or a row count that does not add up; the decoder's
    /// errors (docs/sync.md §5.5).
    pub fn into_batches(self, client: ClientWithMiddleware, budget: Arc<DownloadBudget>) -> BoxStream<'static, Result<RecordBatch>> {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<(Bytes, Option<ChunkReservation>)>>(PREFETCH_CHUNKS);
        let ChunkedResult { total_rows, inline, chunks, chunk_headers } = self;
        let downloads = tokio::spawn(async move {
            if sender.send(Ok((inline, None))).await.is_err() {
                return;
            }
            for (index, chunk) in chunks.iter().enumerate() {
                // A slot first: the download starts once the reader took the
                // previous chunk, so at most PREFETCH_CHUNKS wait unread.
                let Ok(slot) = sender.reserve().await else { return };
                // Then the chunk's bytes in the process's budget; when the
                // answer does not give the size, it is reserved once known.
                let early = match chunk.uncompressed_bytes {
                    0 => None,
                    bytes => Some(budget.reserve(bytes).await),
                };
                let chunk = match download_with_retries(&client, &chunk.url, &chunk_headers).await {
                    Ok(bytes) => {
                        let reservation = match early {
                            Some(reservation) => reservation,
                            None => budget.reserve(bytes.len() as u64).await,
                        };
                        Ok((bytes, Some(reservation)))
                    }
                    Err(e) => Err(e.context(format!("result chunk {} of {}", index + 1, chunks.len()))),
                };
                let failed = chunk.is_err();
                slot.send(chunk);
                if failed {
                    return;
                }
            }
        });
        let reader = Reader { chunks: receiver, current: None, decoder: None, rows: 0, total_rows, _downloads: AbortOnDrop(downloads) };
        // The stream ends after its first error.
        futures::stream::unfold(Some(reader), |reader| async move {
            let mut reader = reader?;
            match reader.next_batch().await {
                Ok(Some(batch)) => Some((Ok(batch), Some(reader))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
        .boxed()
    }
}

/// GET one result chunk, retrying transient failures [`DOWNLOAD_ATTEMPTS`]
/// times in all (see the module docs); the error names the attempts made.
async fn download_with_retries(client: &ClientWithMiddleware, url: &str, headers: &HashMap<String, String>) -> Result<Bytes> {
    // No time budget of its own: the attempt floor alone bounds it, and the
    // chunk's retry budget (docs/sync.md §9.3) governs everything above it.
    let mut policy = RetryPolicy::new(Duration::ZERO, DOWNLOAD_ATTEMPTS);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let DownloadFailure { error, retry_after: server_wait, same_url_may_work } = match download(client, url, headers).await {
            Ok(bytes) => return Ok(bytes),
            Err(failure) => failure,
        };
        if !same_url_may_work {
            return Err(error);
        }
        match policy.next_delay(attempt, &error) {
            Some(backoff) => {
                let wait = backoff.max(server_wait.unwrap_or_default().min(RETRY_AFTER_CAP));
                tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, error = %error, "result chunk download failed; retrying");
                tokio::time::sleep(wait).await;
            }
            None if error.kind.is_retryable() => return Err(error.context(format!("after {attempt} download attempts"))),
            None => return Err(error),
        }
    }
}

/// Why one download attempt failed.
struct DownloadFailure {
    error: Error,
    /// The server's `Retry-After`.
    retry_after: Option<Duration>,
    /// False for 403/404 and the like: the URL expired or was never valid, so
    /// asking again the same way cannot help; the error stays `Transient`
    /// because the chunk's retry re-runs the query and gets new URLs.
    same_url_may_work: bool,
}

/// GET one result chunk with its headers.
async fn download(client: &ClientWithMiddleware, url: &str, headers: &HashMap<String, String>) -> std::result::Result<Bytes, DownloadFailure> {
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request.send().await.map_err(|e| {
        let kind = if e.is_connect() || e.is_timeout() { ErrorKind::Unreachable } else { ErrorKind::Transient };
        let error = Error::new(kind, format!("downloading a Snowflake result chunk failed: {}", crate::error::chain_text(&e)));
        DownloadFailure { error, retry_after: None, same_url_may_work: true }
    })?;
    let status = response.status();
    if !status.is_success() {
        let wait = retry_after(response.headers());
        let busy = ServerBusy { status, what: "a result-chunk download", retry_after: wait };
        return Err(DownloadFailure { error: Error::new(ErrorKind::Transient, busy.to_string()), retry_after: wait, same_url_may_work: retryable_status(status) });
    }
    response.bytes().await.map_err(|e| DownloadFailure {
        error: Error::new(ErrorKind::Transient, format!("reading a Snowflake result chunk failed: {}", crate::error::chain_text(&e))),
        retry_after: None,
        same_url_may_work: true,
    })
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_answers_are_read_for_rows_chunks_and_headers() {
        let data = serde_json::json!({
            "rowtype": [], "total": 3000, "returned": 1000, "rowsetBase64": "",
            "chunks": [{"url": "https://x/c1", "rowCount": 1000, "uncompressedSize": 52000}, {"url": "https://x/c2", "rowCount": 1000}],
            "chunkHeaders": {"x-amz-server-side-encryption-customer-key": "k"}
        });
        let result = chunked_result(data.as_object().unwrap()).unwrap();
        assert_eq!(result.total_rows, 3000);
        let chunk = |url: &str, uncompressed_bytes| ResultChunk { url: url.to_string(), rows: 1000, uncompressed_bytes };
        assert_eq!(result.chunks, vec![chunk("https://x/c1", 52_000), chunk("https://x/c2", 0)]);
        assert_eq!(result.chunk_headers.get("x-amz-server-side-encryption-customer-key").map(String::as_str), Some("k"));
        assert!(result.inline.is_empty());
        assert_eq!(sql_text_of(br#"{"sqlText":"SELECT 1","asyncExec":false}"#).as_deref(), Some("SELECT 1"));
    }
}
