//! Configuration: one typed struct, loaded once from the embedded default, a
//! file, then `PARKBOT_<SECTION>__<KEY>` environment overrides, and validated.
//!
//! The embedded `config/default.toml` is also the schema: a key it does not
//! hold is unknown, and its value's type is the only type accepted. The one
//! exception is an open table ([`OPEN_TABLES`], e.g. `[wechat.menu]`), whose
//! keys are the user's own names and whose values are strings.
//!
//! Every integer key has an allowed range ([`RANGES`]); a value outside it,
//! from the file or the environment, is an error that names the key and the
//! range.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::{Table, Value};

/// The embedded default configuration (and schema).
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Tables whose keys are the user's own names (values are strings).
pub const OPEN_TABLES: &[&str] = &["wechat.menu"];

/// The dialog folder used when none is set, with a built-in fallback.
pub const DEFAULT_DIALOGS_DIR: &str = "dialogs";

/// The allowed range of every integer key: (key, min, max), inclusive.
pub const RANGES: &[(&str, i64, i64)] = &[
    ("dialogs.timeout_minutes", 1, 10_080),
    ("server.messages_per_minute", 0, 100_000),
    ("server.max_message_chars", 1, 100_000),
    ("server.retry_window_minutes", 1, 1_440),
    ("server.new_sessions_per_10_minutes", 0, 100_000),
    ("wechat.max_timestamp_skew_secs", 0, 86_400),
    ("wechat.reply_budget_ms", 100, 4_800),
    ("announce.telegram_per_second", 1, 100_000),
    ("announce.wechat_per_second", 1, 100_000),
    ("announce.max_attempts", 1, 100),
    ("announce.remind_before_hours", 0, 720),
    ("announce.keep_days", 1, 3_650),
];

/// The problem with `value` for the integer key `key`, if it is out of its
/// range (a key without a range has none).
fn range_problem(key: &str, value: impl Into<i128>) -> Option<String> {
    let &(_, min, max) = RANGES.iter().find(|(k, _, _)| *k == key)?;
    let value = value.into();
    (!(i128::from(min)..=i128::from(max)).contains(&value))
        .then(|| format!("`{key}` = {value} is out of range: allowed {min}..={max}"))
}

/// Where the configuration came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Embedded,
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Embedded => f.write_str("built-in config/default.toml"),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{source_name}: {message}")]
    Syntax { source_name: String, message: String },
    #[error("{origin}: {problems}", problems = .problems.join("; "))]
    Invalid { origin: String, problems: Vec<String> },
}

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub store: StoreConfig,
    pub knowledge: KnowledgeConfig,
    pub dialogs: DialogsConfig,
    pub server: ServerConfig,
    pub wechat: WechatConfig,
    pub telegram: TelegramConfig,
    pub staff: StaffConfig,
    pub announce: AnnounceConfig,
    pub log: LogConfig,
    /// Where the file part came from (not a key).
    #[serde(skip, default = "embedded")]
    pub source: Source,
}

fn embedded() -> Source {
    Source::Embedded
}

