//! Reading settings from environment variables: typed, each error naming its variable, and every
//! variable read recorded (so a test keeps the documented table equal to what the code reads).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// A variable that is set but cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    /// The variable's name.
    pub name: &'static str,
    /// What it was set to.
    pub value: String,
    /// Why it cannot be used.
    pub reason: String,
}

/// Typed reads of a set of variables, each error naming its variable. Public for the local
/// runner's own settings (`chat-local`), which read the same environment the same way.
pub struct Vars<'a> {
    values: &'a HashMap<String, String>,
    read: RefCell<BTreeSet<String>>,
}

impl<'a> Vars<'a> {
    /// Reads from `values`.
    pub fn new(values: &'a HashMap<String, String>) -> Self {
        Vars { values, read: RefCell::new(BTreeSet::new()) }
    }

    /// Every variable asked for so far, set or not.
    pub fn read(&self) -> Vec<String> {
        self.read.borrow().iter().cloned().collect()
    }

    /// A variable's trimmed value; unset and blank are the same.
    pub fn string(&self, name: &str) -> Option<String> {
        self.read.borrow_mut().insert(name.to_string());
        self.values.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    /// A number, if set.
    pub fn optional_number<T: std::str::FromStr>(&self, name: &'static str) -> Result<Option<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.string(name)
            .map(|v| v.parse().map_err(|e: T::Err| ConfigError { name, value: v.clone(), reason: e.to_string() }))
            .transpose()
    }

    /// A number, or `default` when unset.
    pub fn number<T: std::str::FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        Ok(self.optional_number(name)?.unwrap_or(default))
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`), or `default` when unset.
    pub fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        Ok(self.optional_flag(name)?.unwrap_or(default))
    }

    /// `true` or `false` (also `1`/`0`, `yes`/`no`), or `None` when unset: for a setting whose
    /// default depends on something else.
    pub fn optional_flag(&self, name: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.string(name).as_deref() {
            None => Ok(None),
            Some("1" | "true" | "yes") => Ok(Some(true)),
            Some("0" | "false" | "no") => Ok(Some(false)),
            Some(other) => Err(ConfigError { name, value: other.into(), reason: "expected true or false".into() }),
        }
    }

    /// Whole seconds, or `default` when unset.
    pub fn seconds(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(self.number(name, default)?))
    }
}
