//! WeChat callback XML: reading a push (plain or the safe-mode envelope)
//! into [`Push`] / [`Envelope`], the de-duplication key of a push, and
//! writing the passive text reply and the encrypted reply envelope.
//!
//! Bodies are refused before parsing when they are too large or declare a
//! DTD or entities; control characters illegal in XML 1.0 are stripped
//! first (WeChat forwards them raw from user text). Only the direct
//! children of the `<xml>` root are read; unknown and nested elements are
//! ignored, CDATA and plain text are read alike.

use std::borrow::Cow;

use quick_xml::Reader;
use quick_xml::events::{BytesRef, Event};

/// The largest body [`parse`] and [`parse_envelope`] read (real pushes are
/// a few KiB; the HTTP layer should cap bodies too).
pub const MAX_BODY: usize = 64 * 1024;

/// Why a body is not a usable WeChat push.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("body is larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("body declares a DTD or entities, which are refused")]
    Dtd,
    #[error("malformed XML: {0}")]
    Syntax(String),
    #[error("root element is not <xml>")]
    WrongRoot,
    #[error("required element <{0}> is missing or empty")]
    Missing(&'static str),
    #[error("element <{0}> is not an integer")]
    Invalid(&'static str),
}

/// One inbound push: a user message or an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The account's original id (`gh_…`).
    pub to: String,
    /// The sender's OpenID: the authority on who spoke.
    pub from: String,
    /// Unix seconds.
    pub create_time: i64,
    pub kind: Kind,
}

/// What a push carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A typed message.
    Text { content: String, msg_id: String },
    /// A voice message; `recognition` is the speech-to-text result, `None`
    /// when absent or empty (often the case: ask the user to type).
    Voice {
        recognition: Option<String>,
        msg_id: String,
    },
    /// Any other message (`image`, `video`, `shortvideo`, `location`,
    /// `link`, `file`, …), kept by type only.
    Media { msg_type: String, msg_id: Option<String> },
    /// An event (`MsgType` `event`): `event` exactly as sent (`subscribe`,
    /// `SCAN`, `CLICK`, …; compare case-insensitively), `key` the
    /// `EventKey` when present and not empty.
    Event { event: String, key: Option<String> },
}

/// The safe-mode (or compatible-mode) body: the encrypted push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The account's original id, when sent.
    pub to: Option<String>,
    /// The Base64 ciphertext, as covered by `msg_signature`.
    pub encrypt: String,
}

/// Reads a plaintext push (or the plaintext fields of a compatible-mode
/// body).
pub fn parse(body: &str) -> Result<Push, XmlError> {
    let body = clean(body)?;
    let fields = read_fields(&body)?;
    let push = Push {
        to: fields.required("ToUserName")?,
        from: fields.required("FromUserName")?,
        create_time: fields.integer("CreateTime")?,
        kind: kind(&fields)?,
    };
    Ok(push)
}

/// [`parse`] for raw bytes: refuses a body that is not UTF-8.
pub fn parse_bytes(body: &[u8]) -> Result<Push, XmlError> {
    if body.len() > MAX_BODY {
        return Err(XmlError::TooLarge);
    }
    parse(std::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?)
}

/// Reads the `<Encrypt>` element (and `<ToUserName>`) of a safe-mode body.
pub fn parse_envelope(body: &str) -> Result<Envelope, XmlError> {
    let body = clean(body)?;
    let fields = read_fields(&body)?;
    Ok(Envelope {
        to: fields.optional("ToUserName"),
        encrypt: fields.required("Encrypt")?,
    })
}

fn kind(fields: &Fields) -> Result<Kind, XmlError> {
    let msg_type = fields.required("MsgType")?;
    let msg_id = || fields.optional("MsgId").or_else(|| fields.optional("MsgID"));
    let kind = if msg_type.eq_ignore_ascii_case("text") {
        Kind::Text {
            content: fields.get("Content").ok_or(XmlError::Missing("Content"))?.to_owned(),
            msg_id: msg_id().ok_or(XmlError::Missing("MsgId"))?,
        }
    } else if msg_type.eq_ignore_ascii_case("voice") {
        Kind::Voice {
            recognition: fields.optional("Recognition"),
            msg_id: msg_id().ok_or(XmlError::Missing("MsgId"))?,
        }
    } else if msg_type.eq_ignore_ascii_case("event") {
        Kind::Event {
            event: fields.required("Event")?,
            key: fields.optional("EventKey"),
        }
    } else {
        Kind::Media {
            msg_type,
            msg_id: msg_id(),
        }
    };
    Ok(kind)
}

