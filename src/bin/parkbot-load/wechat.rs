//! `parkbot-load wechat`: the WeChat endpoint under load, as WeChat would
//! drive it — signed plain-mode (or safe-mode) text messages from many
//! senders with never-repeating MsgIds — measured against a bare axum
//! handler that checks the same signature and returns a fixed reply (the
//! ceiling), in the same run. Also p99 at a fixed rate (open loop: latency
//! counted from each request's scheduled time) and the server's RSS idle
//! and loaded. Everything runs on this machine, over loopback.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::extract::{Query, State};
use parkbot::channels::wechat::crypto::{self, Cipher};

/// The token both servers check.
pub const TOKEN: &str = "parkbot-load-token";
/// A real-style EncodingAESKey (non-zero trailing bits) and an AppID.
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APP_ID: &str = "wx2c2769f8efd9abc2";

/// Questions the senders ask, in both languages.
const QUESTIONS: &[&str] = &[
    "刘慈欣工作室在哪里？",
    "Which VFX companies are here?",
    "最近有什么活动",
    "Is parking free?",
    "怎么入驻？",
    "首钢园Web3.0国际论坛在哪里开？",
];

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// CPU time the process has used (user and system), from
    /// `/proc/PID/stat`; 0 where there is no such file.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0.id())).unwrap_or_default();
        // After the command's name (in parentheses): utime and stime are
        // the 12th and 13th fields, in clock ticks.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(Vec::new(), |(_, r)| r.split_whitespace().collect());
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
            .sum();
        ticks / clock_ticks_per_second()
    }

    fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

#[cfg(target_os = "linux")]
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

#[cfg(not(target_os = "linux"))]
fn clock_ticks_per_second() -> f64 {
    100.0
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn wait_healthy(client: &reqwest::Client, base: &str) -> Result<()> {
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{base} did not come up")
}

/// Starts `parkbot serve` on a free port over a new store in `dir`.
fn start_parkbot(parkbot: &Path, dir: &Path, port: u16, safe: bool) -> Result<Proc> {
    let mut c = Command::new(parkbot);
    c.arg("--db")
        .arg(dir.join("load.redb"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("PARKBOT_WECHAT__ENABLED", "true")
        .env("PARKBOT_WECHAT__TOKEN", TOKEN)
        .env("PARKBOT_WECHAT__APP_ID", APP_ID)
        .env("PARKBOT_SERVER__MESSAGES_PER_MINUTE", "0")
        .env("RUST_LOG", "error")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if safe {
        c.env("PARKBOT_WECHAT__ENCODING_AES_KEY", AES_KEY);
    }
    Ok(Proc(c.spawn().with_context(|| format!("start {}", parkbot.display()))?))
}

/// How the Python comparison (`tools/python-wechat/app.py`) is served.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PythonServer {
    /// gunicorn, one sync worker per core
    Gunicorn,
    /// Flask's own threaded server (`python3 app.py`)
    FlaskDev,
}

impl PythonServer {
    fn label(self) -> &'static str {
        match self {
            PythonServer::Gunicorn => "python (Flask, gunicorn)",
            PythonServer::FlaskDev => "python (Flask dev server)",
        }
    }
}

/// Starts the Python comparison on a free port.
fn start_python(dir: &Path, server: PythonServer, port: u16) -> Result<Proc> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut c = match server {
        PythonServer::Gunicorn => {
            let mut c = Command::new("gunicorn");
            c.args([
                "-w",
                &workers.to_string(),
                "-b",
                &format!("127.0.0.1:{port}"),
                "app:app",
            ]);
            c
        }
        PythonServer::FlaskDev => {
            let mut c = Command::new("python3");
            c.arg("app.py").env("PORT", port.to_string());
            c
        }
    };
    let child = c
        .env("WECHAT_TOKEN", TOKEN)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("start the Python comparison (pip install -r tools/python-wechat/requirements.txt)")?;
    Ok(Proc(child))
}

