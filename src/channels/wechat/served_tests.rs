//! The WeChat endpoint served over loopback with a slow core (a test-only
//! hook of the bot): the 5-second budget answered with `success` and the
//! answer sent through a mock customer-service API, a retry of it answered
//! `success` again, a long answer split, and a graceful shutdown with a
//! request in flight.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::{get, post};

use crate::app::App;
use crate::config::Config;
use crate::message::{Channel, Identity};

const TOKEN: &str = "tok";

/// A mock WeChat API: the token endpoint and customer-service sends.
async fn mock_api() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let sent: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let app = axum::Router::new()
        .route(
            "/cgi-bin/token",
            get(|| async { Json(serde_json::json!({"access_token": "T1", "expires_in": 7200})) }),
        )
        .route(
            "/cgi-bin/message/custom/send",
            post(
                |State(sent): State<Arc<Mutex<Vec<serde_json::Value>>>>, Json(body): Json<serde_json::Value>| async move {
                    sent.lock().unwrap().push(body);
                    Json(serde_json::json!({"errcode": 0, "errmsg": "ok"}))
                },
            ),
        )
        .with_state(sent.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, sent)
}

struct Served {
    base: String,
    bot: Arc<crate::bot::Bot>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn serve(api_base: &str, budget_ms: &str, extra_knowledge: Option<&str>) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<(String, String)> = [
        ("PARKBOT_WECHAT__ENABLED", "true"),
        ("PARKBOT_WECHAT__TOKEN", TOKEN),
        ("PARKBOT_WECHAT__APP_ID", "wxapp"),
        ("PARKBOT_WECHAT__APP_SECRET", "secret"),
        ("PARKBOT_WECHAT__API_BASE", api_base),
        ("PARKBOT_WECHAT__REPLY_BUDGET_MS", budget_ms),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(k) = extra_knowledge {
        let path = dir.path().join("extra.toml");
        std::fs::write(&path, k).unwrap();
        env.push((
            "PARKBOT_KNOWLEDGE__SEED".into(),
            format!("data/park.toml,{}", path.display()),
        ));
    }
    let config = Config::default_with_env(env).unwrap();
    let app = App::open(config.clone(), Some(&dir.path().join("w.redb"))).unwrap();
    let bot = Arc::new(app.bot(crate::bot::system_clock()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (router, _, shared) = crate::server::router(bot.clone(), config);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(crate::server::run(listener, router, shared, async {
        let _ = stopped.await;
    }));
    Served {
        base,
        bot,
        stop,
        task,
        _dir: dir,
    }
}

fn push(from: &str, text: &str, id: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName>\
         <CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content><MsgId>{id}</MsgId></xml>"
    )
}

async fn post_push(base: &str, body: String) -> reqwest::Response {
    let q = format!(
        "signature={}&timestamp=1&nonce=2",
        super::crypto::signature(TOKEN, "1", "2")
    );
    reqwest::Client::new()
        .post(format!("{base}/wechat?{q}"))
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn wait_for(sent: &Arc<Mutex<Vec<serde_json::Value>>>, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..200 {
        if sent.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    sent.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_budget_success_comes_at_once_and_the_answer_follows() {
    let (api, sent) = mock_api().await;
    let s = serve(&api, "200", None).await;
    s.bot.slow_down(
        Identity::new(Channel::Wechat, "oSlow").unwrap(),
        Duration::from_millis(1500),
    );
    let r = post_push(&s.base, push("oSlow", "你好", 9001)).await;
    assert_eq!(r.text().await.unwrap(), "success");
    assert!(
        sent.lock().unwrap().is_empty(),
        "success came before the answer was ready"
    );
    // WeChat retries the same push: it gets success again, never a second answer.
    let r = post_push(&s.base, push("oSlow", "你好", 9001)).await;
    assert_eq!(r.text().await.unwrap(), "success");
    let got = wait_for(&sent, 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["touser"], "oSlow");
    assert!(got[0]["text"]["content"].as_str().unwrap().contains("您好"), "{got:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sent.lock().unwrap().len(), 1, "applied once");
    let _ = s.stop.send(());
    s.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_answer_is_split_passive_first_then_the_api() {
    let (api, sent) = mock_api().await;
    let long = (1..=40)
        .map(|i| format!("第{i}条：首钢园区服务说明，内容较长，用于测试分段发送。"))
        .collect::<Vec<_>>()
        .join("\\n");
    let faq = format!("[[faq]]\nid = \"long-guide\"\nquestions = [\"园区超长服务指南\"]\nanswer = \"{long}\"\n");
    let s = serve(&api, "4000", Some(&faq)).await;
    let r = post_push(&s.base, push("oLong", "园区超长服务指南", 1)).await;
    let body = r.text().await.unwrap();
    let first = super::xml::text_reply("x", "y", 0, "");
    assert!(first.contains("<Content>"));
    assert!(body.contains("第1条"), "{body}");
    assert!(
        body.len() < super::TEXT_LIMIT + 400,
        "the passive part is within the limit"
    );
    let got = wait_for(&sent, 1).await;
    assert!(!got.is_empty(), "the rest went through the API");
    let rest: String = got
        .iter()
        .map(|v| v["text"]["content"].as_str().unwrap().to_string())
        .collect();
    assert!(rest.contains("第40条"), "{rest}");
    let _ = s.stop.send(());
    s.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_request_in_flight() {
    let (api, _sent) = mock_api().await;
    let s = serve(&api, "4000", None).await;
    s.bot.slow_down(
        Identity::new(Channel::Wechat, "oBusy").unwrap(),
        Duration::from_millis(700),
    );
    let base = s.base.clone();
    let in_flight = tokio::spawn(async move { post_push(&base, push("oBusy", "你好", 5)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = s.stop.send(());
    let r = in_flight.await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("您好"), "the answer, not an error");
    s.task.await.unwrap().unwrap();
    let after = reqwest::Client::new().get(format!("{}/healthz", s.base)).send().await;
    assert!(after.is_err(), "no longer accepting");
}
