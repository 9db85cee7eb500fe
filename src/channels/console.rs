//! The terminal channel: `parkbot chat` and `parkbot ask`. A line is a
//! message from `console:NAME`; replies are printed as plain text with
//! their choices as numbered lines (typing the number or the label picks
//! one). `/start PAYLOAD` stands for opening the bot through a deep link
//! or QR code (`/start signup:web3-forum`), so scripts can test them.
//!
//! On a terminal, lines can be edited and recalled (history); piped input
//! is read line by line, each line bounded in length, and a line that is
//! not UTF-8 is skipped with a note instead of ending the session.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use anyhow::Result;

use crate::bot::Bot;
use crate::message::{Identity, Inbound, Input, Reply};

/// Words that end a chat (besides Ctrl-D).
const QUIT: &[&str] = &["/quit", "/exit", "quit", "exit", "退出"];

/// The terminal as a channel: one identity, one runtime to drive the bot.
pub struct Console {
    bot: Arc<Bot>,
    rt: tokio::runtime::Runtime,
    identity: Identity,
}

/// What a console line stands for.
pub fn input(line: &str) -> Input {
    let t = line.trim();
    match t.strip_prefix("/start") {
        Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
            let payload = rest.trim();
            Input::Start {
                payload: (!payload.is_empty()).then(|| payload.to_string()),
            }
        }
        _ => Input::Text(line.to_string()),
    }
}

/// Replies as the terminal shows them.
pub fn render(replies: &[Reply]) -> String {
    replies.iter().map(Reply::numbered).collect::<Vec<_>>().join("\n")
}

impl Console {
    pub fn new(bot: Arc<Bot>, user: &str) -> Result<Console> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("parkbot-console")
            .build()?;
        let identity = Identity::new(crate::message::Channel::Console, user).ok_or_else(|| {
            anyhow::anyhow!("--user {user:?}: a console user name is 1–128 characters, no control characters")
        })?;
        Ok(Console { bot, rt, identity })
    }

    /// Sends one line and prints the replies.
    pub fn ask(&self, line: &str, out: &mut impl Write) -> Result<()> {
        let msg = Inbound {
            lang: None,
            identity: self.identity.clone(),
            message_id: None,
            input: input(line),
        };
        let replies = self.rt.block_on(self.bot.handle(msg));
        // What the park sent meanwhile (the terminal has no push).
        match self.bot.waiting(&self.identity) {
            Ok(waiting) if !waiting.is_empty() => writeln!(out, "{}\n", render(&waiting))?,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "console: cannot read waiting messages"),
        }
        let text = render(&replies);
        if !text.is_empty() {
            writeln!(out, "{text}")?;
        }
        Ok(())
    }

    /// A conversation until end of input or a quit word.
    pub fn chat(&self) -> Result<()> {
        if std::io::stdin().is_terminal() {
            self.chat_terminal()
        } else {
            self.chat_piped(&mut std::io::stdin().lock(), &mut std::io::stdout().lock())
        }
    }

    fn chat_terminal(&self) -> Result<()> {
        let mut editor = rustyline::DefaultEditor::new()?;
        println!(
            "parkbot — {}. Ctrl-D or /quit to leave. 按 Ctrl-D 或输入 /quit 退出。",
            self.identity
        );
        loop {
            match editor.readline("> ") {
                Ok(line) => {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let _ = editor.add_history_entry(line.as_str());
                    if QUIT.contains(&line.trim()) {
                        break;
                    }
                    self.ask(&line, &mut std::io::stdout().lock())?;
                    println!();
                }
                Err(rustyline::error::ReadlineError::Interrupted) => continue,
                Err(rustyline::error::ReadlineError::Eof) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Piped input: line by line, each bounded to what the bot accepts.
    pub fn chat_piped(&self, input: &mut impl BufRead, out: &mut impl Write) -> Result<()> {
        // A character is at most 4 bytes in UTF-8.
        let limit = self.bot.settings().max_message_chars.saturating_mul(4).max(64);
        let mut n = 0usize;
        loop {
            n += 1;
            let line = match read_line(input, limit)? {
                Line::End => break,
                Line::NotUtf8 => {
                    eprintln!("line {n}: skipped, it is not UTF-8 text (跳过：这一行不是 UTF-8 文本)");
                    continue;
                }
                // Its start (longer than the bot takes: it says so, in
                // the line's language).
                Line::TooLong(start) => start,
                Line::Text(t) => t,
            };
            if line.trim().is_empty() {
                continue;
            }
            if QUIT.contains(&line.trim()) {
                break;
            }
            self.ask(&line, out)?;
            writeln!(out)?;
            out.flush()?;
        }
        Ok(())
    }
}

/// One line of piped input.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Text(String),
    /// Longer than the limit: its first `limit` bytes and "…"; the rest
    /// was read and dropped.
    TooLong(String),
    NotUtf8,
    End,
}

/// Reads one line of at most `limit` bytes without ever holding more.
fn read_line(input: &mut impl BufRead, limit: usize) -> std::io::Result<Line> {
    let mut buf = Vec::new();
    let mut too_long = false;
    let mut any = false;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        any = true;
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        if !too_long {
            let room = limit - buf.len();
            buf.extend_from_slice(&part[..part.len().min(room)]);
            too_long = part.len() > room;
        }
        let used = done.unwrap_or(chunk.len());
        input.consume(used);
        if done.is_some() {
            break;
        }
    }
    if !any {
        return Ok(Line::End);
    }
    if too_long {
        let mut start = String::from_utf8_lossy(&buf).into_owned();
        start.push('…');
        return Ok(Line::TooLong(start));
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(String::from_utf8(buf).map_or(Line::NotUtf8, Line::Text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_lines_carry_their_payload() {
        assert_eq!(
            input("/start signup:web3-forum"),
            Input::Start {
                payload: Some("signup:web3-forum".into())
            }
        );
        assert_eq!(input("/start"), Input::Start { payload: None });
        assert_eq!(input("/started"), Input::Text("/started".into()));
        assert_eq!(input("signup:web3-forum"), Input::Text("signup:web3-forum".into()));
    }

    #[test]
    fn lines_are_bounded_and_bad_bytes_skipped() {
        let mut data: &[u8] = b"hello\r\n\xff\xfe\nxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nlast";
        assert_eq!(read_line(&mut data, 10).unwrap(), Line::Text("hello".into()));
        assert_eq!(read_line(&mut data, 10).unwrap(), Line::NotUtf8);
        assert_eq!(read_line(&mut data, 10).unwrap(), Line::TooLong("xxxxxxxxxx…".into()));
        assert_eq!(read_line(&mut data, 10).unwrap(), Line::Text("last".into()));
        assert_eq!(read_line(&mut data, 10).unwrap(), Line::End);
    }
}
