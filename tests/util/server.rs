//! A real `parkbot serve` router on 127.0.0.1:0 over a temp store, with a
//! configuration from environment-style pairs, and a clean stop.

use std::sync::Arc;

use parkbot::app::App;
use parkbot::config::Config;
use parkbot::store::Store;
use tokio::sync::oneshot;

pub struct Served {
    pub base: String,
    pub client: reqwest::Client,
    pub bot: Arc<parkbot::bot::Bot>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Served {
    pub fn store(&self) -> &Arc<Store> {
        self.bot.store()
    }

    /// `GET /metrics`, as text.
    pub async fn metrics(&self) -> String {
        let r = self.client.get(format!("{}/metrics", self.base)).send().await.unwrap();
        r.text().await.unwrap()
    }

    /// Graceful shutdown; the server's task must end cleanly.
    pub async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        (&mut self.task).await.expect("server task").expect("server ran");
    }
}

/// Serves the demo knowledge with `env` as the configuration's overrides.
pub async fn serve(env: Vec<(String, String)>) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default_with_env(env).expect("test configuration");
    let app = App::open(config.clone(), Some(&dir.path().join("serve.redb"))).unwrap();
    let now = time::macros::datetime!(2026-11-28 12:00 +08:00);
    let bot = Arc::new(app.bot(Arc::new(move || now)).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (router, _statuses, shared) = parkbot::server::router(bot.clone(), config);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(parkbot::server::run(listener, router, shared, async {
        let _ = stopped.await;
    }));
    Served {
        base,
        client: reqwest::Client::new(),
        bot,
        stop: Some(stop),
        task,
        _dir: dir,
    }
}
