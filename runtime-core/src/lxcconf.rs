//! The line-based liblxc configuration, built item by item.
//!
//! This is an injection boundary: every key and value is checked before it is
//! added. A newline would start a new config item and a NUL would truncate one.

use crate::error::SpecError;

/// An ordered list of liblxc config items.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LxcConfig {
    items: Vec<(String, String)>,
}

/// Reject what could escape one config line: newline, carriage return and NUL.
pub fn check_value(field: &str, value: &str) -> Result<(), SpecError> {
    if let Some(c) = value.chars().find(|c| matches!(c, '\n' | '\r' | '\0')) {
        return Err(SpecError::new(
            field,
            format!("contains a forbidden character {c:?} (newline, carriage return or NUL)"),
        ));
    }
    Ok(())
}

impl LxcConfig {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `key = value`. `field` names the spec field the value comes from, for
    /// the error.
    pub fn push(
        &mut self,
        field: &str,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), SpecError> {
        let key = key.into();
        let value = value.into();
        check_value(field, &key)?;
        if key.is_empty() || key.contains(|c: char| c.is_whitespace() || c == '=') {
            return Err(SpecError::new(
                field,
                format!("invalid lxc config key {key:?}"),
            ));
        }
        check_value(field, &value)?;
        if value != value.trim() && !value.is_empty() {
            // liblxc trims values: leading/trailing blanks would be lost silently.
            return Err(SpecError::new(
                field,
                format!("value {value:?} has leading or trailing whitespace"),
            ));
        }
        self.items.push((key, value));
        Ok(())
    }

    pub fn items(&self) -> &[(String, String)] {
        &self.items
    }

    /// All values of a key, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.items
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Remove and return the items whose key starts with `prefix`, in order.
    pub fn take_prefixed(&mut self, prefix: &str) -> Vec<(String, String)> {
        let (taken, kept) = std::mem::take(&mut self.items)
            .into_iter()
            .partition(|(k, _)| k.starts_with(prefix));
        self.items = kept;
        taken
    }

    pub fn extend(&mut self, other: LxcConfig) {
        self.items.extend(other.items);
    }

    /// The config file text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.items {
            s.push_str(k);
            s.push_str(" = ");
            s.push_str(v);
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_in_order() {
        let mut c = LxcConfig::new();
        c.push("hostname", "lxc.uts.name", "box").unwrap();
        c.push("x", "lxc.mount.auto", "").unwrap();
        assert_eq!(c.render(), "lxc.uts.name = box\nlxc.mount.auto = \n");
    }

    #[test]
    fn rejects_newline_cr_nul_in_values() {
        let mut c = LxcConfig::new();
        for bad in ["a\nlxc.hook.pre-start = /evil", "a\rb", "a\0b"] {
            let e = c
                .push("process.env[0]", "lxc.environment", bad)
                .unwrap_err();
            assert_eq!(e.field, "process.env[0]");
        }
        assert!(c.items().is_empty());
    }

    #[test]
    fn rejects_bad_keys() {
        let mut c = LxcConfig::new();
        assert!(c.push("linux.sysctl", "lxc.sysctl.a b", "1").is_err());
        assert!(c.push("linux.sysctl", "lxc.sysctl.a=b", "1").is_err());
        assert!(c.push("linux.sysctl", "lxc.sysctl.a\nb", "1").is_err());
        assert!(c.push("linux.sysctl", "", "1").is_err());
    }

    #[test]
    fn rejects_untrimmed_values() {
        let mut c = LxcConfig::new();
        assert!(c.push("hostname", "lxc.uts.name", " box").is_err());
    }
}