#[derive(Debug, Clone, Deserialize)]
pub struct StoreConfig {
    /// The redb file; one process holds it at a time.
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KnowledgeConfig {
    /// Knowledge files imported into a store that never held knowledge.
    pub seed: Vec<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DialogsConfig {
    /// Folder of dialog definitions. The built-in dialogs are used when it
    /// does not exist, unless it was set explicitly (see `dir_explicit`).
    pub dir: PathBuf,
    /// Minutes of silence after which a dialog in progress expires.
    pub timeout_minutes: u64,
    /// `dir` was set by the file or the environment to another folder than
    /// the default `dialogs`: it must then exist (not a key).
    #[serde(skip)]
    pub dir_explicit: bool,
}

impl DialogsConfig {
    /// The built-in dialogs (a folder that does not exist, not explicit),
    /// with the default timeout: for tools and benchmarks.
    pub fn builtin() -> DialogsConfig {
        DialogsConfig {
            dir: PathBuf::from("(built-in)"),
            timeout_minutes: 30,
            dir_explicit: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerConfig {
    pub listen: String,
    /// Messages a minute per identity; 0 is no limit.
    pub messages_per_minute: u32,
    /// Longer messages are refused politely, on every channel.
    pub max_message_chars: u32,
    /// How long a platform message id is remembered (retries applied once).
    pub retry_window_minutes: u32,
    /// New web chat sessions per client address per 10 minutes; 0 = no limit.
    pub new_sessions_per_10_minutes: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for the
    /// per-address limit); anyone else's header is ignored.
    pub trusted_proxies: Vec<String>,
}

#[derive(Clone, Deserialize)]
pub struct WechatConfig {
    pub enabled: bool,
    pub token: String,
    pub app_id: String,
    pub app_secret: String,
    pub encoding_aes_key: String,
    pub api_base: String,
    /// Past this, reply "success" and send the answer through the
    /// customer-service API.
    pub reply_budget_ms: u32,
    /// CLICK menu keys -> the message each stands for.
    pub menu: BTreeMap<String, String>,
    /// Pushes whose signed timestamp is further than this from now are
    /// refused (a signature seen once cannot be replayed later); 0 = off.
    pub max_timestamp_skew_secs: u32,
    /// With an AES key: refuse plaintext pushes (no signature covers a
    /// plaintext body).
    pub require_safe_mode: bool,
}

#[derive(Clone, Deserialize)]
pub struct TelegramConfig {
    pub enabled: bool,
    pub token: String,
    pub api_url: String,
    pub mode: String,
    pub webhook_url: String,
    pub webhook_secret: String,
}

#[derive(Clone, Deserialize)]
pub struct StaffConfig {
    /// Identities allowed to announce and export.
    pub members: Vec<String>,
    pub admin_token: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AnnounceConfig {
    pub telegram_per_second: u32,
    pub wechat_per_second: u32,
    pub max_attempts: u32,
    /// Event reminders to confirmed registrants this many hours before; 0 is off.
    pub remind_before_hours: u32,
    /// Finished outbox records (sent, failed, cancelled) are pruned after this many days.
    pub keep_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogConfig {
    pub format: String,
}

/// Secrets are shown as set or not, never in clear.
fn secret(s: &str) -> &'static str {
    if s.is_empty() { "<empty>" } else { "<set>" }
}

impl fmt::Debug for WechatConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatConfig")
            .field("enabled", &self.enabled)
            .field("token", &secret(&self.token))
            .field("app_id", &self.app_id)
            .field("app_secret", &secret(&self.app_secret))
            .field("encoding_aes_key", &secret(&self.encoding_aes_key))
            .field("api_base", &self.api_base)
            .field("reply_budget_ms", &self.reply_budget_ms)
            .field("menu", &self.menu)
            .finish()
    }
}

impl fmt::Debug for TelegramConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramConfig")
            .field("enabled", &self.enabled)
            .field("token", &secret(&self.token))
            .field("api_url", &self.api_url)
            .field("mode", &self.mode)
            .field("webhook_url", &self.webhook_url)
            .field("webhook_secret", &secret(&self.webhook_secret))
            .finish()
    }
}

impl fmt::Debug for StaffConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaffConfig")
            .field("members", &self.members)
            .field("admin_token", &secret(&self.admin_token))
            .finish()
    }
}

impl Config {
    /// The embedded default with environment overrides only.
    pub fn default_with_env<I>(env: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        Self::from_parts(None, env)
    }

    /// Loads `file` (or the embedded default when `None`) over the defaults,
    /// then applies `PARKBOT_<SECTION>__<KEY>` pairs from `env`.
    pub fn load<I>(file: Option<&Path>, env: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let text = match file {
            Some(path) => Some((
                path.to_path_buf(),
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?,
            )),
            None => None,
        };
        Self::from_parts(text.as_ref().map(|(p, t)| (p.as_path(), t.as_str())), env)
    }