/// The key under which a retry of the same push is recognised, to be
/// combined with the sender's identity: `msg:<MsgId>` for messages,
/// `ev:<CreateTime>:<Event>:<EventKey>` for events, and
/// `at:<CreateTime>:<MsgType>` for a message without an id.
pub fn dedup_key(p: &Push) -> String {
    match &p.kind {
        Kind::Text { msg_id, .. } | Kind::Voice { msg_id, .. } => format!("msg:{msg_id}"),
        Kind::Media { msg_id: Some(id), .. } => format!("msg:{id}"),
        Kind::Media { msg_type, msg_id: None } => format!("at:{}:{msg_type}", p.create_time),
        Kind::Event { event, key } => {
            format!("ev:{}:{event}:{}", p.create_time, key.as_deref().unwrap_or(""))
        }
    }
}

/// The passive text reply (§4.1): `to_user` is the user's OpenID (the
/// push's `from`), `from_account` the account's `gh_` id (the push's
/// `to`), `create_time` in seconds. Control characters are dropped and
/// `]]>` cannot close the CDATA sections early.
pub fn text_reply(to_user: &str, from_account: &str, create_time: i64, content: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(content.len() + to_user.len() + from_account.len() + 200);
    out.push_str("<xml>\n<ToUserName>");
    push_cdata(&mut out, to_user);
    out.push_str("</ToUserName>\n<FromUserName>");
    push_cdata(&mut out, from_account);
    let _ = write!(out, "</FromUserName>\n<CreateTime>{create_time}</CreateTime>\n");
    out.push_str("<MsgType><![CDATA[text]]></MsgType>\n<Content>");
    push_cdata(&mut out, content);
    out.push_str("</Content>\n</xml>");
    out
}

/// The safe-mode reply envelope (§3.6) around an encrypted reply.
pub fn encrypted_reply(encrypt: &str, msg_signature: &str, timestamp: &str, nonce: &str) -> String {
    let mut out = String::with_capacity(encrypt.len() + 200);
    out.push_str("<xml>\n<Encrypt>");
    push_cdata(&mut out, encrypt);
    out.push_str("</Encrypt>\n<MsgSignature>");
    push_cdata(&mut out, msg_signature);
    out.push_str("</MsgSignature>\n<TimeStamp>");
    out.push_str(&quick_xml::escape::escape(strip_controls(timestamp)));
    out.push_str("</TimeStamp>\n<Nonce>");
    push_cdata(&mut out, nonce);
    out.push_str("</Nonce>\n</xml>");
    out
}

/// Appends `text` as CDATA: control characters dropped, `]]>` split
/// across two sections.
fn push_cdata(out: &mut String, text: &str) {
    out.push_str("<![CDATA[");
    let text = strip_controls(text);
    // Almost no text holds a `]` (one byte search, word by word).
    if !text.contains(']') {
        out.push_str(&text);
        out.push_str("]]>");
        return;
    }
    let mut pieces = text.split("]]>");
    if let Some(first) = pieces.next() {
        out.push_str(first);
    }
    for piece in pieces {
        out.push_str("]]]]><![CDATA[>");
        out.push_str(piece);
    }
    out.push_str("]]>");
}

/// Drops characters that XML 1.0 forbids or that only confuse a chat
/// (control characters other than tab, newline and carriage return;
/// U+FFFE, U+FFFF).
fn strip_controls(s: &str) -> Cow<'_, str> {
    if has_unwanted(s) {
        Cow::Owned(s.chars().filter(|&c| !unwanted(c)).collect())
    } else {
        Cow::Borrowed(s)
    }
}