/// Starts this tool's bare ceiling server on a free port.
fn start_ceiling(port: u16) -> Result<Proc> {
    let me = std::env::current_exe()?;
    let child = Command::new(me)
        .args(["ceiling", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()?;
    Ok(Proc(child))
}

#[derive(serde::Deserialize)]
struct SigQuery {
    #[serde(default)]
    signature: String,
    #[serde(default)]
    timestamp: String,
    #[serde(default)]
    nonce: String,
}

/// The ceiling: a bare axum handler that checks the same signature and
/// answers a fixed passive reply.
pub async fn ceiling(listen: std::net::SocketAddr) -> Result<()> {
    async fn handle(
        State(token): State<Arc<String>>,
        Query(q): Query<SigQuery>,
        _body: axum::body::Bytes,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        if !crypto::verify(&crypto::signature(&token, &q.timestamp, &q.nonce), &q.signature) {
            return (axum::http::StatusCode::FORBIDDEN, "bad signature").into_response();
        }
        (
            [(axum::http::header::CONTENT_TYPE, "application/xml")],
            "<xml><ToUserName><![CDATA[o]]></ToUserName><FromUserName><![CDATA[gh]]></FromUserName>\
             <CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[ok]]></Content></xml>",
        )
            .into_response()
    }
    let app = axum::Router::new()
        .route("/wechat", axum::routing::post(handle))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .with_state(Arc::new(TOKEN.to_string()));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// One push's URL and body; `n` picks the sender and the MsgId.
fn push(base: &str, n: u64, senders: u64, cipher: Option<&Cipher>) -> (String, String) {
    let sender = format!("oLoad{:023}", n % senders);
    let q = QUESTIONS[(n as usize / 7) % QUESTIONS.len()];
    let xml = format!(
        "<xml><ToUserName><![CDATA[gh_load]]></ToUserName><FromUserName><![CDATA[{sender}]]></FromUserName>\
         <CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{q}]]></Content>\
         <MsgId>{}</MsgId></xml>",
        1_700_000_000 + n,
        7_000_000_000_000_000_000u64 + n
    );
    let (timestamp, nonce) = ("1700000000".to_string(), format!("{}", 100_000 + n % 900_000));
    let sig = crypto::signature(TOKEN, &timestamp, &nonce);
    match cipher {
        None => (
            format!("{base}/wechat?signature={sig}&timestamp={timestamp}&nonce={nonce}"),
            xml,
        ),
        Some(c) => {
            let encrypt = c.encrypt(&xml);
            let msig = crypto::msg_signature(TOKEN, &timestamp, &nonce, &encrypt);
            (
                format!(
                    "{base}/wechat?signature={sig}&timestamp={timestamp}&nonce={nonce}&encrypt_type=aes&msg_signature={msig}"
                ),
                format!(
                    "<xml><ToUserName><![CDATA[gh_load]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
                ),
            )
        }
    }
}

/// Results of one run.
pub struct Run {
    pub requests: usize,
    pub errors: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Each request's latency, sorted.
    latencies: Vec<Duration>,
}

impl Run {
    fn new(latencies: Vec<Duration>, errors: u64, seconds: f64) -> Run {
        let mut latencies = latencies;
        latencies.sort();
        Run {
            requests: latencies.len(),
            errors,
            seconds,
            p50_ms: percentile(&latencies, 0.5),
            p99_ms: percentile(&latencies, 0.99),
            latencies,
        }
    }

    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    /// Several runs taken as one: requests and seconds added up,
    /// percentiles over all their requests.
    fn merge(runs: Vec<Run>) -> Run {
        let (errors, seconds) = runs.iter().fold((0, 0.0), |(e, s), r| (e + r.errors, s + r.seconds));
        Run::new(runs.into_iter().flat_map(|r| r.latencies).collect(), errors, seconds)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Closed loop: `concurrency` clients, each sending as soon as answered,
/// for `seconds`; MsgIds start at `first`.
pub async fn closed(base: &str, concurrency: usize, seconds: f64, first: u64, senders: u64, safe: bool) -> Result<Run> {
    closed_until(base, concurrency, Limit::Seconds(seconds), first, senders, safe).await
}

/// How long a closed-loop run goes on.
#[derive(Clone, Copy)]
pub enum Limit {
    Seconds(f64),
    /// Exactly this many requests (MsgIds `first..first + n`).
    Requests(u64),
}

pub async fn closed_until(
    base: &str,
    concurrency: usize,
    limit: Limit,
    first: u64,
    senders: u64,
    safe: bool,
) -> Result<Run> {
    let (seconds, last) = match limit {
        Limit::Seconds(s) => (s, u64::MAX),
        Limit::Requests(n) => (f64::MAX / 4.0, first + n),
    };
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let next = Arc::new(AtomicU64::new(first));
    let errors = Arc::new(AtomicU64::new(0));
    let cipher = if safe {
        Some(Arc::new(Cipher::new(AES_KEY, APP_ID)?))
    } else {
        None
    };
    let deadline = Instant::now() + Duration::from_secs_f64(seconds.min(86_400.0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next, errors, base, cipher) = (
            client.clone(),
            next.clone(),
            errors.clone(),
            base.to_string(),
            cipher.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= last {
                    break;
                }
                let (url, body) = push(&base, n, senders, cipher.as_deref());
                let t = Instant::now();
                match client.post(url).body(body).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    Ok(Run::new(
        all,
        errors.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
    ))
}

/// Open loop: requests scheduled at `rate` per second for `seconds`, each
/// one's latency counted from its scheduled time.
pub async fn open(base: &str, rate: f64, seconds: f64, first: u64, senders: u64) -> Result<Run> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let errors = Arc::new(AtomicU64::new(0));
    let total = (rate * seconds) as u64;
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(at).await;
        let (client, errors) = (client.clone(), errors.clone());
        let (url, body) = push(base, first + i, senders, None);
        tasks.push(tokio::spawn(async move {
            match client.post(url).body(body).send().await {
                Ok(r) if r.status().is_success() => {
                    let _ = r.bytes().await;
                }
                _ => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            at.elapsed()
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await?);
    }
    Ok(Run::new(
        all,
        errors.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
    ))
}

/// The whole benchmark, printed as a table.
pub async fn bench(
    parkbot: PathBuf,
    concurrency: usize,
    seconds: f64,
    senders: u64,
    rate: f64,
    rounds: usize,
    python: Option<(PathBuf, PythonServer)>,
) -> Result<()> {
    let rounds = rounds.max(1);
    let parkbot = parkbot
        .canonicalize()
        .with_context(|| format!("{}: build it first (cargo build --release)", parkbot.display()))?;
    let client = reqwest::Client::new();
    let dir = std::env::temp_dir().join(format!("parkbot-load-wechat-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = async {
        let port = free_port()?;
        let server = start_parkbot(&parkbot, &dir, port, false)?;
        let base = format!("http://127.0.0.1:{port}");
        wait_healthy(&client, &base).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle = server.rss_mb();
        println!("parkbot serve idle RSS: {idle:.1} MB");
        // Every sender's first message: a new subscriber and session each.
        let cold = closed_until(
            &base,
            concurrency,
            Limit::Requests(senders),
            3_000_000_000,
            senders,
            false,
        )
        .await?;
        // Then the measured runs, returning senders with new MsgIds, in
        // rounds that take turns with the ceiling (both servers are up,
        // one of them idle): a machine whose speed drifts during the run
        // weighs on both sides alike.
        let cport = free_port()?;
        let ceiling_server = start_ceiling(cport)?;
        let cbase = format!("http://127.0.0.1:{cport}");
        wait_healthy(&client, &cbase).await?;
        closed(&cbase, concurrency, 1.0, 1_000_000_000, senders, false).await?;
        let slice = seconds / rounds as f64;
        let (mut ours, mut bare) = (Vec::new(), Vec::new());
        // Serve's CPU time over its plain rounds (it idles through the
        // ceiling's).
        let mut serve_cpu = 0.0;
        for r in 0..rounds as u64 {
            let before = server.cpu_seconds();
            ours.push(closed(&base, concurrency, slice, r * 100_000_000, senders, false).await?);
            serve_cpu += server.cpu_seconds() - before;
            bare.push(closed(&cbase, concurrency, slice, r * 100_000_000, senders, false).await?);
        }
        drop(ceiling_server);
        let by_round: Vec<String> = ours
            .iter()
            .zip(&bare)
            .map(|(o, b)| format!("{:.0} %", 100.0 * o.per_second() / b.per_second()))
            .collect();
        let (ours, bare) = (Run::merge(ours), Run::merge(bare));
        let loaded = server.rss_mb();
        let fixed = open(&base, rate, seconds.max(5.0), 2_000_000_000, senders).await?;
        drop(server);

        let sport = free_port()?;
        let sdir = dir.join("safe");
        std::fs::create_dir_all(&sdir)?;
        let safe_server = start_parkbot(&parkbot, &sdir, sport, true)?;
        let sbase = format!("http://127.0.0.1:{sport}");
        wait_healthy(&client, &sbase).await?;
        closed(&sbase, concurrency, 1.0, 1_000_000_000, senders, true).await?;
        let safe = closed(&sbase, concurrency, seconds, 0, senders, true).await?;
        drop(safe_server);

        let py = match &python {
            Some((pdir, kind)) => {
                let pport = free_port()?;
                let py_server = start_python(pdir, *kind, pport)?;
                let pbase = format!("http://127.0.0.1:{pport}");
                wait_healthy(&client, &pbase).await?;
                closed(&pbase, concurrency, 1.0, 1_000_000_000, senders, false).await?;
                let r = closed(&pbase, concurrency, seconds, 0, senders, false).await?;
                drop(py_server);
                Some((kind.label(), r))
            }
            None => None,
        };

        println!("run                         requests  errors  req/s     p50_ms  p99_ms");
        let mut rows = vec![
            ("first contact (all senders)", &cold),
            ("parkbot /wechat plain", &ours),
            ("bare axum ceiling", &bare),
            ("parkbot /wechat safe (AES)", &safe),
        ];
        if let Some((label, p)) = &py {
            rows.push((label, p));
        }
        for (name, r) in rows {
            println!(
                "{name:<27} {:>8}  {:>6}  {:>8.0}  {:>6.2}  {:>6.2}",
                r.requests,
                r.errors,
                r.per_second(),
                r.p50_ms,
                r.p99_ms
            );
        }
        println!(
            "plain throughput / ceiling: {:.0} %   (concurrency {concurrency}, {senders} senders, {seconds} s each, in {rounds} rounds: {})",
            100.0 * ours.per_second() / bare.per_second(),
            by_round.join(", ")
        );
        if let Some((_, p)) = &py {
            println!(
                "plain throughput / python: {:.1}×",
                ours.per_second() / p.per_second().max(f64::MIN_POSITIVE)
            );
        }
        println!(
            "open loop at {rate:.0}/s: {} requests, {} errors, p50 {:.2} ms, p99 {:.2} ms",
            fixed.requests, fixed.errors, fixed.p50_ms, fixed.p99_ms
        );
        println!("RSS idle {idle:.1} MB, loaded {loaded:.1} MB");
        println!(
            "serve's CPU per plain message: {:.1} µs (user and system, all its threads)",
            serve_cpu * 1e6 / ours.requests.max(1) as f64
        );
        anyhow::Ok(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}
