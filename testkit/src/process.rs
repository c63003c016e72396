//! Child processes owned by a test, and polling with deadlines.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1, as the OS assigns it. Another process could take it before
/// it is used; callers that start servers retry with a new port when the bind fails.
///
/// # Panics
/// The OS has no free port (tests only).
#[must_use]
pub fn free_port() -> u16 {
    #[expect(
        clippy::expect_used,
        reason = "test support: no port is a broken machine"
    )]
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    #[expect(clippy::expect_used, reason = "test support")]
    listener.local_addr().expect("local address").port()
}

/// Polls `check` every few milliseconds until it returns true or `timeout` passes.
/// Returns whether it became true.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

/// Waits until something accepts TCP connections at `addr`.
pub fn wait_for_tcp(addr: SocketAddr, timeout: Duration) -> bool {
    wait_until(timeout, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
    })
}

/// A child process that is killed (by its PID, via the handle) when dropped.
#[derive(Debug)]
pub struct ChildProcess {
    child: Option<Child>,
    name: String,
}

impl ChildProcess {
    /// Starts `command` with stdin closed. Stdout and stderr are inherited so that test
    /// output shows them when a test fails.
    ///
    /// # Errors
    /// The program cannot be started.
    pub fn spawn(name: &str, mut command: Command) -> std::io::Result<Self> {
        let child = command.stdin(Stdio::null()).spawn()?;
        Ok(Self {
            child: Some(child),
            name: name.to_owned(),
        })
    }

    /// The process id.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for a graceful exit, then kills.
    /// Returns the exit status if it exited by itself.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let mut status = None;
        wait_until(timeout, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status
    }

    /// The name given at spawn, for messages.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