fn unwanted(c: char) -> bool {
    (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

/// Whether `s` holds an [`unwanted`] character, read from its UTF-8 bytes
/// (every body and reply is checked; almost none holds one): C0 controls
/// and DEL are single bytes, C1 controls (U+0080–U+009F) are `C2 80`–`C2
/// 9F`, U+FFFE and U+FFFF are `EF BF BE` and `EF BF BF`. A lead byte is
/// never a continuation byte, so no match starts inside another character.
fn has_unwanted(s: &str) -> bool {
    let b = s.as_bytes();
    let at = |i: usize| match b[i] {
        b'\t' | b'\n' | b'\r' => false,
        0..0x20 | 0x7f => true,
        0xc2 => b.get(i + 1).is_some_and(|n| (0x80..0xa0).contains(n)),
        0xef => b.get(i + 1) == Some(&0xbf) && matches!(b.get(i + 2), Some(0xbe | 0xbf)),
        _ => false,
    };
    // Stretches of text without a byte such a character starts with are
    // passed over a chunk at a time, without a branch per byte.
    const CHUNK: usize = 32;
    let suspect = |c: u8| (c < 0x20 && c != b'\n') | (c == 0x7f) | (c == 0xc2) | (c == 0xef);
    b.chunks(CHUNK).enumerate().any(|(n, chunk)| {
        chunk.iter().fold(false, |seen, &c| seen | suspect(c)) && (n * CHUNK..n * CHUNK + chunk.len()).any(at)
    })
}

/// Whether markup outside CDATA sections and comments declares a DTD or an
/// entity (`<!DOCTYPE`, `<!ENTITY`, any case). User text in CDATA may
/// mention them freely.
fn declares_dtd(body: &str) -> bool {
    let mut rest = body;
    while let Some(i) = rest.find("<!") {
        rest = &rest[i + 2..];
        let skip_to = if rest.starts_with("[CDATA[") {
            "]]>"
        } else if rest.starts_with("--") {
            "-->"
        } else {
            let starts_ci = |word: &str| rest.get(..word.len()).is_some_and(|r| r.eq_ignore_ascii_case(word));
            if starts_ci("DOCTYPE") || starts_ci("ENTITY") {
                return true;
            }
            continue;
        };
        match rest.find(skip_to) {
            Some(j) => rest = &rest[j + skip_to.len()..],
            None => return false, // unterminated: the parser refuses it
        }
    }
    false
}

/// The elements a push is read from; others are skipped.
const KNOWN: &[&str] = &[
    "ToUserName",
    "FromUserName",
    "CreateTime",
    "MsgType",
    "Content",
    "MsgId",
    "MsgID",
    "Recognition",
    "Event",
    "EventKey",
    "Encrypt",
    "MsgSignature",
    "TimeStamp",
    "Nonce",
];

/// The [`KNOWN`] direct children of the `<xml>` root, name → text, first
/// one wins; the text borrowed from the body where it can be.
struct Fields<'a>(Vec<(&'static str, Cow<'a, str>)>);

impl Fields<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_ref())
    }

    /// The trimmed value, `None` when absent or blank.
    fn trimmed(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    fn optional(&self, name: &str) -> Option<String> {
        self.trimmed(name).map(str::to_owned)
    }

    fn required(&self, name: &'static str) -> Result<String, XmlError> {
        self.optional(name).ok_or(XmlError::Missing(name))
    }

    fn integer(&self, name: &'static str) -> Result<i64, XmlError> {
        self.trimmed(name)
            .ok_or(XmlError::Missing(name))?
            .parse()
            .map_err(|_| XmlError::Invalid(name))
    }
}

/// One piece of an element's content.
struct Part<'a> {
    cdata: bool,
    text: Cow<'a, str>,
}

/// Refuses a body that is too large, and drops control characters (see
/// [`strip_controls`]) so that the DTD scan and the parser see the same
/// text.
fn clean(body: &str) -> Result<Cow<'_, str>, XmlError> {
    if body.len() > MAX_BODY {
        return Err(XmlError::TooLarge);
    }
    Ok(strip_controls(body))
}

