//! Files built into the binary, so that `parkbot` works from any directory:
//! the default configuration, the demo knowledge, the concept lexicon and
//! the dialogs. A file on disk always wins; the built-in copy is used only
//! where none exists (for the dialogs, only when the folder is the default
//! one: a dialog folder the user configured must exist). The concept
//! lexicon is always the built-in one; a park extends it in its knowledge
//! files.

use std::path::Path;

pub const BOT_TOML: &str = include_str!("../dialogs/bot.toml");
pub const PARK_TOML: &str = include_str!("../data/park.toml");
/// The concept lexicon (see `search::concepts`).
pub const CONCEPTS_TOML: &str = include_str!("../data/concepts.toml");
/// Places people name when they ask about somewhere else (see
/// `search::Index::elsewhere`).
pub const PLACES_TXT: &str = include_str!("../data/places.txt");
pub const SIGNUP_TOML: &str = include_str!("../dialogs/signup.toml");
pub const INQUIRY_TOML: &str = include_str!("../dialogs/inquiry.toml");
pub const MY_REGISTRATIONS_TOML: &str = include_str!("../dialogs/my_registrations.toml");
pub const ANNOUNCE_TOML: &str = include_str!("../dialogs/announce.toml");

/// The built-in knowledge files, by the path the default configuration uses.
const KNOWLEDGE: &[(&str, &str)] = &[("data/park.toml", PARK_TOML)];

/// The built-in dialog folder: (file name, text).
pub const DIALOGS: &[(&str, &str)] = &[
    ("announce.toml", ANNOUNCE_TOML),
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
///
/// The built-in fallback is only for the default folder: when `explicit`
/// (the user set `[dialogs] dir`), a folder that does not exist is an
/// error, [`FolderNotFound`].
pub fn dialog_files(dir: &Path, explicit: bool) -> std::io::Result<Vec<(String, String)>> {
    if !dir.exists() {
        if explicit {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, FolderNotFound));
        }
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

/// An explicitly configured dialog folder that does not exist.
#[derive(Debug, thiserror::Error)]
#[error("folder not found")]
pub struct FolderNotFound;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_default_folder_falls_back_to_the_built_in_dialogs() {
        let files = dialog_files(Path::new("/nonexistent/parkbot-dialogs"), false).unwrap();
        assert_eq!(files.len(), DIALOGS.len());
        assert!(files[0].0.starts_with("(built-in) "));
    }

    #[test]
    fn a_missing_explicit_folder_is_an_error() {
        let e = dialog_files(Path::new("/nonexistent/parkbot-dialogs"), true).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(e.to_string(), "folder not found");
    }

    #[test]
    fn an_existing_folder_is_read_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.toml"), "x").unwrap();
        std::fs::write(dir.path().join("a.toml"), "y").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "z").unwrap();
        let files = dialog_files(dir.path(), true).unwrap();
        let names: Vec<_> = files.iter().map(|(n, _)| n.rsplit('/').next().unwrap()).collect();
        assert_eq!(names, ["a.toml", "b.toml"]);
    }
}
