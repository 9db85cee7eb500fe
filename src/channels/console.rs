//! The terminal channel: `parkbot chat` and `parkbot ask`. A line is a
//! message from `console:NAME`; the replies are printed as the bot wrote
//! them. On a terminal, lines can be edited and recalled (history); piped
//! input is read line by line.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;

use crate::bot::{Bot, Identity, Inbound};

/// Words that end a chat (besides Ctrl-D).
const QUIT: &[&str] = &["/quit", "/exit", "quit", "exit", "退出"];

/// Sends one message and prints the replies.
pub fn ask(bot: &Bot, user: &str, text: &str, out: &mut impl Write) -> Result<()> {
    let msg = Inbound {
        identity: Identity::console(user),
        text: text.to_string(),
    };
    for reply in bot.handle(&msg)? {
        writeln!(out, "{reply}")?;
    }
    Ok(())
}

/// A conversation until end of input or a quit word.
pub fn chat(bot: &Bot, user: &str) -> Result<()> {
    let stdout = std::io::stdout();
    if std::io::stdin().is_terminal() {
        let mut editor = rustyline::DefaultEditor::new()?;
        println!(
            "parkbot — {}. Ctrl-D or /quit to leave. 按 Ctrl-D 或输入 /quit 退出。",
            Identity::console(user)
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
                    ask(bot, user, &line, &mut stdout.lock())?;
                    println!();
                }
                Err(rustyline::error::ReadlineError::Interrupted) => continue,
                Err(rustyline::error::ReadlineError::Eof) => break,
                Err(e) => return Err(e.into()),
            }
        }
    } else {
        for line in std::io::stdin().lock().lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            if QUIT.contains(&line.trim()) {
                break;
            }
            let mut out = stdout.lock();
            ask(bot, user, &line, &mut out)?;
            writeln!(out)?;
            out.flush()?;
        }
    }
    Ok(())
}
