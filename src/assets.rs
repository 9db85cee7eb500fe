//! Files built into the binary, so that `parkbot` works from any directory:
//! the default configuration, the demo knowledge and the dialogs. A file on
//! disk always wins; the built-in copy is used only where none exists.

use std::path::Path;

pub const BOT_TOML: &str = include_str!("../dialogs/bot.toml");
pub const PARK_TOML: &str = include_str!("../data/park.toml");
pub const SIGNUP_TOML: &str = include_str!("../dialogs/signup.toml");
pub const INQUIRY_TOML: &str = include_str!("../dialogs/inquiry.toml");
pub const MY_REGISTRATIONS_TOML: &str = include_str!("../dialogs/my_registrations.toml");

/// The built-in knowledge files, by the path the default configuration uses.
const KNOWLEDGE: &[(&str, &str)] = &[("data/park.toml", PARK_TOML)];

/// The built-in dialog folder: (file name, text).
pub const DIALOGS: &[(&str, &str)] = &[
    ("bot.toml", BOT_TOML),
    ("inquiry.toml", INQUIRY_TOML),
    ("my_registrations.toml", MY_REGISTRATIONS_TOML),
    ("signup.toml", SIGNUP_TOML),
];

/// The built-in copy of a knowledge file, for a path that names a built-in
/// file and does not exist on disk.
pub fn builtin_knowledge(path: &Path) -> Option<&'static str> {
    if path.exists() {
        return None;
    }
    KNOWLEDGE
        .iter()
        .find(|(p, _)| Path::new(p) == path)
        .map(|(_, text)| *text)
}

/// The files of a dialog folder: from disk when it exists, else built in.
/// Returns (display name, text) pairs sorted by name.
pub fn dialog_files(dir: &Path) -> std::io::Result<Vec<(String, String)>> {
    if !dir.exists() {
        return Ok(DIALOGS
            .iter()
            .map(|(n, t)| (format!("(built-in) dialogs/{n}"), t.to_string()))
            .collect());
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            files.push((path.display().to_string(), std::fs::read_to_string(&path)?));
        }
    }
    files.sort();
    Ok(files)
}
