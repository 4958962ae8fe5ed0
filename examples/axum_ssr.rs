//! Server-side rendering from an axum handler:
//! `npm ci && cargo run -p jshost-web-examples --example axum_ssr`, then
//! `curl 'http://127.0.0.1:3000/?title=Shop'`. It belongs to the package in `examples/web/`, which
//! holds the web frameworks, so that the quick start builds none.
//!
//! The `JsHost` lives in the router state (it is a cheap handle: no `Arc` needed). Each request
//! `.await`s the `render` function of `host.config.js`; a JavaScript error becomes a 500 page
//! carrying the JS error's first line, logged with its whole stack; a host that is down becomes a
//! 503. Settings come from `JSHOST_*` variables (the manager is used unless
//! `JSHOST_USE_MANAGER=false`); `PORT` picks the port.
//!
//! In development (a debug build, unless `JSHOST_WATCH=false`) the host runs with jshost-node's
//! `--watch`: edit `host.config.js` (or a file it requires) and the next request uses the new
//! code, and a function added to it is callable at once, without restarting this program.
#![allow(clippy::print_stdout)]

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use jshost::{JsHost, Settings};
use serde_json::json;

/// The page's query string: `?title=...&items=...`.
#[derive(Debug, serde::Deserialize)]
pub struct Page {
    title: Option<String>,
    /// How many demo items to render (default 10; `items=-1` makes the JS function fail).
    items: Option<i64>,
}

/// A rendering failure, turned into an HTTP answer.
pub struct RenderError(jshost::Error);

impl IntoResponse for RenderError {
    fn into_response(self) -> Response {
        let e = self.0;
        tracing::error!(error = %e, "render failed");
        let (status, what) = if e.is_function() {
            let first_line = e
                .js_stack()
                .and_then(|s| s.lines().next())
                .unwrap_or("unknown error");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("The page could not be rendered: {first_line}"),
            )
        } else if e.is_timeout() {
            (StatusCode::GATEWAY_TIMEOUT, "Rendering took too long".to_owned())
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The renderer is unavailable".to_owned(),
            )
        };
        (status, what).into_response()
    }
}

async fn page(State(host): State<JsHost>, Query(page): Query<Page>) -> Result<Html<String>, RenderError> {
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
    Ok(Html(html))
}

/// The application: `GET /` renders a page through `host`.
pub fn app(host: JsHost) -> Router {
    Router::new().route("/", get(page)).with_state(host)
}

#[allow(dead_code)]
#[tokio::main]
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
    if cfg!(debug_assertions) && std::env::var_os("JSHOST_WATCH").is_none() {
        // Hot reload while developing (a warm host started without it is restarted with it).
        settings = settings.watch(true);
    }
    let host = JsHost::connect(settings).await?;
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(host.clone()))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    host.disconnect().await?;
    Ok(())
}
