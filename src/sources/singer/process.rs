//! The tap subprocess: its stdout read line by line on a thread of its own (so the async
//! runtime never blocks on the pipe), its stderr forwarded to the log with the last lines kept
//! for error messages, its temporary files (config, catalog, state) removed when it ends.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// Lines of stderr kept for an error message.
const STDERR_TAIL: usize = 20;

/// What the reader thread reports.
#[derive(Debug)]
pub enum Output {
    /// One stdout line (without its newline; invalid UTF-8 replaced).
    Line(String),
    /// Stdout closed and the process ended (`None`: its status could not be read).
    Exit(Option<ExitStatus>),
}

/// A running tap.
pub struct TapProcess {
    lines: mpsc::Receiver<Output>,
    child: Arc<Mutex<Child>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// Holds the config (mode 0600), catalog and state files until the process is gone.
    _files: tempfile::TempDir,
}

impl TapProcess {
    /// Starts `argv` (program first). `secrets` are masked in the forwarded stderr.
    pub fn spawn(
        argv: &[OsString],
        files: tempfile::TempDir,
        connection: &str,
        tap: &str,
        secrets: Vec<String>,
    ) -> std::io::Result<Self> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| std::io::Error::other("the command is empty"))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let stderr_pipe = child
            .stderr
            .take()
            .ok_or_else(|| std::io::Error::other("no stderr"))?;
        let child = Arc::new(Mutex::new(child));
        let stderr = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let stderr_thread = {
            let (tail, connection, tap) = (stderr.clone(), connection.to_string(), tap.to_string());
            std::thread::spawn(move || {
                forward_stderr(stderr_pipe, &tail, &connection, &tap, &secrets)
            })
        };
        let (tx, rx) = mpsc::channel(1024);
        {
            let child = child.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let line = String::from_utf8_lossy(&buf)
                                .trim_end_matches(['\n', '\r'])
                                .to_string();
                            if tx.blocking_send(Output::Line(line)).is_err() {
                                // The reader went away: stop the tap.
                                let mut c = child.lock().unwrap_or_else(|p| p.into_inner());
                                let _ = c.kill();
                                let _ = c.wait();
                                return;
                            }
                        }
                    }
                }
                let status = child.lock().unwrap_or_else(|p| p.into_inner()).wait().ok();
                // All of stderr is in the tail before the exit is reported.
                let _ = stderr_thread.join();
                let _ = tx.blocking_send(Output::Exit(status));
            });
        }
        Ok(TapProcess {
            lines: rx,
            child,
            stderr,
            _files: files,
        })
    }

    /// The next stdout line or the exit; `None` after the exit was reported.
    pub async fn next(&mut self) -> Option<Output> {
        self.lines.recv().await
    }

    /// The last lines the tap wrote to stderr.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

impl Drop for TapProcess {
    fn drop(&mut self) {
        // A run abandoned midway (a failure, the sync dropped) must not leave the tap running.
        if let Ok(mut c) = self.child.try_lock()
            && matches!(c.try_wait(), Ok(None))
        {
            let _ = c.kill();
        }
    }
}

fn forward_stderr(
    pipe: impl Read,
    tail: &Mutex<VecDeque<String>>,
    connection: &str,
    tap: &str,
    secrets: &[String],
) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut line = String::from_utf8_lossy(&buf)
            .trim_end_matches(['\n', '\r'])
            .to_string();
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            line = line.replace(s.as_str(), "***");
        }
        if line.trim().is_empty() {
            continue;
        }
        let upper = line.to_ascii_uppercase();
        if ["ERROR", "CRITICAL", "FATAL", "TRACEBACK", "WARN"]
            .iter()
            .any(|w| upper.contains(w))
        {
            tracing::warn!(connection, tap, line = %line, "tap stderr");
        } else {
            tracing::debug!(connection, tap, line = %line, "tap stderr");
        }
        let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
        if t.len() == STDERR_TAIL {
            t.pop_front();
        }
        t.push_back(line);
    }
}
