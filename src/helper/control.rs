//! The helper's control socket: a unix stream socket under the lab's runtime directory,
//! one JSON request and one JSON reply per connection, each a line. cloonix reads a
//! helper's settings and counters through it and changes an a2b's settings live.

use crate::model::Impairment;
use crate::status::{A2bStatus, C2cStatus};
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

/// An a2b's settings, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct A2bSettings {
    pub a_to_b: Impairment,
    pub b_to_a: Impairment,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Request {
    /// Settings and counters.
    Get,
    /// New settings for an a2b, in force from the next frame.
    Set(A2bSettings),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a2b: Option<A2bStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c2c: Option<C2cStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Answers requests on `path` with `handle`, one connection at a time, on a thread of its
/// own. A socket file left by an earlier helper is replaced.
pub fn serve(
    path: &Path,
    handle: impl Fn(Request) -> Reply + Send + 'static,
) -> io::Result<std::thread::JoinHandle<()>> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    Ok(std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
            let mut line = String::new();
            if BufReader::new(&conn).read_line(&mut line).is_err() {
                continue;
            }
            let reply = match serde_json::from_str::<Request>(&line) {
                Ok(req) => handle(req),
                Err(e) => Reply {
                    error: Some(format!("bad request: {e}")),
                    ..Reply::default()
                },
            };
            let mut text = serde_json::to_string(&reply).expect("replies serialize");
            text.push('\n');
            let _ = conn.write_all(text.as_bytes());
        }
    }))
}

/// Sends `req` to the helper listening on `path`; its reply.
pub fn call(path: &Path, req: &Request, timeout: Duration) -> io::Result<Reply> {
    let mut conn = UnixStream::connect(path)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    let mut text = serde_json::to_string(req).expect("requests serialize");
    text.push('\n');
    conn.write_all(text.as_bytes())?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    let reply: Reply = serde_json::from_str(&line).map_err(io::Error::other)?;
    match reply.error {
        Some(e) => Err(io::Error::other(e)),
        None => Ok(reply),
    }
}