/// Collects the root's direct children of a [`clean`]ed body (see
/// [`Fields`]).
fn read_fields(body: &str) -> Result<Fields<'_>, XmlError> {
    if declares_dtd(body) {
        return Err(XmlError::Dtd);
    }
    let mut reader = Reader::from_str(body);
    let mut fields = Vec::new();
    // Depth 1: inside <xml>; 2: inside a field; deeper: ignored.
    let mut depth = 0usize;
    // The field being read, when it is a known one.
    let mut current: Option<(&'static str, Vec<Part<'_>>)> = None;
    let known = |name: &str| KNOWN.iter().copied().find(|k| *k == name);
    loop {
        let event = reader.read_event().map_err(|e| XmlError::Syntax(e.to_string()))?;
        match event {
            Event::Start(e) if depth == 0 => {
                if e.name().as_ref() != "xml" {
                    return Err(XmlError::WrongRoot);
                }
                depth = 1;
            }
            Event::Empty(e) if depth == 0 => {
                if e.name().as_ref() != "xml" {
                    return Err(XmlError::WrongRoot);
                }
                return Ok(Fields(fields));
            }
            Event::Start(e) => {
                if depth == 1 {
                    current = known(e.name().as_ref()).map(|name| (name, Vec::new()));
                }
                depth += 1;
            }
            Event::Empty(e) if depth == 1 => fields.extend(known(e.name().as_ref()).map(|n| (n, Cow::Borrowed("")))),
            Event::Empty(_) => {}
            Event::End(_) => {
                depth -= 1;
                match depth {
                    0 => return Ok(Fields(fields)),
                    1 => fields.extend(current.take().map(|(name, parts)| (name, join(parts)))),
                    _ => {}
                }
            }
            Event::Text(t) if depth == 2 => push_part(&mut current, false, t.xml10_content()),
            Event::CData(t) if depth == 2 => push_part(&mut current, true, t.xml10_content()),
            Event::GeneralRef(r) if depth == 2 => push_part(&mut current, false, Cow::Owned(resolve(&r)?)),
            Event::GeneralRef(r) => {
                resolve(&r)?;
            }
            Event::DocType(_) => return Err(XmlError::Dtd),
            Event::Eof if depth == 0 => return Err(XmlError::Syntax("no <xml> root element".into())),
            Event::Eof => return Err(XmlError::Syntax("body ends inside an element".into())),
            _ => {}
        }
    }
}

fn push_part<'a>(current: &mut Option<(&'static str, Vec<Part<'a>>)>, cdata: bool, text: Cow<'a, str>) {
    if let Some((_, parts)) = current {
        parts.push(Part { cdata, text });
    }
}

