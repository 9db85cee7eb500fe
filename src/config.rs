//! Configuration: one typed struct, loaded once from the embedded default, a
//! file, then `PARKBOT_<SECTION>__<KEY>` environment overrides, and validated.
//!
//! The embedded `config/default.toml` is also the schema: a key it does not
//! hold is unknown, and its value's type is the only type accepted.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::{Table, Value};

/// The embedded default configuration (and schema).
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

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
    /// Folder of dialog definitions; the built-in ones when it does not exist.
    pub dir: PathBuf,
    /// Minutes of silence after which a dialog in progress expires.
    pub timeout_minutes: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerConfig {
    pub listen: String,
}

#[derive(Clone, Deserialize)]
pub struct WechatConfig {
    pub enabled: bool,
    pub token: String,
    pub app_id: String,
    pub app_secret: String,
    pub encoding_aes_key: String,
    pub api_base: String,
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
        if let Some((path, text)) = file {
            let user: Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
                source_name: path.display().to_string(),
                message: e.to_string().trim_end().replace('\n', " "),
            })?;
            overlay(&schema, &user, "", &mut merged, &mut problems);
        }
        apply_env(&schema, env, &mut merged, &mut problems);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid { origin, problems });
        }
        let mut config: Config =
            Value::Table(merged)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    origin: origin.clone(),
                    problems: vec![e.message().to_string()],
                })?;
        config.source = match file {
            Some((p, _)) => Source::File(p.to_path_buf()),
            None => Source::Embedded,
        };
        let problems = config.validate();
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
        if self.dialogs.timeout_minutes == 0 {
            p.push("`dialogs.timeout_minutes` must be at least 1".into());
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
            if self.telegram.webhook_secret.is_empty() {
                p.push("`telegram.webhook_secret` must be set in webhook mode".into());
            }
            if !self.telegram.webhook_url.starts_with("https://") {
                p.push("`telegram.webhook_url` must be an https:// URL in webhook mode".into());
            }
        }
        for m in &self.staff.members {
            if crate::bot::Identity::parse(m).is_none() {
                p.push(format!(
                    "`staff.members` entry {m:?} is not an identity like \"telegram:123\" or \"console:admin\""
                ));
            }
        }
        for (key, v) in [
            ("announce.telegram_per_second", self.announce.telegram_per_second),
            ("announce.wechat_per_second", self.announce.wechat_per_second),
            ("announce.max_attempts", self.announce.max_attempts),
        ] {
            if v == 0 {
                p.push(format!("`{key}` must be at least 1"));
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

/// Copies `user` over `merged`, checking every key and type against `schema`.
fn overlay(schema: &Table, user: &Table, prefix: &str, merged: &mut Table, problems: &mut Vec<String>) {
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
            (Value::Table(s), Value::Table(u)) => {
                if let Some(Value::Table(m)) = merged.get_mut(key) {
                    overlay(s, u, &path, m, problems);
                }
            }
            (Value::Array(_), Value::Array(items)) => {
                if items.iter().all(|i| i.is_str()) {
                    merged.insert(key.clone(), value.clone());
                } else {
                    problems.push(format!("`{path}` must be a list of strings"));
                }
            }
            (e, v) if std::mem::discriminant(e) == std::mem::discriminant(v) => {
                if let Value::Integer(n) = v
                    && *n < 0
                {
                    problems.push(format!("`{path}` must not be negative"));
                } else {
                    merged.insert(key.clone(), value.clone());
                }
            }
            (e, v) => problems.push(format!("`{path}` must be {}, found {}", type_name(e), type_name(v))),
        }
    }
}

/// Applies `PARKBOT_<SECTION>__<KEY>=value` pairs; other variables are ignored.
fn apply_env<I>(schema: &Table, env: I, merged: &mut Table, problems: &mut Vec<String>)
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
        let value = match env_value(expected, &raw) {
            Ok(v) => v,
            Err(what) => {
                problems.push(format!("`{section}.{key}` (from ${name}) must be {what}"));
                continue;
            }
        };
        if let Some(Value::Table(t)) = merged.get_mut(&section) {
            t.insert(key, value);
        }
    }
}

/// Reads an environment string as the type the schema wants.
fn env_value(expected: &Value, raw: &str) -> Result<Value, &'static str> {
    let raw = raw.trim();
    match expected {
        Value::String(_) => Ok(Value::String(raw.to_string())),
        Value::Integer(_) => raw
            .parse::<u32>()
            .map(|n| Value::Integer(n.into()))
            .map_err(|_| "a whole number"),
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
        assert!(e.contains("`announce.wechat_per_second` must be at least 1"), "{e}");
        let e = load("[dialogs]\ntimeout_minutes = -5\n").unwrap_err().to_string();
        assert!(e.contains("`dialogs.timeout_minutes` must not be negative"), "{e}");
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
    fn secrets_never_show_in_debug() {
        let env = vec![("PARKBOT_WECHAT__APP_SECRET".to_string(), "s3cr3t-value".to_string())];
        let c = Config::default_with_env(env).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t-value"));
        assert!(shown.contains("<set>"));
    }
}
