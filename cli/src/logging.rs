//! runc-style logging: `--log FILE` gets logrus-style text lines or JSON lines
//! (`{"level":"error","msg":"...","time":"..."}`, what containerd's runc shim and
//! conmon read back). Without `--log`, warnings go to stderr (everything with
//! `--debug`). The final error is printed to stderr by `main` in any case.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;

use anyhow::{Context, Result};

use crate::{Cli, LogFormat};

struct Logger {
    file: Option<Mutex<File>>,
    format: LogFormat,
    level: log::LevelFilter,
}

fn level_name(l: log::Level) -> &'static str {
    match l {
        log::Level::Error => "error",
        log::Level::Warn => "warning",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    }
}

/// One log line in the given format.
pub fn format_line(format: LogFormat, level: log::Level, msg: &str, time: &str) -> String {
    match format {
        LogFormat::Json => serde_json::json!({
            "level": level_name(level),
            "msg": msg,
            "time": time,
        })
        .to_string(),
        LogFormat::Text => format!("time={time:?} level={} msg={msg:?}", level_name(level)),
    }
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let line = format_line(
            self.format,
            r.level(),
            &r.args().to_string(),
            &crate::time::now_rfc3339(),
        );
        match &self.file {
            Some(f) => {
                if let Ok(mut f) = f.lock() {
                    let _ = writeln!(f, "{line}");
                }
            }
            // The final error is printed by main, plainly.
            None if r.level() == log::Level::Error => {}
            None => eprintln!("{line}"),
        }
    }

    fn flush(&self) {
        if let Some(f) = &self.file {
            if let Ok(mut f) = f.lock() {
                let _ = f.flush();
            }
        }
    }
}

pub fn init(cli: &Cli) -> Result<()> {
    let file = match &cli.log {
        Some(p) => Some(Mutex::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("open log file {}", p.display()))?,
        )),
        None => None,
    };
    let level = match (cli.debug, file.is_some()) {
        (true, _) => log::LevelFilter::Debug,
        (false, true) => log::LevelFilter::Info,
        (false, false) => log::LevelFilter::Warn,
    };
    let logger = Logger {
        file,
        format: cli.log_format,
        level,
    };
    log::set_boxed_logger(Box::new(logger)).context("install logger")?;
    log::set_max_level(level);
    Ok(())
}

pub fn flush() {
    log::logger().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_is_runc_shaped() {
        let l = format_line(
            LogFormat::Json,
            log::Level::Error,
            "container does not exist",
            "2026-01-01T00:00:00Z",
        );
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "container does not exist");
        assert_eq!(v["time"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn text_line() {
        let l = format_line(LogFormat::Text, log::Level::Warn, "a \"b\"", "t");
        assert_eq!(l, r#"time="t" level=warning msg="a \"b\"""#);
    }
}