/// An element's text: its pieces in order, except that whitespace between
/// CDATA sections and the tags around them is layout, not content.
fn join(parts: Vec<Part<'_>>) -> Cow<'_, str> {
    let has_cdata = parts.iter().any(|p| p.cdata);
    let mut kept = parts
        .into_iter()
        .filter(|p| !has_cdata || p.cdata || !p.text.trim().is_empty())
        .map(|p| p.text);
    let Some(first) = kept.next() else {
        return Cow::Borrowed("");
    };
    match kept.next() {
        None => first,
        Some(second) => {
            let mut all = first.into_owned();
            all.push_str(&second);
            kept.for_each(|t| all.push_str(&t));
            Cow::Owned(all)
        }
    }
}

/// Resolves `&amp;`-style and `&#…;` references; any other entity is
/// refused (none can be declared).
fn resolve(r: &BytesRef<'_>) -> Result<String, XmlError> {
    let name = r.xml10_content();
    if let Some(c) = r.resolve_char_ref().map_err(|e| XmlError::Syntax(e.to_string()))? {
        return Ok(c.to_string());
    }
    quick_xml::escape::resolve_predefined_entity(&name)
        .map(str::to_owned)
        .ok_or_else(|| XmlError::Syntax(format!("unknown entity &{name};")))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Sample pushes from the protocol reference (§2.4, §2.5, §3.8).
    const TEXT: &str = "<xml>
  <ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>
  <FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>
  <CreateTime>1409735668</CreateTime>
  <MsgType><![CDATA[text]]></MsgType>
  <Content><![CDATA[abcdteT]]></Content>
  <MsgId>6054768590064713728</MsgId>
</xml>";
    const VOICE: &str = "<xml><ToUserName><![CDATA[gh_a]]></ToUserName><FromUserName><![CDATA[oU]]></FromUserName>\
<CreateTime>1357290913</CreateTime><MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m1]]></MediaId>\
<Format><![CDATA[amr]]></Format><Recognition><![CDATA[我要报名]]></Recognition><MsgId>1234567890123456</MsgId></xml>";
    const VOICE_EMPTY: &str = "<xml><ToUserName><![CDATA[gh_a]]></ToUserName><FromUserName><![CDATA[oU]]></FromUserName>\
<CreateTime>1357290913</CreateTime><MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m1]]></MediaId>\
<Format><![CDATA[amr]]></Format><Recognition><![CDATA[]]></Recognition><MsgId>1234567890123457</MsgId></xml>";
    const VOICE_NONE: &str = "<xml><ToUserName><![CDATA[gh_a]]></ToUserName><FromUserName><![CDATA[oU]]></FromUserName>\
<CreateTime>1357290913</CreateTime><MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m1]]></MediaId>\
<Format><![CDATA[amr]]></Format><MsgId>1234567890123458</MsgId></xml>";
    const IMAGE: &str = "<xml><ToUserName><![CDATA[gh_a]]></ToUserName><FromUserName><![CDATA[oU]]></FromUserName>\
<CreateTime>1348831860</CreateTime><MsgType><![CDATA[image]]></MsgType>\
<PicUrl><![CDATA[http://example.com/p.jpg]]></PicUrl><MediaId><![CDATA[media_id]]></MediaId><MsgId>1234567890123456</MsgId></xml>";
    const LOCATION: &str = "<xml><ToUserName><![CDATA[gh_a]]></ToUserName><FromUserName><![CDATA[oU]]></FromUserName>\
<CreateTime>1351776360</CreateTime><MsgType><![CDATA[location]]></MsgType><Location_X>39.915</Location_X>\
<Location_Y>116.404</Location_Y><Scale>20</Scale><Label><![CDATA[首钢园]]></Label><MsgId>1234567890123459</MsgId></xml>";
    const SUBSCRIBE_QR: &str = "<xml>
  <ToUserName><![CDATA[gh_a]]></ToUserName>
  <FromUserName><![CDATA[oXXXX]]></FromUserName>
  <CreateTime>123456789</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[subscribe]]></Event>
  <EventKey><![CDATA[qrscene_123123]]></EventKey>
  <Ticket><![CDATA[TICKET]]></Ticket>
</xml>";
    const SUBSCRIBE: &str = "<xml><ToUserName><![CDATA[gh_a]]></ToUserName><FromUserName><![CDATA[oXXXX]]></FromUserName>\
<CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>\
<EventKey><![CDATA[]]></EventKey></xml>";
    const SCAN: &str = "<xml><ToUserName><![CDATA[gh_a]]></ToUserName><FromUserName><![CDATA[oXXXX]]></FromUserName>\
<CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[SCAN]]></Event>\
<EventKey><![CDATA[signup_forum]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket></xml>";
    const CLICK: &str = "<xml><ToUserName><![CDATA[gh_a]]></ToUserName><FromUserName><![CDATA[oXXXX]]></FromUserName>\
<CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event>\
<EventKey><![CDATA[MENU_EVENTS]]></EventKey></xml>";
    const TEMPLATE_DONE: &str = "<xml>
  <ToUserName><![CDATA[gh_a]]></ToUserName>
  <FromUserName><![CDATA[oXXXX]]></FromUserName>
  <CreateTime>1395658920</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>
  <MsgID>200163836</MsgID>
  <Status><![CDATA[success]]></Status>
</xml>";
    const ENVELOPE: &str = "<xml>
  <ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>
  <Encrypt><![CDATA[hyzAe4Oz+/w==]]></Encrypt>
</xml>";

    const SAMPLES: [&str; 12] = [
        TEXT,
        VOICE,
        VOICE_EMPTY,
        VOICE_NONE,
        IMAGE,
        LOCATION,
        SUBSCRIBE_QR,
        SUBSCRIBE,
        SCAN,
        CLICK,
        TEMPLATE_DONE,
        ENVELOPE,
    ];

    fn event(body: &str) -> (String, Option<String>) {
        match parse(body).unwrap().kind {
            Kind::Event { event, key } => (event, key),
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn text_message() {
        let p = parse(TEXT).unwrap();
        assert_eq!(p.to, "gh_10f6c3c3ac5a");
        assert_eq!(p.from, "oyORnuP8q7ou2gfYjqLzSIWZf0rs");
        assert_eq!(p.create_time, 1409735668);
        assert_eq!(
            p.kind,
            Kind::Text {
                content: "abcdteT".into(),
                msg_id: "6054768590064713728".into()
            }
        );
        assert_eq!(dedup_key(&p), "msg:6054768590064713728");
    }

    #[test]
    fn voice_with_and_without_recognition() {
        let voice = |body| match parse(body).unwrap().kind {
            Kind::Voice { recognition, msg_id } => (recognition, msg_id),
            other => panic!("not a voice: {other:?}"),
        };
        assert_eq!(voice(VOICE), (Some("我要报名".into()), "1234567890123456".into()));
        assert_eq!(voice(VOICE_EMPTY).0, None);
        assert_eq!(voice(VOICE_NONE).0, None);
    }

    #[test]
    fn other_messages_are_media_by_type() {
        let image = parse(IMAGE).unwrap();
        assert_eq!(
            image.kind,
            Kind::Media {
                msg_type: "image".into(),
                msg_id: Some("1234567890123456".into())
            }
        );
        assert_eq!(dedup_key(&image), "msg:1234567890123456");
        let location = parse(LOCATION).unwrap();
        assert!(matches!(location.kind, Kind::Media { ref msg_type, .. } if msg_type == "location"));
        let no_id = LOCATION.replace("<MsgId>1234567890123459</MsgId>", "");
        assert_eq!(dedup_key(&parse(&no_id).unwrap()), "at:1351776360:location");
    }

    #[test]
    fn events_keep_their_name_and_key_as_sent() {
        assert_eq!(event(SUBSCRIBE_QR), ("subscribe".into(), Some("qrscene_123123".into())));
        assert_eq!(event(SUBSCRIBE), ("subscribe".into(), None));
        assert_eq!(event(SCAN), ("SCAN".into(), Some("signup_forum".into())));
        assert_eq!(event(CLICK), ("CLICK".into(), Some("MENU_EVENTS".into())));
        assert_eq!(event(TEMPLATE_DONE), ("TEMPLATESENDJOBFINISH".into(), None));
        assert_eq!(
            dedup_key(&parse(SUBSCRIBE_QR).unwrap()),
            "ev:123456789:subscribe:qrscene_123123"
        );
        assert_eq!(dedup_key(&parse(SUBSCRIBE).unwrap()), "ev:123456789:subscribe:");
        assert_eq!(
            dedup_key(&parse(TEMPLATE_DONE).unwrap()),
            "ev:1395658920:TEMPLATESENDJOBFINISH:"
        );
    }

    #[test]
    fn msg_id_spelled_msg_id_upper_is_read() {
        let media = TEMPLATE_DONE.replace("event", "file");
        assert_eq!(
            parse(&media).unwrap().kind,
            Kind::Media {
                msg_type: "file".into(),
                msg_id: Some("200163836".into())
            }
        );
    }

    #[test]
    fn bare_text_and_cdata_read_alike_and_unknown_elements_are_ignored() {
        let plain = "<?xml version=\"1.0\"?>\n<xml><ToUserName>gh_10f6c3c3ac5a</ToUserName>\n\t<FromUserName>\
oyORnuP8q7ou2gfYjqLzSIWZf0rs</FromUserName><CreateTime><![CDATA[1409735668]]></CreateTime>\
<Unknown attr=\"1\"><Nested>x</Nested></Unknown><Empty/><MsgType>text</MsgType>\
<Content>abcd&amp;teT &#x1F680;</Content><!-- note --><MsgId>\n 6054768590064713728 \n</MsgId></xml>";
        let p = parse(plain).unwrap();
        assert_eq!(p.from, "oyORnuP8q7ou2gfYjqLzSIWZf0rs");
        assert_eq!(p.create_time, 1409735668);
        assert_eq!(
            p.kind,
            Kind::Text {
                content: "abcd&teT 🚀".into(),
                msg_id: "6054768590064713728".into()
            }
        );
        // Whitespace around a CDATA section is layout; inside it, content.
        let spaced = TEXT.replace("<Content><![CDATA[abcdteT]]>", "<Content>\n  <![CDATA[ abcdteT]]>\n");
        assert!(matches!(parse(&spaced).unwrap().kind, Kind::Text { content, .. } if content == " abcdteT"));
    }

    #[test]
    fn missing_or_bad_required_fields_are_named() {
        let without = |tag: &str| {
            let start = TEXT.find(&format!("<{tag}>")).unwrap();
            let end = TEXT.find(&format!("</{tag}>")).unwrap() + tag.len() + 3;
            format!("{}{}", &TEXT[..start], &TEXT[end..])
        };
        for tag in [
            "ToUserName",
            "FromUserName",
            "CreateTime",
            "MsgType",
            "Content",
            "MsgId",
        ] {
            assert_eq!(
                parse(&without(tag)).unwrap_err(),
                XmlError::Missing(tag_name(tag)),
                "{tag}"
            );
        }
        let blank = TEXT.replace("oyORnuP8q7ou2gfYjqLzSIWZf0rs", " ");
        assert_eq!(parse(&blank).unwrap_err(), XmlError::Missing("FromUserName"));
        let float = TEXT.replace("1409735668", "1.4e9");
        assert_eq!(parse(&float).unwrap_err(), XmlError::Invalid("CreateTime"));
        let no_event = SCAN.replace("<Event><![CDATA[SCAN]]></Event>", "");
        assert_eq!(parse(&no_event).unwrap_err(), XmlError::Missing("Event"));
    }

    fn tag_name(tag: &str) -> &'static str {
        [
            "ToUserName",
            "FromUserName",
            "CreateTime",
            "MsgType",
            "Content",
            "MsgId",
        ]
        .into_iter()
        .find(|t| *t == tag)
        .unwrap()
    }

    #[test]
    fn envelope_carries_encrypt() {
        let e = parse_envelope(ENVELOPE).unwrap();
        assert_eq!(e.to.as_deref(), Some("gh_10f6c3c3ac5a"));
        assert_eq!(e.encrypt, "hyzAe4Oz+/w==");
        // Compatible mode: plaintext fields and Encrypt together.
        let compat = TEXT.replace("</xml>", "<Encrypt><![CDATA[abc=]]></Encrypt></xml>");
        assert_eq!(parse_envelope(&compat).unwrap().encrypt, "abc=");
        assert!(parse(&compat).is_ok());
        assert_eq!(parse_envelope(TEXT).unwrap_err(), XmlError::Missing("Encrypt"));
    }

    #[test]
    fn dtds_and_entities_are_refused() {
        let laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">\
<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>\
<xml><ToUserName>&lol2;</ToUserName></xml>";
        assert_eq!(parse(laughs).unwrap_err(), XmlError::Dtd);
        let external =
            "<!doctype xml [<!entity xxe SYSTEM \"file:///etc/passwd\">]><xml><Content>&xxe;</Content></xml>";
        assert_eq!(parse(external).unwrap_err(), XmlError::Dtd);
        assert_eq!(parse_envelope(external).unwrap_err(), XmlError::Dtd);
        // An undeclared entity is an error, not an expansion.
        let undeclared = TEXT
            .replace("abcdteT", "a&xxe;b")
            .replace("<![CDATA[a&xxe;b]]>", "a&xxe;b");
        assert!(matches!(parse(&undeclared).unwrap_err(), XmlError::Syntax(_)));
        // A user may write the words inside CDATA.
        let mention = TEXT.replace("abcdteT", "<!DOCTYPE html> <!ENTITY x>");
        assert!(parse(&mention).is_ok());
        // A comment cannot hide a declaration after it.
        let hidden = format!("<!-- <![CDATA[ --><!DOCTYPE x><!-- ]]> -->{TEXT}");
        assert_eq!(parse(&hidden).unwrap_err(), XmlError::Dtd);
        // Nor a control character splitting the end of a CDATA section.
        let split = TEXT.replace("abcdteT]]>", "abc]\u{1}]><!DOCTYPE x [<!ENTITY e \"e\">]> ]]>");
        assert_eq!(parse(&split).unwrap_err(), XmlError::Dtd);
    }

    #[test]
    fn control_characters_are_stripped_before_parsing() {
        // (XML normalises \r\n to \n, CDATA included.)
        let body = TEXT.replace("abcdteT", "ab\u{1d}cd\u{0}\tte\r\nT\u{7f}");
        assert!(matches!(parse(&body).unwrap().kind, Kind::Text { content, .. } if content == "abcd\tte\nT"));
    }

    #[test]
    fn the_byte_check_finds_exactly_the_unwanted_characters() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let alone = c.to_string();
            let inside = format!("a{c}中");
            assert_eq!(has_unwanted(&alone), unwanted(c), "U+{:04X}", c as u32);
            assert_eq!(has_unwanted(&inside), unwanted(c), "U+{:04X} inside", c as u32);
        }
        // At every place in a text longer than the check's chunks.
        for c in ['\u{1}', '\u{7f}', '\u{85}', '\u{fffe}', '\u{ffff}', '，', '\n', 'é'] {
            for at in 0..70 {
                let text: String = "园区a"
                    .chars()
                    .cycle()
                    .take(at)
                    .chain([c])
                    .chain("停车b".chars().cycle().take(40))
                    .collect();
                assert_eq!(has_unwanted(&text), unwanted(c), "U+{:04X} at {at}", c as u32);
            }
        }
    }

    #[test]
    fn oversized_broken_and_non_utf8_bodies_are_errors() {
        let big = TEXT.replace("abcdteT", &"x".repeat(MAX_BODY));
        assert_eq!(parse(&big).unwrap_err(), XmlError::TooLarge);
        assert_eq!(parse_bytes(big.as_bytes()).unwrap_err(), XmlError::TooLarge);
        assert_eq!(parse_bytes(b"<xml>\xff</xml>").unwrap_err(), XmlError::NotUtf8);
        assert_eq!(parse_bytes(TEXT.as_bytes()).unwrap(), parse(TEXT).unwrap());
        for broken in [
            "",
            "   ",
            "hello",
            "<xml>",
            "<xml><Content>a</xml>",
            "<xml><a></b></xml>",
            "<xml><![CDATA[",
            "{\"json\":1}",
        ] {
            assert!(parse(broken).is_err(), "{broken:?}");
        }
        assert_eq!(
            parse("<root><MsgType>text</MsgType></root>").unwrap_err(),
            XmlError::WrongRoot
        );
        assert_eq!(parse("<xml/>").unwrap_err(), XmlError::Missing("ToUserName"));
    }

    #[test]
    fn text_reply_swaps_nothing_and_survives_cdata_breakers_and_emoji() {
        let content = "报名成功 🎉\nend: ]]> <b>&amp; \u{1d}ok";
        let reply = text_reply("oUSER", "gh_ACCOUNT", 1714037100, content);
        assert!(reply.starts_with("<xml>\n<ToUserName><![CDATA[oUSER]]></ToUserName>"));
        assert!(reply.contains("<FromUserName><![CDATA[gh_ACCOUNT]]></FromUserName>"));
        assert!(reply.contains("<CreateTime>1714037100</CreateTime>"));
        assert!(reply.contains("<MsgType><![CDATA[text]]></MsgType>"));
        assert!(!reply.contains('\u{1d}'));
        let fields = read_fields(&reply).unwrap();
        assert_eq!(fields.get("Content"), Some("报名成功 🎉\nend: ]]> <b>&amp; ok"));
        assert_eq!(fields.get("ToUserName"), Some("oUSER"));
    }

    #[test]
    fn encrypted_reply_has_the_documented_shape() {
        let reply = encrypted_reply(
            "abc+/=",
            "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
            "1409735669",
            "1320562132",
        );
        assert_eq!(
            reply,
            "<xml>\n<Encrypt><![CDATA[abc+/=]]></Encrypt>\n\
<MsgSignature><![CDATA[5d197aaffba7e9b25a30732f161a50dee96bd5fa]]></MsgSignature>\n\
<TimeStamp>1409735669</TimeStamp>\n<Nonce><![CDATA[1320562132]]></Nonce>\n</xml>"
        );
        assert_eq!(parse_envelope(&reply).unwrap().encrypt, "abc+/=");
        let hostile = encrypted_reply("e", "s", "1<x>&", "n]]>");
        let hostile = strip_controls(&hostile);
        let fields = read_fields(&hostile).unwrap();
        assert_eq!(fields.get("TimeStamp"), Some("1<x>&"));
        assert_eq!(fields.get("Nonce"), Some("n]]>"));
    }

    /// A small linear congruential generator: enough for mutations.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, bound: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % bound.max(1)
        }
    }

    #[test]
    fn random_mutations_never_panic() {
        const TOKENS: [&[u8]; 8] = [b"<", b">", b"</", b"]]>", b"<![CDATA[", b"&", b"&#x0;", b"<!DOCTYPE"];
        let mut rng = Lcg(0x5eed);
        let mut parsed = 0;
        for round in 0..4000 {
            let mut body = SAMPLES[round % SAMPLES.len()].as_bytes().to_vec();
            for _ in 0..=rng.next(4) {
                let at = rng.next(body.len() + 1);
                match rng.next(5) {
                    0 if !body.is_empty() => {
                        let i = at.min(body.len() - 1);
                        body[i] ^= 1 << rng.next(8);
                    }
                    1 => body.truncate(at),
                    2 => {
                        let end = (at + rng.next(40)).min(body.len());
                        let copy = body[at..end].to_vec();
                        body.splice(at..at, copy);
                    }
                    3 => {
                        let end = (at + rng.next(20)).min(body.len());
                        body.drain(at..end);
                    }
                    _ => {
                        let token = TOKENS[rng.next(TOKENS.len())];
                        body.splice(at..at, token.iter().copied());
                    }
                }
            }
            if let Ok(p) = parse_bytes(&body) {
                parsed += 1;
                let _ = dedup_key(&p);
            }
            let _ = parse_envelope(&String::from_utf8_lossy(&body));
        }
        assert!(parsed > 100, "mutations should leave some bodies valid ({parsed})");
    }
}
