//! Every call runs in a `jshost.call` span (target `jshost`) carrying the function, the host's
//! URL and, for a call that travelled in a batch, the batch size: what a subscriber needs to time
//! calls and tie them to the request spans of the service that made them.
//!
//! A test binary of its own: it installs a subscriber, and `tracing` caches per call site whether
//! anyone listens, which other tests running in the same process (without one) would disturb.
#![allow(clippy::unwrap_used)]

use futures::future::join_all;
use jshost::JsHost;
use jshost_integration::{repo_root, Fixture};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// A span's fields, and the name of the span it was opened in.
type Seen = (HashMap<String, String>, Option<String>);

/// The fields of every `jshost.call` span, by span id, and the parent each one was opened in.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<HashMap<u64, Seen>>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
}

impl<S> Layer<S> for Calls
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "jshost.call" {
            return;
        }
        assert_eq!(attrs.metadata().target(), "jshost");
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = ctx.lookup_current().map(|s| s.name().to_owned());
        self.0.lock().unwrap().insert(id.into_u64(), (fields, parent));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        if let Some((fields, _)) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
}

#[test]
fn each_call_has_a_span_with_its_function_url_and_batch_size() {
    let calls = Calls::default();
    let subscriber = tracing_subscriber::registry().with(calls.clone());
    let _default = tracing::subscriber::set_default(subscriber);
    let fixture = Fixture::new("spans", "");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let settings = fixture
        .settings()
        .path_to_bin(repo_root().join(jshost_core::settings::DEFAULT_PATH_TO_BIN));
    let host = runtime.block_on(JsHost::spawn(settings)).unwrap();
    runtime.block_on(async {
        let request = tracing::info_span!("http_request");
        let _entered = request.enter();
        host.function("echo").call(&json!({"lone": 1})).await.unwrap();
    });
    let echo = host.function("echo");
    runtime.block_on(join_all((0..100).map(|i| {
        let echo = echo.clone();
        async move { echo.call(&json!({ "i": i })).await.unwrap() }
    })));
    let recorded = calls.0.lock().unwrap().clone();
    assert_eq!(recorded.len(), 101, "one span per call");
    assert!(recorded
        .values()
        .all(|(f, _)| f.get("function").map(String::as_str) == Some("echo")));
    let urls: std::collections::HashSet<_> = recorded.values().map(|(f, _)| f.get("url")).collect();
    assert_eq!(
        urls,
        [Some(&host.url())].into(),
        "the url of the host that served it"
    );
    assert!(
        recorded
            .values()
            .any(|(_, parent)| parent.as_deref() == Some("http_request")),
        "a call's span nests under the caller's span"
    );
    let batched: Vec<usize> = recorded
        .values()
        .filter_map(|(f, _)| f.get("batch")?.parse().ok())
        .collect();
    assert!(
        !batched.is_empty() && batched.iter().all(|n| *n >= 1),
        "{batched:?}"
    );
}
