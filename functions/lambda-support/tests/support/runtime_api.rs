//! A Lambda binary run as Lambda runs it, against a minimal Runtime API, for
//! the Lambda packages' tests of malformed events (included with `#[path]`
//! by `functions/<lambda>/tests/malformed_event.rs`: each package's test gets
//! its own binary from Cargo as `CARGO_BIN_EXE_<name>`).
//!
//! The Runtime API is an HTTP/1.1 server on loopback: it hands out one event
//! on `GET …/invocation/next` and reports what the binary posts to
//! `…/invocation/<id>/error` or `…/response`. Standard library only, so the
//! Lambda packages need no test dependency.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// One HTTP request: method, path, body.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, String, Vec<u8>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((method, path, body))
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\ncontent-type: application/json\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

/// Serve one connection: the first `next` of the server gets `event`, later
/// ones wait (the binary is killed); a posted result goes to `results`.
fn serve_connection(stream: TcpStream, event: Arc<Vec<u8>>, handed_out: Arc<AtomicBool>, results: mpsc::Sender<String>) {
    let mut writer = stream.try_clone().expect("clone the connection");
    let mut reader = BufReader::new(stream);
    while let Some((method, path, body)) = read_request(&mut reader) {
        if method == "GET" && path.ends_with("/runtime/invocation/next") {
            if handed_out.swap(true, Ordering::SeqCst) {
                std::thread::sleep(Duration::from_secs(120));
                return;
            }
            let deadline = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() + 60_000;
            let headers = [
                ("lambda-runtime-aws-request-id", "request-1".to_string()),
                ("lambda-runtime-deadline-ms", deadline.to_string()),
                ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:eu-west-1:123456789012:function:thaw-test".to_string()),
                ("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000".to_string()),
            ];
            respond(&mut writer, "200 OK", &headers, &event);
        } else if method == "POST" && (path.ends_with("/error") || path.ends_with("/response")) {
            respond(&mut writer, "202 Accepted", &[], b"{}");
            let kind = if path.ends_with("/error") { "error" } else { "response" };
            let _ = results.send(format!("{kind}: {}", String::from_utf8_lossy(&body)));
        } else {
            respond(&mut writer, "404 Not Found", &[], b"{}");
        }
    }
}

/// Run the Lambda `binary` (function name `function`) on the JSON `event`
/// with no configuration anywhere, and return what it posted: `error: <body>`
/// or `response: <body>`.
fn invoke(binary: &str, function: &str, event: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the Runtime API");
    let address = listener.local_addr().expect("its address");
    let (results, received) = mpsc::channel();
    let (event, handed_out) = (Arc::new(event.as_bytes().to_vec()), Arc::new(AtomicBool::new(false)));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (event, handed_out, results) = (event.clone(), handed_out.clone(), results.clone());
            std::thread::spawn(move || serve_connection(stream, event, handed_out, results));
        }
    });
    let mut child = std::process::Command::new(binary)
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "test")
        // No configuration: a malformed event must be refused before the configuration is read.
        .env("THAW_CONFIG_URI", "/nonexistent/thaw-config.json")
        .env_remove("THAW_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {binary}: {e}"));
    let result = received.recv_timeout(Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    result.unwrap_or_else(|_| panic!("{function} posted no result within 60 s"))
}

/// Assert that Lambda `function` (its binary at `binary`) answers each of
/// `events` with the error type `ConfigInvalid` (never retried by the state
/// machine) and a message naming the function and the `expected` request type.
pub fn assert_malformed_events_are_config_invalid(binary: &str, function: &str, expected: &str, events: &[&str]) {
    let wrong: Vec<String> = events
        .iter()
        .map(|event| (event, invoke(binary, function, event)))
        .filter(|(_, posted)| {
            !(posted.starts_with("error: ")
                && posted.contains(r#""errorType":"ConfigInvalid""#)
                && posted.contains(&format!("the {function} Lambda's event is not a valid {expected}")))
        })
        .map(|(event, posted)| format!("{event} → {posted}"))
        .collect();
    assert!(wrong.is_empty(), "{function}: malformed events not answered with ConfigInvalid naming {expected}:\n{}", wrong.join("\n"));
}
