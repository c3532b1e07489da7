//! The story: one event per line, plain text, each prefixed with the time
//! since the demo started (`[00:03.2]`), so a reader sees both the order
//! and the pace of what happened (how long the outage lasted, how quickly
//! the backlog drained).

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

/// Writes the story's lines to a sink (stdout for the command).
pub struct Narrator {
    started: Instant,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Narrator {
    pub fn new(out: Box<dyn Write + Send>) -> Narrator {
        Narrator {
            started: Instant::now(),
            out: Mutex::new(out),
        }
    }

    /// Tells to stdout.
    pub fn stdout() -> Narrator {
        Narrator::new(Box::new(std::io::stdout()))
    }

    /// One event.
    pub fn say(&self, line: &str) {
        let elapsed = self.started.elapsed();
        let secs = elapsed.as_secs();
        let tenths = elapsed.subsec_millis() / 100;
        self.write(&format!(
            "[{:02}:{:02}.{tenths}] {line}\n",
            secs / 60,
            secs % 60
        ));
    }

    /// The start of an act of the day.
    pub fn act(&self, title: &str) {
        self.write(&format!("\n== {title} ==\n"));
    }

    /// A line without the clock (the summary's table).
    pub fn plain(&self, line: &str) {
        self.write(&format!("{line}\n"));
    }

    fn write(&self, text: &str) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // A closed stdout (e.g. `| head`) must not stop the demo from
        // shutting everything down cleanly: the story is lost, not the state.
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}
