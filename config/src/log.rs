//! `[log]`: how much the agent logs, and where.

use crate::reader::{Ctx, Table};

pub(crate) const KEYS: &[&str] = &["level", "format"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Log {
    pub level: LogLevel,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The `tracing` filter spelling (`"info"`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// The journal when running under systemd, else text on stderr.
    #[default]
    Auto,
    /// Human-readable lines on stderr.
    Text,
    /// One JSON object per line on stderr.
    Json,
}

pub(crate) fn read(ctx: &mut Ctx<'_>, table: Table<'_, '_>) -> Log {
    let level = table
        .field("level")
        .and_then(|f| {
            f.choice(
                ctx,
                &[
                    ("error", LogLevel::Error),
                    ("warn", LogLevel::Warn),
                    ("info", LogLevel::Info),
                    ("debug", LogLevel::Debug),
                    ("trace", LogLevel::Trace),
                ],
            )
        })
        .unwrap_or_default();
    let format = table
        .field("format")
        .and_then(|f| {
            f.choice(
                ctx,
                &[
                    ("auto", LogFormat::Auto),
                    ("text", LogFormat::Text),
                    ("json", LogFormat::Json),
                ],
            )
        })
        .unwrap_or_default();
    table.finish(ctx);
    Log { level, format }
}
