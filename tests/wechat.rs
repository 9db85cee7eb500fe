//! `parkbot serve`'s WeChat endpoint over loopback, as WeChat drives it:
//! URL verification, plain and safe mode with the reference's keys, a
//! retried MsgId applied once, events, forged and broken requests, the
//! admin API, and a fuzz-style run of mutated bodies.

use std::time::Duration;

use parkbot::channels::wechat::crypto::{self, Cipher};

use crate::util::server::{Served, serve};

const TOKEN: &str = "spamtest";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APP_ID: &str = "wx2c2769f8efd9abc2";
const ADMIN: &str = "admin-secret-token";

fn wechat_env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("PARKBOT_WECHAT__ENABLED", "true"),
        ("PARKBOT_WECHAT__TOKEN", TOKEN),
        ("PARKBOT_WECHAT__APP_ID", APP_ID),
        ("PARKBOT_WECHAT__ENCODING_AES_KEY", AES_KEY),
        ("PARKBOT_STAFF__ADMIN_TOKEN", ADMIN),
        ("PARKBOT_WECHAT__MENU", "{ EVENTS = \"最近有什么活动\" }"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn text_xml(from: &str, content: &str, msg_id: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n<FromUserName><![CDATA[{from}]]></FromUserName>\n\
         <CreateTime>1409735668</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[{content}]]></Content>\n\
         <MsgId>{msg_id}</MsgId>\n</xml>"
    )
}

fn event_xml(from: &str, event: &str, key: Option<&str>, time: u64) -> String {
    let key = key.map_or(String::new(), |k| format!("<EventKey><![CDATA[{k}]]></EventKey>"));
    format!(
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName>\
         <CreateTime>{time}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>{key}</xml>"
    )
}

/// The query string of a signed push.
fn signed_query(timestamp: &str, nonce: &str) -> String {
    let sig = crypto::signature(TOKEN, timestamp, nonce);
    format!("signature={sig}&timestamp={timestamp}&nonce={nonce}&openid=o")
}

