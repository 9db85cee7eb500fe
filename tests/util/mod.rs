//! Helpers for the integration tests: run the real `parkbot` binary in a
//! temporary directory, with a clean environment and its own redb file.
#![allow(dead_code)]

pub mod mocks;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_parkbot");

/// The fixed "now" of the tests: before every demo event.
pub const NOW: &str = "2026-11-28T12:00:00+08:00";

/// A temporary working directory with a store path in it.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn db(&self) -> PathBuf {
        self.path("park.redb")
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A command for the binary, run in the sandbox with `--db` set.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PARKBOT_NOW", NOW)
            .arg("--db")
            .arg(self.db())
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).output().expect("run parkbot"))
    }

    /// Runs and insists on success.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert!(
            r.code == 0,
            "parkbot {args:?} failed ({}):\n{}\n{}",
            r.code,
            r.stdout,
            r.stderr
        );
        r
    }

    /// `ask` as console user `user`.
    pub fn ask(&self, user: &str, text: &str) -> String {
        self.ok(&["ask", "--user", user, text]).stdout
    }

    /// `ask` at another time (RFC 3339).
    pub fn ask_at(&self, now: &str, user: &str, text: &str) -> String {
        let r = Run::from(
            self.cmd(&["ask", "--user", user, text])
                .env("PARKBOT_NOW", now)
                .output()
                .unwrap(),
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
    }

    /// Sends each message in turn (one process each); returns the last reply.
    pub fn say(&self, user: &str, messages: &[&str]) -> String {
        let mut last = String::new();
        for m in messages {
            last = self.ask(user, m);
        }
        last
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// The repository's own files.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}
