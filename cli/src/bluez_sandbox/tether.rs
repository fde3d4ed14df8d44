//! Child processes that stop with `sandbox up`, even when it is killed with SIGKILL.
//!
//! The child's stdin is a pipe `sandbox up` holds open and never writes to. It reaches end of
//! file when `sandbox up` drops it (a normal stop) or dies (the kernel closes it): tools that
//! cannot watch their stdin run under `sh`, which waits for that end of file and then stops the
//! tool with SIGTERM; `fieldlink sandbox agent --tether` watches its stdin itself.

use std::{
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant},
};

/// `sh -c` script: run the tool in the background (stdin /dev/null), wait for end of file on our
/// stdin, then stop the tool and reap it.
const SHELL: &str =
    r#""$@" </dev/null & tool=$!; cat >/dev/null; kill "$tool" 2>/dev/null; wait "$tool""#;

/// How long a stopped child may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A child tethered to this process through its stdin.
pub struct Tethered {
    child: Child,
    tether: Option<ChildStdin>,
}

impl Tethered {
    /// Runs `program args…` under `sh`, which stops it with SIGTERM when this process lets go.
    /// `configure` sets its environment and output.
    pub fn shell(
        program: &str,
        args: &[String],
        configure: impl FnOnce(&mut Command),
    ) -> std::io::Result<Self> {
        let mut command = Command::new("sh");
        command
            .args(["-c", SHELL, "sh", program])
            .args(args)
            .stdin(Stdio::piped());
        configure(&mut command);
        Self::spawn(command)
    }

    /// Spawns `command` (which must watch its stdin) with the tether as its stdin.
    pub fn spawn(mut command: Command) -> std::io::Result<Self> {
        let mut child = command.stdin(Stdio::piped()).spawn()?;
        let tether = child.stdin.take();
        Ok(Self { child, tether })
    }

    /// The process id (`sh`'s for [`shell`](Self::shell)).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child's stdout, if piped.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Lets go of the tether and waits briefly for the child to exit, then kills it.
    pub fn stop(&mut self) {
        drop(self.tether.take());
        let started = Instant::now();
        while started.elapsed() < STOP_GRACE {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills it at once (SIGKILL), as a power cut would.
    pub fn kill(&mut self) {
        drop(self.tether.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Tethered {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `sandbox agent --tether`: exits the process when stdin reaches end of file (`sandbox up` let
/// go or died). Like a power cut: the agent's store keeps what it last saved.
pub fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        tracing::info!("sandbox up is gone: the device agent stops");
        std::process::exit(0);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tethered_tool_stops_when_the_tether_is_released() {
        let mut sleeper = Tethered::shell("sleep", &["30".to_owned()], |command| {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        })
        .expect("sh and sleep exist");
        assert!(sleeper.running());
        let started = Instant::now();
        sleeper.stop();
        assert!(!sleeper.running());
        assert!(started.elapsed() < STOP_GRACE, "{:?}", started.elapsed());
    }
}
