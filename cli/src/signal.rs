//! Signal names and numbers as `kill` takes them (9, KILL, SIGKILL, sigkill).

use anyhow::{bail, Result};
use nix::sys::signal::Signal;

pub fn parse(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if Signal::try_from(n).is_err() && !(libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&n) {
            bail!("invalid signal: {s}");
        }
        return Ok(n);
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    match name.parse::<Signal>() {
        Ok(sig) => Ok(sig as i32),
        Err(_) => bail!("invalid signal: {s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("KILL").unwrap(), 9);
        assert_eq!(parse("SIGKILL").unwrap(), 9);
        assert_eq!(parse("sigterm").unwrap(), 15);
        assert_eq!(parse("hup").unwrap(), 1);
        assert!(parse("NOPE").is_err());
        assert!(parse("0x").is_err());
        assert!(parse("99").is_err());
    }
}