    /// Parses a configuration from text (`origin` names it in messages).
    pub fn from_parts<I>(file: Option<(&Path, &str)>, env: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let schema: Table = DEFAULT_TOML.parse().expect("embedded default config parses");
        let mut merged = schema.clone();
        let origin = file
            .map(|(p, _)| p.display().to_string())
            .unwrap_or_else(|| Source::Embedded.to_string());
        let mut problems = Vec::new();
        // Keys the file or the environment set.
        let mut set = Vec::new();
        if let Some((path, text)) = file {
            let user: Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
                source_name: path.display().to_string(),
                message: e.to_string().trim_end().replace('\n', " "),
            })?;
            overlay(&schema, &user, "", &mut merged, &mut problems, &mut set);
        }
        apply_env(&schema, env, &mut merged, &mut problems, &mut set);
        // Out-of-range integers are reported here, and replaced by their
        // default so that the typed fields can hold them and every other
        // problem is still found.
        for &(key, _, _) in RANGES {
            let (section, name) = key.split_once('.').expect("range keys are section.key");
            let default = schema[section][name].clone();
            if let Some(Value::Table(t)) = merged.get_mut(section)
                && let Some(Value::Integer(n)) = t.get(name)
                && let Some(problem) = range_problem(key, *n)
            {
                problems.push(problem);
                t.insert(name.to_string(), default);
            }
        }
        let mut config: Config = match Value::Table(merged).try_into() {
            Ok(c) => c,
            Err(e) => {
                problems.push(e.message().to_string());
                return Err(ConfigError::Invalid { origin, problems });
            }
        };
        config.source = match file {
            Some((p, _)) => Source::File(p.to_path_buf()),
            None => Source::Embedded,
        };
        config.dialogs.dir_explicit =
            set.iter().any(|k| k == "dialogs.dir") && config.dialogs.dir != Path::new(DEFAULT_DIALOGS_DIR);
        problems.extend(config.validate());
        if !problems.is_empty() {
            return Err(ConfigError::Invalid { origin, problems });
        }
        Ok(config)
    }

    /// Impossible values, each naming its key.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.store.path.as_os_str().is_empty() {
            p.push("`store.path` must not be empty".into());
        }
        for (key, value) in self.integers() {
            p.extend(range_problem(key, value));
        }
        if self.server.listen.parse::<SocketAddr>().is_err() {
            p.push(format!(
                "`server.listen` = {:?} is not an address like 127.0.0.1:8080",
                self.server.listen
            ));
        }
        let aes = &self.wechat.encoding_aes_key;
        if !aes.is_empty() && (aes.chars().count() != 43 || !aes.chars().all(|c| c.is_ascii_alphanumeric())) {
            p.push(format!(
                "`wechat.encoding_aes_key` must be 43 letters and digits (found {} characters)",
                aes.chars().count()
            ));
        }
        if self.wechat.enabled && self.wechat.token.is_empty() {
            p.push("`wechat.token` must be set when `wechat.enabled` is true".into());
        }
        for (key, url) in [
            ("wechat.api_base", &self.wechat.api_base),
            ("telegram.api_url", &self.telegram.api_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                p.push(format!("`{key}` = {url:?} must be an http:// or https:// URL"));
            }
        }
        if !matches!(self.telegram.mode.as_str(), "polling" | "webhook") {
            p.push(format!(
                "`telegram.mode` = {:?} must be \"polling\" or \"webhook\"",
                self.telegram.mode
            ));
        }
        if self.telegram.enabled && self.telegram.token.is_empty() {
            p.push("`telegram.token` must be set when `telegram.enabled` is true".into());
        }
        if self.telegram.enabled && self.telegram.mode == "webhook" {
            let secret = &self.telegram.webhook_secret;
            if secret.is_empty() {
                p.push("`telegram.webhook_secret` must be set in webhook mode".into());
            } else if secret.len() > 256
                || !secret
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                p.push("`telegram.webhook_secret` must be 1 to 256 of A-Z, a-z, 0-9, _ and - (Telegram's rule)".into());
            }
            if !self.telegram.webhook_url.starts_with("https://") {
                p.push("`telegram.webhook_url` must be an https:// URL in webhook mode".into());
            }
        }
        for a in &self.server.trusted_proxies {
            if a.parse::<std::net::IpAddr>().is_err() {
                p.push(format!("`server.trusted_proxies` entry {a:?} is not an IP address"));
            }
        }
        if self.wechat.require_safe_mode && self.wechat.encoding_aes_key.is_empty() {
            p.push("`wechat.require_safe_mode` needs `wechat.encoding_aes_key`".into());
        }
        for m in &self.staff.members {
            if crate::bot::Identity::parse(m).is_none() {
                p.push(format!(
                    "`staff.members` entry {m:?} is not an identity like \"telegram:123\" or \"console:admin\""
                ));
            }
        }
        for (key, text) in &self.wechat.menu {
            if text.trim().is_empty() {
                p.push(format!("`wechat.menu.{key}` must not be empty"));
            }
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            p.push(format!(
                "`log.format` = {:?} must be \"text\" or \"json\"",
                self.log.format
            ));
        }
        p
    }

    /// Every integer key with its value, for the range checks.
    fn integers(&self) -> [(&'static str, i128); 12] {
        [
            (
                "server.new_sessions_per_10_minutes",
                self.server.new_sessions_per_10_minutes.into(),
            ),
            (
                "wechat.max_timestamp_skew_secs",
                self.wechat.max_timestamp_skew_secs.into(),
            ),
            ("dialogs.timeout_minutes", self.dialogs.timeout_minutes.into()),
            ("server.messages_per_minute", self.server.messages_per_minute.into()),
            ("server.max_message_chars", self.server.max_message_chars.into()),
            ("server.retry_window_minutes", self.server.retry_window_minutes.into()),
            ("wechat.reply_budget_ms", self.wechat.reply_budget_ms.into()),
            ("announce.telegram_per_second", self.announce.telegram_per_second.into()),
            ("announce.wechat_per_second", self.announce.wechat_per_second.into()),
            ("announce.max_attempts", self.announce.max_attempts.into()),
            ("announce.remind_before_hours", self.announce.remind_before_hours.into()),
            ("announce.keep_days", self.announce.keep_days.into()),
        ]
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "true or false",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

/// Copies `user` over `merged`, checking every key and type against `schema`;
/// records the dotted path of every key copied in `set`.
fn overlay(
    schema: &Table,
    user: &Table,
    prefix: &str,
    merged: &mut Table,
    problems: &mut Vec<String>,
    set: &mut Vec<String>,
) {
    for (key, value) in user {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let Some(expected) = schema.get(key) else {
            problems.push(format!("unknown key `{path}`"));
            continue;
        };
        match (expected, value) {
            (Value::Table(_), Value::Table(u)) if OPEN_TABLES.contains(&path.as_str()) => match open_table(u) {
                Ok(t) => {
                    merged.insert(key.clone(), Value::Table(t));
                    set.push(path);
                }
                Err(bad) => problems.extend(bad.iter().map(|k| format!("`{path}.{k}` must be a string"))),
            },
            (Value::Table(s), Value::Table(u)) => {
                if let Some(Value::Table(m)) = merged.get_mut(key) {
                    overlay(s, u, &path, m, problems, set);
                }
            }
            (Value::Array(_), Value::Array(items)) => {
                if items.iter().all(|i| i.is_str()) {
                    merged.insert(key.clone(), value.clone());
                    set.push(path);
                } else {
                    problems.push(format!("`{path}` must be a list of strings"));
                }
            }
            (e, v) if std::mem::discriminant(e) == std::mem::discriminant(v) => {
                // Integers are range-checked once everything is merged.
                merged.insert(key.clone(), value.clone());
                set.push(path);
            }
            (e, v) => problems.push(format!("`{path}` must be {}, found {}", type_name(e), type_name(v))),
        }
    }
}

/// An open table's entries, or the keys whose values are not strings.
fn open_table(user: &Table) -> Result<Table, Vec<String>> {
    let bad: Vec<String> = user
        .iter()
        .filter(|(_, v)| !v.is_str())
        .map(|(k, _)| k.clone())
        .collect();
    if bad.is_empty() { Ok(user.clone()) } else { Err(bad) }
}

/// Applies `PARKBOT_<SECTION>__<KEY>=value` pairs; other variables are ignored.
/// Records the dotted path of every key set in `set`.
fn apply_env<I>(schema: &Table, env: I, merged: &mut Table, problems: &mut Vec<String>, set: &mut Vec<String>)
where
    I: IntoIterator<Item = (String, String)>,
{
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("PARKBOT_") else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        let expected = schema.get(&section).and_then(Value::as_table).and_then(|t| t.get(&key));
        let Some(expected) = expected else {
            problems.push(format!("unknown key `{section}.{key}` (from ${name})"));
            continue;
        };
        let path = format!("{section}.{key}");
        let value = match env_value(expected, &raw, OPEN_TABLES.contains(&path.as_str())) {
            Ok(v) => v,
            Err(what) => {
                problems.push(format!("`{section}.{key}` (from ${name}) must be {what}"));
                continue;
            }
        };
        if let Some(Value::Table(t)) = merged.get_mut(&section) {
            t.insert(key, value);
            set.push(path);
        }
    }
}

/// Reads an environment string as the type the schema wants. Integers are
/// read as i64, like the file's, and range-checked afterwards; an open
/// table is an inline TOML table of strings (`{ EVENTS = "最近有什么活动" }`).
fn env_value(expected: &Value, raw: &str, open: bool) -> Result<Value, &'static str> {
    let raw = raw.trim();
    match expected {
        Value::String(_) => Ok(Value::String(raw.to_string())),
        Value::Integer(_) => raw.parse::<i64>().map(Value::Integer).map_err(|_| "a whole number"),
        Value::Table(_) if open => {
            const WANT: &str = "an inline table of strings like { KEY = \"text\" }";
            let parsed: Table = format!("v = {raw}").parse().map_err(|_| WANT)?;
            match parsed.get("v") {
                Some(Value::Table(t)) => open_table(t).map(Value::Table).map_err(|_| WANT),
                _ => Err(WANT),
            }
        }
        Value::Boolean(_) => match raw {
            "true" | "1" | "yes" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" => Ok(Value::Boolean(false)),
            _ => Err("true or false"),
        },
        Value::Array(_) => {
            // A TOML list (`["a", "b"]`) or comma-separated words.
            if raw.starts_with('[') {
                let parsed: Table = format!("v = {raw}").parse().map_err(|_| "a list of strings")?;
                match parsed.get("v") {
                    Some(Value::Array(a)) if a.iter().all(Value::is_str) => Ok(Value::Array(a.clone())),
                    _ => Err("a list of strings"),
                }
            } else {
                Ok(Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_string()))
                        .collect(),
                ))
            }
        }
        _ => Err("a value of the default's type"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_parts(Some((Path::new("test.toml"), text)), Vec::new())
    }

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::default_with_env(Vec::new()).unwrap();
        assert_eq!(c.store.path, PathBuf::from("parkbot.redb"));
        assert_eq!(c.dialogs.timeout_minutes, 30);
        assert_eq!(c.announce.max_attempts, 5);
    }

    #[test]
    fn a_file_sets_only_what_it_changes() {
        let c = load("[store]\npath = \"x.redb\"\n").unwrap();
        assert_eq!(c.store.path, PathBuf::from("x.redb"));
        assert_eq!(c.server.listen, "127.0.0.1:8080");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = load("[store]\npaht = \"x\"\n[nope]\na = 1\n").unwrap_err().to_string();
        assert!(e.contains("unknown key `store.paht`"), "{e}");
        assert!(e.contains("unknown key `nope`"), "{e}");
    }

    #[test]
    fn wrong_types_are_named() {
        let e = load("[announce]\nmax_attempts = \"five\"\n").unwrap_err().to_string();
        assert!(
            e.contains("`announce.max_attempts` must be an integer, found a string"),
            "{e}"
        );
        let e = load("[staff]\nmembers = [1]\n").unwrap_err().to_string();
        assert!(e.contains("`staff.members` must be a list of strings"), "{e}");
    }

    #[test]
    fn impossible_values_are_named() {
        let e = load("[server]\nlisten = \"nowhere\"\n[wechat]\nencoding_aes_key = \"short\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`server.listen`"), "{e}");
        assert!(e.contains("`wechat.encoding_aes_key` must be 43"), "{e}");
        let e = load("[announce]\nwechat_per_second = 0\n").unwrap_err().to_string();
        assert!(
            e.contains("`announce.wechat_per_second` = 0 is out of range: allowed 1..=1000"),
            "{e}"
        );
        let webhook = |secret: &str| {
            load(&format!(
                "[telegram]\nenabled = true\ntoken = \"1:x\"\nmode = \"webhook\"\n\
                 webhook_url = \"https://bot.example.org/telegram\"\nwebhook_secret = \"{secret}\"\n"
            ))
        };
        let e = webhook("has spaces!").unwrap_err().to_string();
        assert!(e.contains("`telegram.webhook_secret` must be 1 to 256 of"), "{e}");
        assert!(webhook("Good_secret-1").is_ok());
        let e = load("[telegram]\nmode = \"push\"\n").unwrap_err().to_string();
        assert!(e.contains("`telegram.mode`"), "{e}");
        let e = load("[dialogs]\ntimeout_minutes = -5\n").unwrap_err().to_string();
        assert!(
            e.contains("`dialogs.timeout_minutes` = -5 is out of range: allowed 1..=10080"),
            "{e}"
        );
    }

    #[test]
    fn a_huge_dialog_timeout_is_out_of_range() {
        // It used to pass, then overflow so that every dialog expired at once.
        let e = load("[dialogs]\ntimeout_minutes = 9223372036854775807\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`dialogs.timeout_minutes` = 9223372036854775807 is out of range: allowed 1..=10080"),
            "{e}"
        );
        assert!(load("[dialogs]\ntimeout_minutes = 10080\n").is_ok());
        assert!(load("[dialogs]\ntimeout_minutes = 10081\n").is_err());
    }

    #[test]
    fn every_integer_key_has_a_range_and_the_defaults_are_in_it() {
        let schema: Table = DEFAULT_TOML.parse().unwrap();
        let mut integers = Vec::new();
        for (section, table) in &schema {
            for (key, value) in table.as_table().unwrap() {
                if let Value::Integer(n) = value {
                    integers.push(format!("{section}.{key}"));
                    assert_eq!(range_problem(&format!("{section}.{key}"), *n), None);
                }
            }
        }
        let mut ranged: Vec<String> = RANGES.iter().map(|(k, _, _)| k.to_string()).collect();
        integers.sort();
        ranged.sort();
        assert_eq!(integers, ranged);
        let c = Config::default_with_env(Vec::new()).unwrap();
        assert_eq!(c.integers().map(|(k, _)| k.to_string()).len(), RANGES.len());
    }

    #[test]
    fn range_bounds_are_inclusive_and_every_bad_value_is_listed() {
        for &(key, min, max) in RANGES {
            let (section, name) = key.split_once('.').unwrap();
            for ok in [min, max] {
                assert!(load(&format!("[{section}]\n{name} = {ok}\n")).is_ok(), "{key} = {ok}");
            }
            for bad in [min - 1, max + 1, i64::MAX, i64::MIN] {
                let e = load(&format!("[{section}]\n{name} = {bad}\n")).unwrap_err().to_string();
                assert!(
                    e.contains(&format!("`{key}` = {bad} is out of range: allowed {min}..={max}")),
                    "{e}"
                );
            }
        }
        let e = load(
            "[server]\nmax_message_chars = 0\nretry_window_minutes = 1441\nlisten = \"nowhere\"\n\
             [wechat]\nreply_budget_ms = 5000\n[announce]\nmax_attempts = 101\nremind_before_hours = 721\n",
        )
        .unwrap_err()
        .to_string();
        for key in [
            "server.max_message_chars",
            "server.retry_window_minutes",
            "server.listen",
            "wechat.reply_budget_ms",
            "announce.max_attempts",
            "announce.remind_before_hours",
        ] {
            assert!(e.contains(&format!("`{key}`")), "{key} missing in {e}");
        }
    }

    #[test]
    fn validate_checks_ranges_of_a_config_built_in_code() {
        let mut c = Config::default_with_env(Vec::new()).unwrap();
        c.dialogs.timeout_minutes = u64::MAX;
        c.wechat.reply_budget_ms = 99;
        let p = c.validate().join("; ");
        assert!(
            p.contains("`dialogs.timeout_minutes` = 18446744073709551615 is out of range"),
            "{p}"
        );
        assert!(
            p.contains("`wechat.reply_budget_ms` = 99 is out of range: allowed 100..=4800"),
            "{p}"
        );
    }

    #[test]
    fn the_contract_keys_are_all_in_the_default() {
        let c = load(
            "[server]\nmessages_per_minute = 0\nmax_message_chars = 2000\nretry_window_minutes = 60\n\
             [wechat]\nreply_budget_ms = 4500\n[announce]\nremind_before_hours = 0\n",
        )
        .unwrap();
        assert_eq!(c.server.messages_per_minute, 0);
        assert_eq!(c.server.max_message_chars, 2000);
        assert_eq!(c.server.retry_window_minutes, 60);
        assert_eq!(c.wechat.reply_budget_ms, 4500);
        assert_eq!(c.announce.remind_before_hours, 0);
        let d = Config::default_with_env(Vec::new()).unwrap();
        assert_eq!(
            (
                d.server.messages_per_minute,
                d.server.max_message_chars,
                d.server.retry_window_minutes
            ),
            (20, 1000, 15)
        );
        assert_eq!(d.wechat.reply_budget_ms, 4000);
        assert!(d.wechat.menu.is_empty());
        assert_eq!(d.announce.remind_before_hours, 24);
    }

    #[test]
    fn the_wechat_menu_takes_any_key_with_a_string() {
        let c = load("[wechat.menu]\nEVENTS = \"最近有什么活动\"\nmy-key_2 = \"help\"\n").unwrap();
        assert_eq!(c.wechat.menu["EVENTS"], "最近有什么活动");
        assert_eq!(c.wechat.menu["my-key_2"], "help");
        let c = load("[wechat]\nmenu = { A = \"a\" }\n").unwrap();
        assert_eq!(c.wechat.menu.len(), 1);
        let e = load("[wechat.menu]\nEVENTS = 1\nOK = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("`wechat.menu.EVENTS` must be a string"), "{e}");
        let e = load("[wechat]\nmenu = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("`wechat.menu` must be a table, found a string"), "{e}");
        let e = load("[wechat.menu]\nEMPTY = \" \"\n").unwrap_err().to_string();
        assert!(e.contains("`wechat.menu.EMPTY` must not be empty"), "{e}");
        // Other tables stay closed.
        let e = load("[wechat.other]\nA = \"a\"\n").unwrap_err().to_string();
        assert!(e.contains("unknown key `wechat.other`"), "{e}");
        let env = vec![("PARKBOT_WECHAT__MENU".to_string(), "{ EVENTS = \"活动\" }".to_string())];
        let c = Config::default_with_env(env).unwrap();
        assert_eq!(c.wechat.menu["EVENTS"], "活动");
        let env = vec![("PARKBOT_WECHAT__MENU".to_string(), "{ EVENTS = 1 }".to_string())];
        let e = Config::default_with_env(env).unwrap_err().to_string();
        assert!(
            e.contains("`wechat.menu` (from $PARKBOT_WECHAT__MENU) must be an inline table"),
            "{e}"
        );
    }

    #[test]
    fn the_dialog_folder_is_explicit_only_when_set_to_another_folder() {
        assert!(!Config::default_with_env(Vec::new()).unwrap().dialogs.dir_explicit);
        assert!(!load("[dialogs]\ndir = \"dialogs\"\n").unwrap().dialogs.dir_explicit);
        assert!(!load("[dialogs]\ntimeout_minutes = 5\n").unwrap().dialogs.dir_explicit);
        assert!(load("[dialogs]\ndir = \"my-dialogs\"\n").unwrap().dialogs.dir_explicit);
        let env = vec![("PARKBOT_DIALOGS__DIR".to_string(), "/srv/dialogs".to_string())];
        assert!(Config::default_with_env(env).unwrap().dialogs.dir_explicit);
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let e = load("[store\npath = 1").unwrap_err().to_string();
        assert!(e.starts_with("test.toml: "), "{e}");
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn environment_overrides_by_type() {
        let env = vec![
            ("PARKBOT_WECHAT__TOKEN".to_string(), "12345".to_string()),
            ("PARKBOT_ANNOUNCE__MAX_ATTEMPTS".to_string(), "9".to_string()),
            (
                "PARKBOT_STAFF__MEMBERS".to_string(),
                "console:a, telegram:1".to_string(),
            ),
            ("PARKBOT_TELEGRAM__ENABLED".to_string(), "false".to_string()),
            ("PARKBOT_DB".to_string(), "ignored.redb".to_string()),
        ];
        let c = Config::default_with_env(env).unwrap();
        assert_eq!(c.wechat.token, "12345");
        assert_eq!(c.announce.max_attempts, 9);
        assert_eq!(c.staff.members, vec!["console:a", "telegram:1"]);
    }

    #[test]
    fn bad_environment_overrides_are_named() {
        let env = vec![
            ("PARKBOT_ANNOUNCE__MAX_ATTEMPTS".to_string(), "many".to_string()),
            ("PARKBOT_STORE__NOPE".to_string(), "x".to_string()),
        ];
        let e = Config::default_with_env(env).unwrap_err().to_string();
        assert!(
            e.contains("`announce.max_attempts` (from $PARKBOT_ANNOUNCE__MAX_ATTEMPTS) must be a whole number"),
            "{e}"
        );
        assert!(e.contains("unknown key `store.nope`"), "{e}");
    }

    #[test]
    fn environment_integers_are_range_checked_like_the_file() {
        for (value, shown) in [
            ("9223372036854775807", "9223372036854775807"),
            ("-1", "-1"),
            ("4294967296", "4294967296"),
        ] {
            let env = vec![("PARKBOT_DIALOGS__TIMEOUT_MINUTES".to_string(), value.to_string())];
            let e = Config::default_with_env(env).unwrap_err().to_string();
            assert!(
                e.contains(&format!(
                    "`dialogs.timeout_minutes` = {shown} is out of range: allowed 1..=10080"
                )),
                "{e}"
            );
        }
        let env = vec![("PARKBOT_SERVER__MESSAGES_PER_MINUTE".to_string(), " 0 ".to_string())];
        assert_eq!(Config::default_with_env(env).unwrap().server.messages_per_minute, 0);
        let env = vec![(
            "PARKBOT_DIALOGS__TIMEOUT_MINUTES".to_string(),
            "99999999999999999999".to_string(),
        )];
        let e = Config::default_with_env(env).unwrap_err().to_string();
        assert!(e.contains("must be a whole number"), "{e}");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let env = vec![("PARKBOT_WECHAT__APP_SECRET".to_string(), "s3cr3t-value".to_string())];
        let c = Config::default_with_env(env).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t-value"));
        assert!(shown.contains("<set>"));
    }
}
