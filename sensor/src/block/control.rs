//! The control socket of a running sensor (`--control-socket`, default
//! `/run/siem-sensor/control.sock` under the unit's `RuntimeDirectory=`):
//! `siem-sensor blocks` lists and removes blocks through it.
//!
//! A Unix stream socket created mode 0600 (the service user; root passes
//! anyway); a connection whose peer (`SO_PEERCRED`) is neither root nor the
//! sensor's own user is closed unanswered. One request per connection, one
//! JSON line each way:
//!
//! ```text
//! > {"op":"list"}
//! < {"ok":true,"mode":"on","blocks":[{"ip":"10.77.0.21","detector":"honeypot",...}],"removed":0}
//! > {"op":"remove","ip":"10.77.0.21"}      ({"op":"remove"}: every block)
//! < {"ok":true,"mode":"on","blocks":[],"removed":1}
//! ```

use std::{
    io::{self, BufRead as _, BufReader, Write as _},
    net::IpAddr,
    os::unix::fs::{FileTypeExt as _, PermissionsExt as _},
    path::Path,
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _},
    net::{UnixListener, UnixStream},
};
use tracing::{debug, warn};

use super::{
    engine::{BlockInfo, SharedBlocker},
    policy::Mode,
};

/// A request on the control socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlRequest {
    /// The blocks in force.
    List,
    /// Remove the block of `ip`, or every block when `ip` is absent.
    Remove {
        /// The address; absent: all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ip: Option<IpAddr>,
    },
}

/// The answer to a [`ControlRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlResponse {
    /// Whether the request was understood.
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `off`, `dry-run` or `on`.
    #[serde(default)]
    pub mode: String,
    /// The blocks in force (after a removal: those left).
    #[serde(default)]
    pub blocks: Vec<BlockInfo>,
    /// Blocks a `remove` ended.
    #[serde(default)]
    pub removed: usize,
}

/// Longest request line taken, bytes.
const MAX_REQUEST: u64 = 4096;
/// How long a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds the control socket at `path` (replacing a stale socket left by a
/// killed sensor; refusing to replace anything else), mode 0600.
///
/// # Errors
/// The directory is missing or not writable; `path` is not a socket.
pub fn listen(path: &Path) -> io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Answers connections on `listener` until the task is dropped.
pub async fn serve(listener: UnixListener, blocker: SharedBlocker) {
    // SAFETY: geteuid has no preconditions.
    let own = unsafe { libc::geteuid() };
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                warn!(error = %e, "control socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(c) if c.uid() == 0 || c.uid() == own => {}
            Ok(c) => {
                warn!(
                    uid = c.uid(),
                    "control socket: refused a connection of another user"
                );
                continue;
            }
            Err(e) => {
                warn!(error = %e, "control socket: no peer credentials");
                continue;
            }
        }
        let blocker = blocker.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &blocker).await {
                debug!(error = %e, "control socket: connection failed");
            }
        });
    }
}

/// Reads one request, answers it.
async fn answer(stream: UnixStream, blocker: &SharedBlocker) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST));
    tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request"))??;
    let response = match serde_json::from_str::<ControlRequest>(line.trim()) {
        Ok(request) => handle(&request, blocker),
        Err(e) => ControlResponse {
            error: Some(format!("bad request: {e}")),
            ..ControlResponse::default()
        },
    };
    let mut out = serde_json::to_vec(&response).map_err(io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// The answer to `request`.
pub fn handle(request: &ControlRequest, blocker: &SharedBlocker) -> ControlResponse {
    blocker.with(|b| {
        let removed = match request {
            ControlRequest::List => 0,
            ControlRequest::Remove { ip } => b.remove(*ip),
        };
        let mode = match b.policy().mode {
            Mode::Off => "off",
            Mode::DryRun => "dry-run",
            Mode::On => "on",
        };
        ControlResponse {
            ok: true,
            error: None,
            mode: mode.to_owned(),
            blocks: b.list(),
            removed,
        }
    })
}

/// Sends `request` to the sensor listening at `path` and returns its
/// answer (the `siem-sensor blocks` side).
///
/// # Errors
/// No sensor listens there (or its blocking is off), the connection was
/// refused (another user), or the answer is not one.
pub fn client_request(path: &Path, request: &ControlRequest) -> io::Result<ControlResponse> {
    let mut stream = std::os::unix::net::UnixStream::connect(path)?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut line = serde_json::to_vec(request).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    if answer.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the sensor closed the connection unanswered (only root and its own user may ask)",
        ));
    }
    serde_json::from_str(&answer).map_err(io::Error::other)
}
