//! Fault injection (`POST /admin/fault`) and the gate in front of the citizen listener.
//!
//! - `hang`: requests are accepted and never answered (until the mode changes or the origin
//!   shuts down; then they get a 503);
//! - `error`: a fast 500;
//! - `slow`: `latency_ms` added before the request is handled;
//! - `refuse`: new connections are reset at once, and open keep-alive connections are reset
//!   on their next read or write.
//!
//! The same gate refuses connections while the capacity model is down after a crash.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::capacity::CapacityModel;

/// The injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultMode {
    /// Normal service.
    #[default]
    None,
    /// Accept, never answer.
    Hang,
    /// Fast 500.
    Error,
    /// Added latency.
    Slow,
    /// Reset connections.
    Refuse,
}

/// A fault setting, as `POST /admin/fault` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// The mode.
    pub mode: FaultMode,
    /// Added latency for `slow` (default 1000 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

/// Default latency of `slow`.
pub const DEFAULT_SLOW_MS: u64 = 1000;

/// Whether the citizen listener should take connections now: the fault setting and the
/// capacity model together. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Gate {
    fault: watch::Receiver<Fault>,
    capacity: CapacityModel,
}

impl Gate {
    /// A gate over these.
    #[must_use]
    pub fn new(fault: watch::Receiver<Fault>, capacity: CapacityModel) -> Self {
        Self { fault, capacity }
    }

    /// Connections are being refused.
    #[must_use]
    pub fn refusing(&self) -> bool {
        self.fault.borrow().mode == FaultMode::Refuse || self.capacity.is_down()
    }

    /// The current fault.
    #[must_use]
    pub fn fault(&self) -> Fault {
        *self.fault.borrow()
    }

    /// Waits until the fault setting is no longer `hang`.
    pub async fn hang_ended(&self) {
        let mut rx = self.fault.clone();
        // An error means the sender is gone (shutting down): stop hanging.
        let _ = rx.wait_for(|f| f.mode != FaultMode::Hang).await;
    }

    /// The latency of `slow`.
    #[must_use]
    pub fn slow_latency(&self) -> Duration {
        Duration::from_millis(self.fault().latency_ms.unwrap_or(DEFAULT_SLOW_MS))
    }
}

/// A listener that resets connections while the gate refuses.
#[derive(Debug)]
pub struct GatedListener {
    inner: TcpListener,
    gate: Arc<Gate>,
}

impl GatedListener {
    /// Wraps a bound listener.
    #[must_use]
    pub fn new(inner: TcpListener, gate: Gate) -> Self {
        Self {
            inner,
            gate: Arc::new(gate),
        }
    }
}

impl axum::serve::Listener for GatedListener {
    type Io = GatedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    if self.gate.refusing() {
                        // Linger 0: the close sends RST, as a crashed or firewalled host does.
                        let _ = stream.set_zero_linger();
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    return (
                        GatedStream {
                            inner: stream,
                            gate: Arc::clone(&self.gate),
                        },
                        addr,
                    );
                }
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection that fails while the gate refuses, so keep-alive connections die too.
#[derive(Debug)]
pub struct GatedStream {
    inner: TcpStream,
    gate: Arc<Gate>,
}

impl GatedStream {
    fn check(&self) -> io::Result<()> {
        if self.gate.refusing() {
            let _ = self.inner.set_zero_linger();
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "origin refusing",
            ))
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for GatedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for GatedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
