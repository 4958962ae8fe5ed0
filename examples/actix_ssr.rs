//! Server-side rendering from an actix-web handler, the same page as `axum_ssr`:
//! `npm ci && cargo run -p jshost-web-examples --example actix_ssr`, then
//! `curl 'http://127.0.0.1:3000/?title=Shop'`. It belongs to the package in `examples/web/`, which
//! holds the web frameworks, so that the quick start builds none.
//!
//! actix-web runs each worker on a thread of its own with a current-thread runtime. Each worker's
//! app gets a clone of the `JsHost` (a cheap handle: no `Arc` needed), and its calls run on that
//! worker's runtime, on connections of its own. Each request `.await`s the `render` function of
//! `host.config.js`; a JavaScript error becomes a 500 page carrying the JS error's first line,
//! logged with its whole stack; a host that is down becomes a 503. Settings come from `JSHOST_*`
//! variables (the manager is used unless `JSHOST_USE_MANAGER=false`); `PORT` picks the port and
//! `WORKERS` the number of workers (default: one per core). Ctrl-C stops it gracefully.
#![allow(clippy::print_stdout)]

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer, ResponseError};
use jshost::{JsHost, Settings};
use serde_json::json;
use std::future::Future;
use std::net::TcpListener;

/// The page's query string: `?title=...&items=...`.
#[derive(Debug, serde::Deserialize)]
pub struct Page {
    title: Option<String>,
    /// How many demo items to render (default 10; `items=-1` makes the JS function fail).
    items: Option<i64>,
}

/// A rendering failure, turned into an HTTP answer.
#[derive(Debug)]
pub struct RenderError(jshost::Error);

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_function() {
            let first_line = self
                .0
                .js_stack()
                .and_then(|s| s.lines().next())
                .unwrap_or("unknown error");
            write!(f, "The page could not be rendered: {first_line}")
        } else if self.0.is_timeout() {
            f.write_str("Rendering took too long")
        } else {
            f.write_str("The renderer is unavailable")
        }
    }
}

impl ResponseError for RenderError {
    fn status_code(&self) -> StatusCode {
        if self.0.is_function() {
            StatusCode::INTERNAL_SERVER_ERROR
        } else if self.0.is_timeout() {
            StatusCode::GATEWAY_TIMEOUT
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }

    fn error_response(&self) -> HttpResponse {
        tracing::error!(error = %self.0, "render failed");
        HttpResponse::build(self.status_code())
            .content_type("text/plain; charset=utf-8")
            .body(self.to_string())
    }
}

async fn page(host: web::Data<JsHost>, page: web::Query<Page>) -> Result<web::Html, RenderError> {
    let page = page.into_inner();
    let count = page.items.unwrap_or(10);
    let items = if count < 0 {
        json!(null) // not an array: the JS function reports an error
    } else {
        (0..count)
            .map(|i| json!({"name": format!("Item {i}"), "price": i * 3}))
            .collect()
    };
    let data = json!({"title": page.title.unwrap_or_else(|| "Items".into()), "items": items});
    let html = host.function("render").call(&data).await.map_err(RenderError)?;
    Ok(web::Html::new(html))
}

/// The application's server: `GET /` renders a page through `host`, served on `listener` by
/// `workers` worker threads, each with its own clone of `host`, until `shutdown` completes (then
/// it stops gracefully; actix's own signal handling is off). Call it inside a tokio or actix
/// runtime and `.await` the returned `Server` (its `handle()` can stop it too).
pub fn server(
    host: JsHost,
    listener: TcpListener,
    workers: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(host.clone()))
            .route("/", web::get().to(page))
    })
    .workers(workers)
    .shutdown_signal(shutdown)
    .listen(listener)?
    .run();
    Ok(server)
}

#[allow(dead_code)]
#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let mut settings = Settings::from_env()?;
    if settings.source_root.is_none() {
        // The repository root, two levels above this example's package (examples/web/), holds
        // package.json, node_modules and host.config.js.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .ok_or("examples/web/ has no grandparent")?;
        settings = settings.source_root(root);
    }
    if std::env::var_os("JSHOST_USE_MANAGER").is_none() {
        settings = settings.use_manager(true);
    }
    let host = JsHost::connect(settings).await?;
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let workers = match std::env::var("WORKERS") {
        Ok(n) => n.parse()?,
        Err(_) => std::thread::available_parallelism().map_or(2, usize::from),
    };
    let listener = TcpListener::bind(format!("127.0.0.1:{port}"))?;
    println!(
        "listening on http://{} ({workers} workers)",
        listener.local_addr()?
    );
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    server(host.clone(), listener, workers, ctrl_c)?.await?;
    host.disconnect().await?;
    Ok(())
}