/// Posts a plain-mode push; returns (status, body).
async fn post_plain(s: &Served, body: &str) -> (u16, String) {
    let url = format!("{}/wechat?{}", s.base, signed_query("1409735669", "1320562132"));
    let r = s.client.post(url).body(body.to_string()).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The `Content` of a passive text reply.
fn content(xml: &str) -> String {
    let start = xml.find("<Content><![CDATA[").expect("a text reply") + "<Content><![CDATA[".len();
    let end = xml[start..].find("]]></Content>").unwrap() + start;
    xml[start..end].replace("]]]]><![CDATA[>", "]]>")
}

/// Posts a safe-mode push and decrypts the reply's content.
async fn post_safe(s: &Served, cipher: &Cipher, inner: &str) -> String {
    let (timestamp, nonce) = ("1409735669", "1320562132");
    let encrypt = cipher.encrypt(inner);
    let msg_sig = crypto::msg_signature(TOKEN, timestamp, nonce, &encrypt);
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    );
    let url = format!(
        "{}/wechat?{}&encrypt_type=aes&msg_signature={msg_sig}",
        s.base,
        signed_query(timestamp, nonce)
    );
    let r = s.client.post(url).body(body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let reply = r.text().await.unwrap();
    if reply == "success" {
        return reply;
    }
    let enc_start = reply.find("<Encrypt><![CDATA[").unwrap() + "<Encrypt><![CDATA[".len();
    let enc = &reply[enc_start..enc_start + reply[enc_start..].find("]]>").unwrap()];
    let sig_start = reply.find("<MsgSignature><![CDATA[").unwrap() + "<MsgSignature><![CDATA[".len();
    let sig = &reply[sig_start..sig_start + 40];
    let ts_start = reply.find("<TimeStamp>").unwrap() + "<TimeStamp>".len();
    let ts = &reply[ts_start..ts_start + reply[ts_start..].find('<').unwrap()];
    assert_eq!(crypto::msg_signature(TOKEN, ts, nonce, enc), sig, "the reply is signed");
    content(&cipher.decrypt(enc).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_verification_answers_the_echo_exactly() {
    let s = serve(wechat_env(&[("PARKBOT_WECHAT__TOKEN", "AAAAA")])).await;
    let url = format!(
        "{}/wechat?signature=f464b24fc39322e44b38aa78f5edd27bd1441696&echostr=4375120948345356249&timestamp=1714036504&nonce=1514711492",
        s.base
    );
    let r = s.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "4375120948345356249");
    let forged = url.replace("f464b24f", "f464b24e");
    assert_eq!(s.client.get(&forged).send().await.unwrap().status(), 403);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_mode_answers_and_refuses_what_is_forged_or_broken() {
    let s = serve(wechat_env(&[])).await;
    let (status, body) = post_plain(&s, &text_xml("oPlain", "刘慈欣工作室在哪里？", 1)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<ToUserName><![CDATA[oPlain]]></ToUserName>"),
        "parties swapped: {body}"
    );
    assert!(content(&body).starts_with("刘慈欣工作室"), "{body}");

    let bad_sig = format!(
        "{}/wechat?{}",
        s.base,
        signed_query("1", "2").replace("timestamp=1", "timestamp=3")
    );
    let r = s
        .client
        .post(bad_sig)
        .body(text_xml("oForged", "hi", 2))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    for (body, want) in [
        ("<xml><ToUserName>", 400),
        ("not xml at all", 400),
        (
            "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">]><xml><FromUserName>&lol;</FromUserName></xml>",
            400,
        ),
    ] {
        assert_eq!(post_plain(&s, body).await.0, want, "{body}");
    }
    let huge = text_xml("oHuge", &"长".repeat(40_000), 3);
    assert_eq!(post_plain(&s, &huge).await.0, 413);
    let url = format!("{}/wechat?{}", s.base, signed_query("1409735669", "1320562132"));
    let r = s.client.post(url).body(vec![0xff, 0xfe, 0x3c]).send().await.unwrap();
    assert_eq!(r.status(), 400);
    for who in ["wechat:oForged", "wechat:oHuge"] {
        assert!(
            s.store().session(who).unwrap().is_none(),
            "{who} never reached the core"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_up_in_safe_mode_with_a_retry_is_applied_once() {
    let s = serve(wechat_env(&[])).await;
    let cipher = Cipher::new(AES_KEY, APP_ID).unwrap();
    let who = "oSafeUser0000000000000000001";
    let steps = ["我要报名Web3.0论坛", "张三", "星穹视效", "13812345678"];
    for (i, step) in steps.iter().enumerate() {
        let push = text_xml(who, step, 100 + i as u64);
        let r = post_safe(&s, &cipher, &push).await;
        assert_ne!(r, "success", "step {i}");
        if i == 1 {
            // WeChat retries the name step: the same prompt again, applied once.
            assert_eq!(post_safe(&s, &cipher, &push).await, r, "a retry in the middle");
        }
    }
    let confirm = text_xml(who, "是", 200);
    let first = post_safe(&s, &cipher, &confirm).await;
    assert!(first.starts_with("报名成功"), "{first}");
    let again = post_safe(&s, &cipher, &confirm).await;
    assert_eq!(again, first, "a retried MsgId gets the same reply");

    let csv_url = format!("{}/admin/registrations?event=web3-forum", s.base);
    let r = s.client.get(&csv_url).send().await.unwrap();
    assert_eq!(r.status(), 401, "the admin API needs the token");
    let r = s.client.get(&csv_url).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = s.client.get(&csv_url).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csv = r.text().await.unwrap();
    assert_eq!(csv.lines().count(), 2, "one registration: {csv}");
    assert!(csv.contains(&format!("wechat:{who}")), "{csv}");

    let metrics = s.metrics().await;
    assert!(
        metrics.contains("parkbot_messages_total{channel=\"wechat\"} 7"),
        "{metrics}"
    );
    assert!(metrics.contains("parkbot_retries_recognised_total 2"), "{metrics}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compatible_mode_is_read_from_the_encrypted_part() {
    let s = serve(wechat_env(&[])).await;
    let cipher = Cipher::new(AES_KEY, APP_ID).unwrap();
    let (timestamp, nonce) = ("1409735669", "1320562132");
    // The plain fields say one thing; the encrypted part is what counts.
    let inner = text_xml("oCompat", "刘慈欣工作室在哪里？", 42);
    let encrypt = cipher.encrypt(&inner);
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oCompat]]></FromUserName>\
         <CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]></Content>\
         <MsgId>42</MsgId><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    );
    let msg_sig = crypto::msg_signature(TOKEN, timestamp, nonce, &encrypt);
    let url = format!(
        "{}/wechat?{}&encrypt_type=aes&msg_signature={msg_sig}",
        s.base,
        signed_query(timestamp, nonce)
    );
    let r = s.client.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let reply = r.text().await.unwrap();
    let enc_start = reply.find("<Encrypt><![CDATA[").unwrap() + "<Encrypt><![CDATA[".len();
    let enc = &reply[enc_start..enc_start + reply[enc_start..].find("]]>").unwrap()];
    assert!(content(&cipher.decrypt(enc).unwrap()).starts_with("刘慈欣工作室"));
    // A forged msg_signature is refused before anything is decrypted.
    let forged = url.replace(&msg_sig, &"0".repeat(40));
    assert_eq!(s.client.post(forged).body(body).send().await.unwrap().status(), 403);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_scan_click_and_other_messages() {
    let s = serve(wechat_env(&[])).await;
    let (_, r) = post_plain(
        &s,
        &event_xml("oFollow", "subscribe", Some("qrscene_signup:web3-forum"), 1),
    )
    .await;
    assert!(
        content(&r).contains("姓名"),
        "a follow through a sign-up code starts it: {r}"
    );
    assert_eq!(
        s.store()
            .subscriber("wechat:oFollow")
            .unwrap()
            .unwrap()
            .scene
            .as_deref(),
        Some("signup:web3-forum")
    );
    let (_, r) = post_plain(&s, &event_xml("oScan", "SCAN", Some("signup:web3-forum"), 2)).await;
    assert!(content(&r).contains("姓名"), "{r}");
    let (_, r) = post_plain(&s, &event_xml("oClick", "CLICK", Some("EVENTS"), 3)).await;
    assert!(
        content(&r).contains("Web3.0"),
        "the menu key stands for its message: {r}"
    );
    let (status, r) = post_plain(&s, &event_xml("oFollow", "unsubscribe", None, 4)).await;
    assert_eq!((status, r.as_str()), (200, "success"));
    assert!(!s.store().subscriber("wechat:oFollow").unwrap().unwrap().subscribed);
    let image = "<xml><ToUserName>gh_1</ToUserName><FromUserName>oImg</FromUserName><CreateTime>5</CreateTime>\
                 <MsgType>image</MsgType><PicUrl>http://x</PicUrl><MediaId>m</MediaId><MsgId>77</MsgId></xml>";
    let (_, r) = post_plain(&s, image).await;
    assert!(
        content(&r).contains("文字"),
        "a polite reply about what the bot reads: {r}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_mutated_bodies_never_bring_the_server_down() {
    let s = serve(wechat_env(&[])).await;
    let samples = [
        text_xml("oFuzz", "你好", 1),
        event_xml("oFuzz", "subscribe", Some("qrscene_x"), 1),
        event_xml("oFuzz", "CLICK", Some("EVENTS"), 1),
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let url = format!("{}/wechat?{}", s.base, signed_query("1409735669", "1320562132"));
    for i in 0..3000 {
        let mut body = samples[i % samples.len()].clone().into_bytes();
        match next() % 4 {
            0 => {
                for _ in 0..1 + next() % 8 {
                    let at = next() % body.len();
                    body[at] = (next() % 256) as u8;
                }
            }
            1 => body.truncate(next() % body.len()),
            2 => {
                let at = next() % body.len();
                let chunk = body[at..].to_vec();
                body.extend_from_slice(&chunk);
            }
            _ => body = (0..next() % 300).map(|_| (next() % 256) as u8).collect(),
        }
        let r = s.client.post(&url).body(body).send().await.expect("the server answers");
        assert!(r.status().as_u16() < 500, "status {} for mutation {i}", r.status());
    }
    let r = s.client.get(format!("{}/healthz", s.base)).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused() {
    let s = serve(wechat_env(&[])).await;
    let r = s
        .client
        .get(format!("{}/healthz", s.base))
        .header("x-padding", "a".repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    let mut many = s.client.get(format!("{}/healthz", s.base));
    for i in 0..80 {
        many = many.header(format!("x-h{i}"), "1");
    }
    assert_eq!(many.send().await.unwrap().status(), 431);
    let ok = s.client.get(format!("{}/healthz", s.base)).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_hardening_refuses_stale_signatures_and_plaintext() {
    let s = serve(wechat_env(&[
        ("PARKBOT_WECHAT__MAX_TIMESTAMP_SKEW_SECS", "300"),
        ("PARKBOT_WECHAT__REQUIRE_SAFE_MODE", "true"),
    ]))
    .await;
    let cipher = Cipher::new(AES_KEY, APP_ID).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let post = |timestamp: &str, safe: bool| {
        let inner = text_xml("oHard", "你好", 1);
        let (body, extra) = if safe {
            let encrypt = cipher.encrypt(&inner);
            let sig = crypto::msg_signature(TOKEN, timestamp, "7", &encrypt);
            (
                format!("<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"),
                format!("&encrypt_type=aes&msg_signature={sig}"),
            )
        } else {
            (inner, String::new())
        };
        let url = format!("{}/wechat?{}{extra}", s.base, signed_query(timestamp, "7"));
        s.client.post(url).body(body).send()
    };
    assert_eq!(post(&now, true).await.unwrap().status(), 200);
    assert_eq!(
        post("1409735669", true).await.unwrap().status(),
        403,
        "a replayed old signature"
    );
    assert_eq!(post(&now, false).await.unwrap().status(), 403, "plaintext refused");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_the_admin_api_is_off() {
    let s = serve(wechat_env(&[("PARKBOT_STAFF__ADMIN_TOKEN", "")])).await;
    let r = s
        .client
        .get(format!("{}/admin/registrations", s.base))
        .bearer_auth("")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    tokio::time::sleep(Duration::from_millis(1)).await;
    s.stop().await;
}
