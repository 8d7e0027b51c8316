//! A spinner on stderr while `run` waits for a busy lock, shown only when
//! stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use tokio::task::JoinHandle;

const FRAMES: &[char] = &['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// A running spinner; stops and clears its line when dropped.
pub struct Spinner(Option<JoinHandle<()>>);

impl Spinner {
    /// Starts spinning with `message` if stderr is a terminal.
    pub fn start(message: String) -> Spinner {
        if !std::io::stderr().is_terminal() {
            return Spinner(None);
        }
        Spinner(Some(tokio::spawn(async move {
            // A lock that is free is taken at once: no flicker.
            tokio::time::sleep(Duration::from_millis(300)).await;
            for frame in FRAMES.iter().cycle() {
                eprint!("\r{frame} {message}");
                let _ = std::io::stderr().flush();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })))
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }
}
