//! Automatic batching: calls made while others are in flight to a jshost-node host leave
//! together in `POST /batch` requests.
//!
//! A call made when nothing is in flight or queued goes out at once as a plain call: a lone or
//! sequential call never waits and is never wrapped. So does a call that batching could hurt:
//! - its function's answers are not known to be small ([`AnswerSizes`]: it has not answered yet,
//!   or its answers average [`LARGE_ANSWER`] bytes or more). A batch answer carries each output
//!   as a JSON string, which the host escapes and the client unescapes, and no caller of a batch
//!   gets its answer before the slowest of its batch-mates is done: for large answers that costs
//!   more than the per-request work batching saves;
//! - its body is not exactly one JSON object or array ([`one_json_value`]: a `call_raw` body is
//!   pasted into the batch as its item's `"data"`, so anything else could change the batch);
//! - its item would not fit in a batch within the host's `requestDataLimit` ([`item_size`]).
//!
//! Any other call is queued. When a request slot is free (each host gets a few requests in
//! flight: four per worker process, since jshost-node spreads connections, not requests, over
//! its workers), a task spawned on the caller's runtime sends what queued once the calling task
//! lets go of its thread, so calls made together (a `join_all`, a `buffer_unordered` refilling,
//! handlers of one burst) leave together; with every slot taken, the next request to finish
//! sends them. A call that no batch has taken within [`LANE_WAIT`] is taken back and goes out
//! plain: slots held by slow batches never hold up other calls. A batch carries calls of one
//! function (its callers wait for the slowest of them), shared out over the free slots in parts
//! of at least 16 calls (the host works on one part while the next is sent; every worker gets a
//! part), each within `requestDataLimit`, its size counted exactly. Every call keeps its own
//! deadline (sent as the item's `timeout`, left out when Node's timers cannot keep it),
//! cancellation (dropping it), result and error: a batch item's answer goes through the same
//! [`call_result`] as a plain answer, and a batch that fails as a whole gives each of its calls
//! that failure.
//!
//! A host has one batcher per runtime that calls it ([`Batchers`]): a call queues only beside
//! calls made on its own runtime, and their batch is sent from that runtime, on its connections.
//! So a runtime that blocks or ends holds up no other runtime's calls, and a call never crosses
//! to another runtime's threads and back.

use bytes::{BufMut, Bytes, BytesMut};
use jshost_client::{call_result, call_timeout, function_url, host_timeout_ms, HttpClient};
use jshost_core::error::Build as _;
use jshost_core::{Error, ErrorKind, Result};
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// At most this many calls in one batch.
const MAX_BATCH: usize = 256;
/// Queued calls are shared out over several requests only in parts of at least this many.
const MIN_SHARE: usize = 16;
/// Idle batchers (maybe of runtimes that have ended) are forgotten past this many.
const KEEP_BATCHERS: usize = 8;
/// A function whose answers average at least this many bytes is called plain, never batched.
const LARGE_ANSWER: usize = 4096;
/// Answer sizes are kept for at most this many function names per host; calls of functions
/// beyond them go out plain.
const KEEP_SIZES: usize = 1024;
/// A queued call that no batch has taken after this long goes out plain, on a connection of its
/// own: it never waits for request slots held by other calls (slow ones, maybe) longer than this.
const LANE_WAIT: Duration = Duration::from_millis(2);
/// The bytes of a batch item around its function's name and its data, the timeout at its
/// longest: `{"function":` `,"data":` `,"timeout":2147483647` `}`.
const ITEM_FRAME: usize = 12 + 8 + 11 + 10 + 1;

/// The recent answer size of each function of a host (an average weighting the last answer by
/// a quarter), which decides whether its calls may be batched.
#[derive(Default)]
pub(crate) struct AnswerSizes {
    by_name: RwLock<HashMap<Box<str>, AtomicUsize>>,
}

impl AnswerSizes {
    /// Whether `name`'s answers are known to be small: its calls may be batched. A function
    /// that has not answered yet is not known: its calls go out plain until one answers.
    pub(crate) fn small(&self, name: &str) -> bool {
        let sizes = self
            .by_name
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sizes
            .get(name)
            .is_some_and(|s| s.load(Ordering::Relaxed) < LARGE_ANSWER)
    }

    /// Counts an answer of `size` bytes from `name`.
    pub(crate) fn record(&self, name: &str, size: usize) {
        {
            let sizes = self
                .by_name
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(s) = sizes.get(name) {
                // Two answers counted at once may overwrite each other's update: the average
                // stays between the old one and the new sizes, which is all the rule needs.
                let average = s.load(Ordering::Relaxed);
                s.store(next_average(average, size), Ordering::Relaxed);
                return;
            }
        }
        let mut sizes = self
            .by_name
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if sizes.len() < KEEP_SIZES {
            sizes.entry(name.into()).or_insert_with(|| AtomicUsize::new(size));
        }
    }
}

/// `average` moved a quarter of the way to `size`, rounded towards `size` so that answers of
/// one steady size bring it there exactly.
fn next_average(average: usize, size: usize) -> usize {
    let sum = average.saturating_mul(3).saturating_add(size);
    if size > average {
        sum.div_ceil(4)
    } else {
        sum / 4
    }
}

/// Whether `body` is exactly one JSON object or array (whitespace around it allowed): only such
/// a body can be pasted as an item's `"data"` without changing the batch around it. Anything
/// else (a `call_raw` body that is malformed, a scalar, several values, a byte-order mark) goes
/// out plain and gets the host's own answer.
pub(crate) fn one_json_value(body: &[u8]) -> bool {
    let first = body.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    matches!(first, Some(b'{' | b'[')) && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

/// The length of `s` encoded as a JSON string by serde_json (quotes included).
fn json_string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\x08' | b'\x0c' | b'\n' | b'\r' | b'\t' => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// The most bytes the batch item of a call of `name` with `body` takes (its timeout at its
/// longest; the comma between items is not counted).
pub(crate) fn item_size(name: &str, body: &[u8]) -> usize {
    ITEM_FRAME + json_string_len(name) + body.len()
}

/// One queued call.
struct Pending {
    id: u64,
    name: Arc<str>,
    body: Bytes,
    /// [`item_size`].
    size: usize,
    /// `None`: too far away to be a point in time.
    deadline: Option<Instant>,
    span: tracing::Span,
    reply: oneshot::Sender<Result<String>>,
}

/// What became of a queued call.
pub(crate) enum Queued {
    /// It travelled in a batch: its result.
    Answered(Result<String>),
    /// No batch took it within [`LANE_WAIT`]: the caller sends it plain.
    Plain,
}

/// The batchers of one host, one per runtime that calls it.
pub(crate) struct Batchers {
    lanes: usize,
    workers: usize,
    limit: usize,
    by_runtime: RwLock<Vec<Arc<Batcher>>>,
}

impl Batchers {
    /// Batchers keeping up to `lanes` requests in flight each, to a host with `workers` worker
    /// processes whose `requestDataLimit` is `limit` bytes.
    pub(crate) fn new(lanes: usize, workers: usize, limit: u64) -> Batchers {
        Batchers {
            lanes,
            workers,
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            by_runtime: RwLock::new(Vec::new()),
        }
    }

    /// Whether a call of `name` with `body` fits in a batch on its own: the batch's `[`, `]`
    /// and the item's frame included, within the host's `requestDataLimit`.
    pub(crate) fn fits(&self, name: &str, body: &[u8]) -> bool {
        item_size(name, body).saturating_add(2) <= self.limit
    }

    /// The batcher of the runtime the caller runs on (created on first use); `None` outside any
    /// runtime (calls run on one: the caller's, or the SDK's).
    pub(crate) fn current(&self) -> Option<Arc<Batcher>> {
        let runtime = Handle::try_current().ok()?;
        let id = runtime.id();
        {
            let all = self
                .by_runtime
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(b) = all.iter().find(|b| b.runtime.id() == id) {
                return Some(b.clone());
            }
        }
        let mut all = self
            .by_runtime
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(b) = all.iter().find(|b| b.runtime.id() == id) {
            return Some(b.clone());
        }
        // An idle batcher holds nothing: forgetting one whose runtime lives on costs nothing.
        if all.len() >= KEEP_BATCHERS {
            all.retain(|b| !b.idle());
        }
        let batcher = Batcher::new(self.lanes, self.workers, self.limit, runtime);
        all.push(batcher.clone());
        Some(batcher)
    }
}

/// The batching state of one host for the calls of one runtime.
pub(crate) struct Batcher {
    queue: Mutex<VecDeque<Pending>>,
    in_flight: AtomicUsize,
    /// A task that will flush the queue has been spawned and has not run yet.
    flush_scheduled: AtomicBool,
    /// Tells queued calls apart (to take one back out of the queue).
    next_id: AtomicU64,
    cap: usize,
    /// What queued is shared over at least this many requests (the host's workers).
    workers: usize,
    limit: usize,
    /// Where its batches are sent from: the runtime of its calls.
    runtime: Handle,
}

/// Gives the batcher's slot back when a plain call ends, however it ends.
pub(crate) struct Slot<'a>(&'a Arc<Batcher>, &'a BatchEndpoint);

/// Where batches go.
#[derive(Clone)]
pub(crate) struct BatchEndpoint {
    pub(crate) client: HttpClient,
    /// The host's root URL.
    pub(crate) url: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.flush(self.1);
    }
}

#[derive(Deserialize)]
struct Item {
    status: u16,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

impl Batcher {
    /// A batcher keeping up to `lanes` requests in flight to a host whose `requestDataLimit` is
    /// `limit` bytes, sending its batches from `runtime`.
    fn new(lanes: usize, workers: usize, limit: usize, runtime: Handle) -> Arc<Batcher> {
        Arc::new(Batcher {
            queue: Mutex::new(VecDeque::new()),
            in_flight: AtomicUsize::new(0),
            flush_scheduled: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            cap: lanes.max(1),
            workers: workers.max(1),
            limit,
            runtime,
        })
    }

    /// Nothing queued, nothing in flight.
    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Pending>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for a plain call when nothing is in flight or queued: a lone call goes out at
    /// once, as itself.
    pub(crate) fn try_slot<'a>(self: &'a Arc<Self>, endpoint: &'a BatchEndpoint) -> Option<Slot<'a>> {
        if self.in_flight.load(Ordering::Acquire) != 0 || !self.lock().is_empty() {
            return None;
        }
        self.in_flight
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Slot(self, endpoint))
    }

    /// Queues a call (whose `body` is one JSON object or array that [`Batchers::fits`]) and
    /// waits for its result, at most until `deadline` (`timeout` after the call began). A call
    /// no batch has taken within [`LANE_WAIT`] is taken back: the caller sends it plain.
    pub(crate) async fn call(
        self: &Arc<Self>,
        endpoint: &BatchEndpoint,
        name: &Arc<str>,
        body: &Bytes,
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> Queued {
        let (reply, mut answer) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().push_back(Pending {
            id,
            name: name.clone(),
            body: body.clone(),
            size: item_size(name, body),
            deadline,
            span: tracing::Span::current(),
            reply,
        });
        self.flush_soon(endpoint);
        let waited = match tokio::time::timeout(LANE_WAIT, &mut answer).await {
            Ok(answered) => answered,
            Err(_) => {
                if self.take_back(id) {
                    return Queued::Plain;
                }
                // A batch carries it: its answer (or the deadline) ends the call.
                let answered = match deadline {
                    Some(deadline) => tokio::time::timeout_at(deadline, answer).await,
                    None => Ok(answer.await),
                };
                match answered {
                    Ok(answered) => answered,
                    Err(_) => {
                        let url = function_url(&endpoint.url, name, body);
                        return Queued::Answered(Err(call_timeout(name, &url, timeout)));
                    }
                }
            }
        };
        Queued::Answered(waited.unwrap_or_else(|_| {
            Err(
                Error::connection("the batch carrying the call was abandoned (its runtime ended)")
                    .with_function(name.as_ref())
                    .with_url(jshost_client::display_url(&function_url(&endpoint.url, name, body)).as_ref()),
            )
        }))
    }

    /// Takes the queued call `id` back out of the queue; `false` when a batch has taken it.
    fn take_back(&self, id: u64) -> bool {
        let mut queue = self.lock();
        match queue.iter().position(|p| p.id == id) {
            Some(i) => {
                queue.remove(i);
                true
            }
            None => false,
        }
    }

    /// When a request slot is free, sends what is queued from a task of its own, which runs
    /// once the calling task lets go of its thread: calls made together (a `join_all`, a
    /// `buffer_unordered` refilling) queue first and leave in one batch. With every slot taken,
    /// the next request to finish sends them (or they go out plain after [`LANE_WAIT`]).
    fn flush_soon(self: &Arc<Self>, endpoint: &BatchEndpoint) {
        if self.in_flight.load(Ordering::Acquire) >= self.cap
            || self.flush_scheduled.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let (batcher, endpoint) = (self.clone(), endpoint.clone());
        self.runtime.spawn(async move {
            batcher.flush_scheduled.store(false, Ordering::Release);
            batcher.flush(&endpoint);
        });
    }

    /// Sends what is queued when a request slot is free (and again after it).
    fn flush(self: &Arc<Self>, endpoint: &BatchEndpoint) {
        for batch in self.next_batches() {
            self.send_batch(batch, endpoint);
        }
    }

    /// The batches to send now: what is queued, shared out over the free request slots, in one
    /// part per worker of the host at least (every worker gets work, even for a few slow calls),
    /// more when many calls wait, in parts of at least [`MIN_SHARE`] calls (so that every host
    /// behind a balancer gets a part, and a host works on one part while the next is on its way).
    /// Calls that queue later wait for the next flush: sending them in small batches of their
    /// own as they come would take the slots that fuller batches need.
    fn next_batches(&self) -> Vec<Vec<Pending>> {
        let mut queue = self.lock();
        let in_flight = self.in_flight.load(Ordering::Acquire);
        if queue.is_empty() || in_flight >= self.cap {
            return Vec::new();
        }
        let wanted = (queue.len() / MIN_SHARE).max(self.workers).min(queue.len());
        let parts = (self.cap - in_flight).min(wanted).max(1);
        let share = queue.len().div_ceil(parts);
        let mut batches = Vec::with_capacity(parts);
        while batches.len() < parts && !queue.is_empty() {
            let batch = take_batch(&mut queue, self.limit, share);
            if batch.is_empty() {
                break;
            }
            batches.push(batch);
        }
        self.in_flight.fetch_add(batches.len(), Ordering::AcqRel);
        batches
    }

    fn send_batch(self: &Arc<Self>, batch: Vec<Pending>, endpoint: &BatchEndpoint) {
        let (batcher, endpoint) = (self.clone(), endpoint.clone());
        let sending = async move {
            send(&endpoint, batch).await;
            // The callers just answered usually call again at once: let them queue before the
            // lane is freed, or the first of them would take it for a lone plain call.
            tokio::task::yield_now().await;
            batcher.in_flight.fetch_sub(1, Ordering::AcqRel);
            batcher.flush(&endpoint);
        };
        // On the runtime of its calls (whichever thread flushes): if that runtime has ended,
        // the task is dropped, and so are its calls, which were that runtime's.
        self.runtime.spawn(sending);
    }
}

/// Takes up to `count` queued calls of the function of the oldest one, oldest first, while the
/// batch stays within `limit` bytes (every queued call fits on its own); drops calls whose
/// caller is gone. A batch carries calls of one function only: its callers wait for the slowest
/// of them, which should be a call like theirs.
fn take_batch(queue: &mut VecDeque<Pending>, limit: usize, count: usize) -> Vec<Pending> {
    let count = count.clamp(1, MAX_BATCH);
    queue.retain(|p| !p.reply.is_closed());
    let Some(name) = queue.front().map(|p| p.name.clone()) else {
        return Vec::new();
    };
    let mut batch = Vec::new();
    let mut size = 2; // `[` and `]`
    let mut rest = VecDeque::with_capacity(queue.len());
    while let Some(p) = queue.pop_front() {
        let grown = size + p.size + usize::from(!batch.is_empty());
        if batch.len() < count && p.name == name && (batch.is_empty() || grown <= limit) {
            size = grown;
            batch.push(p);
        } else {
            rest.push_back(p);
        }
    }
    *queue = rest;
    batch
}

/// `[{"function": NAME, "data": DATA, "timeout": MS}, ...]`: the data as it was serialised (one
/// JSON object or array, checked before it was queued); the host answers an item still running
/// at its timeout (the call's own deadline) with a 504, so a function that never answers delays
/// its batch-mates no longer than that. A deadline too far for the host's timers is left out.
fn encode(batch: &[Pending]) -> Result<Bytes> {
    let now = Instant::now();
    let mut out = BytesMut::with_capacity(2 + batch.iter().map(|p| p.size + 1).sum::<usize>());
    out.put_u8(b'[');
    for (i, p) in batch.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(b"{\"function\":");
        serde_json::to_writer((&mut out).writer(), p.name.as_ref())
            .map_err(|e| Error::new(ErrorKind::Encode, "cannot encode a function name").with_source(e))?;
        out.put_slice(b",\"data\":");
        out.put_slice(&p.body);
        if let Some(ms) = p
            .deadline
            .and_then(|d| host_timeout_ms(d.saturating_duration_since(now)))
        {
            out.put_slice(format!(",\"timeout\":{ms}").as_bytes());
        }
        out.put_u8(b'}');
    }
    out.put_u8(b']');
    Ok(out.freeze())
}

/// Sends a batch and gives each call its result, as a plain call would have got it.
async fn send(endpoint: &BatchEndpoint, batch: Vec<Pending>) {
    let size = batch.len();
    for p in &batch {
        p.span.record("batch", size);
    }
    // The request lasts as long as its last caller waits; no deadline if one has none.
    let now = Instant::now();
    let timeout = batch
        .iter()
        .map(|p| p.deadline.map(|d| d.saturating_duration_since(now)))
        .try_fold(Duration::ZERO, |longest, left| left.map(|l| longest.max(l)))
        .unwrap_or(Duration::MAX)
        .max(Duration::from_millis(1));
    let url = format!("{}/batch", endpoint.url);
    let answer = match encode(&batch) {
        Ok(body) => endpoint.client.post_json(&url, body, timeout).await,
        Err(e) => Err(e),
    };
    let items = match answer {
        Ok(response) if response.status == 200 => decode(&url, &response.body, size),
        // The whole batch was refused: each call gets what the host answered, as if it had
        // been sent alone (same kinds, statuses and bodies).
        Ok(response) => {
            for p in batch {
                let result = call_result(response.status, response.body.clone(), &p.name, || {
                    function_url(&endpoint.url, &p.name, &p.body)
                });
                let _ = p.reply.send(result);
            }
            return;
        }
        Err(e) => Err(e),
    };
    match items {
        Ok(items) => {
            for (p, item) in batch.into_iter().zip(items) {
                let body = Bytes::from(match item.status {
                    200 => item.output.unwrap_or_default(),
                    _ => item.error.unwrap_or_default(),
                });
                let result = call_result(item.status, body, &p.name, || {
                    function_url(&endpoint.url, &p.name, &p.body)
                });
                let _ = p.reply.send(result);
            }
        }
        Err(e) => {
            tracing::debug!(%url, error = %e, calls = size, "a batch failed as a whole");
            for p in batch {
                let url = function_url(&endpoint.url, &p.name, &p.body);
                let failure = e
                    .clone()
                    .with_function(p.name.as_ref())
                    .with_url(jshost_client::display_url(&url).as_ref());
                let _ = p.reply.send(Err(failure));
            }
        }
    }
}

fn decode(url: &str, body: &[u8], size: usize) -> Result<Vec<Item>> {
    let items: Vec<Item> = serde_json::from_slice(body).map_err(|e| {
        Error::new(
            ErrorKind::UnexpectedResponse,
            "the host's batch answer is not a list of results",
        )
        .with_url(jshost_client::display_url(url).as_ref())
        .with_source(e)
    })?;
    if items.len() != size {
        return Err(Error::new(
            ErrorKind::UnexpectedResponse,
            format!("the host answered {} results to a batch of {size}", items.len()),
        )
        .with_url(jshost_client::display_url(url).as_ref()));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(name: &str, body: &'static [u8]) -> (Pending, oneshot::Receiver<Result<String>>) {
        pending_until(name, body, Instant::now().checked_add(Duration::from_secs(1)))
    }

    fn pending_until(
        name: &str,
        body: &'static [u8],
        deadline: Option<Instant>,
    ) -> (Pending, oneshot::Receiver<Result<String>>) {
        let (reply, answer) = oneshot::channel();
        let p = Pending {
            id: 0,
            name: Arc::from(name),
            body: Bytes::from_static(body),
            size: item_size(name, body),
            deadline,
            span: tracing::Span::none(),
            reply,
        };
        (p, answer)
    }

    #[tokio::test]
    async fn a_batch_is_a_json_list_of_calls_with_the_data_as_sent() {
        let (a, _ra) = pending("echo", br#"{"a":1}"#);
        let (b, _rb) = pending("odd \"name\"", b"[]");
        let body = encode(&[a, b]).expect("encode");
        let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(value[0]["function"], "echo");
        assert_eq!(value[0]["data"], serde_json::json!({"a": 1}));
        assert_eq!(value[1]["function"], "odd \"name\"");
        assert_eq!(value[1]["data"], serde_json::json!([]));
        let timeout = value[0]["timeout"].as_u64().expect("a timeout in ms");
        assert!((1..=1000).contains(&timeout), "{timeout}");
    }

    #[tokio::test]
    async fn deadlines_too_far_for_nodes_timers_are_left_out() {
        let now = Instant::now();
        let month = now.checked_add(Duration::from_secs(30 * 24 * 3600));
        let (a, _ra) = pending_until("echo", b"{}", month);
        let (b, _rb) = pending_until("echo", b"{}", None);
        let (c, _rc) = pending_until(
            "echo",
            b"{}",
            now.checked_add(Duration::from_millis(2_147_483_647)),
        );
        let value: serde_json::Value =
            serde_json::from_slice(&encode(&[a, b, c]).expect("encode")).expect("JSON");
        assert!(value[0].get("timeout").is_none(), "{value}");
        assert!(value[1].get("timeout").is_none(), "{value}");
        let ms = value[2]["timeout"].as_u64().expect("a timeout");
        assert!(ms <= 2_147_483_647 && ms > 2_147_000_000, "{ms}");
    }

    #[tokio::test]
    async fn item_sizes_are_exact_but_for_the_timeouts_digits() {
        for name in ["echo", "odd \"name\"", "tab\tand\u{1}and\\", "ünï", "a/b"] {
            let body: &'static [u8] = br#"{"x":[1,2,3],"y":"z"}"#;
            let (p, _r) = pending_until(name, body, None);
            let (q, _r) = pending(name, body);
            assert_eq!(
                json_string_len(name),
                serde_json::to_string(name).expect("name").len()
            );
            let alone = encode(std::slice::from_ref(&p)).expect("encode").len();
            assert_eq!(
                alone + 21,
                2 + p.size,
                "{name}: no timeout: 21 bytes short of the bound"
            );
            let timed = encode(std::slice::from_ref(&q)).expect("encode").len();
            assert!(
                timed <= 2 + q.size && timed >= 2 + q.size - 9,
                "{name}: {timed} vs {}",
                q.size
            );
        }
    }

    #[test]
    fn only_one_json_object_or_array_may_join_a_batch() {
        for ok in [&br#"{"a":1}"#[..], b"[]", b" \n{\"a\":[1,{}]}\t", b"[1,2]"] {
            assert!(one_json_value(ok), "{:?}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &br#"{"echo":"x"},"function":"pid""#[..],
            b"{\"echo\":",
            b"123",
            b"\"text\"",
            b"null",
            b"",
            b"\xef\xbb\xbf{}",
            b"{} {}",
            b"{}]",
            b"[1,2]}",
        ] {
            assert!(!one_json_value(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn functions_are_batched_only_once_their_answers_are_known_to_be_small() {
        let sizes = AnswerSizes::default();
        assert!(!sizes.small("render"), "unknown until it answered");
        sizes.record("render", 10_000);
        sizes.record("echo", 100);
        assert!(!sizes.small("render") && sizes.small("echo"));
        sizes.record("render", 10);
        assert!(
            !sizes.small("render"),
            "one small answer (10,000 -> 7,502) does not change its kind"
        );
        for _ in 0..10 {
            sizes.record("render", 10);
        }
        assert!(sizes.small("render"), "answers that stay small do");
    }

    #[test]
    fn the_average_reaches_a_steady_answer_size_from_either_side() {
        let mut average = 100;
        for _ in 0..100 {
            average = next_average(average, 4096);
        }
        assert_eq!(average, 4096, "from below");
        for _ in 0..100 {
            average = next_average(average, 4000);
        }
        assert_eq!(average, 4000, "from above");
    }

    #[tokio::test]
    async fn batches_stay_within_the_limit_carry_one_function_and_skip_cancelled_calls() {
        let mut queue = VecDeque::new();
        let mut answers = Vec::new();
        for i in 0..12 {
            let name = if i % 4 == 3 { "other" } else { "echo" };
            let (p, a) = pending(name, b"{\"0123456789\":\"0123456789\"}");
            queue.push_back(p);
            answers.push(a);
        }
        drop(answers.remove(0)); // the first caller gave up
        let limit = 250;
        let batch = take_batch(&mut queue, limit, 100);
        assert!(!batch.is_empty() && batch.len() < 8, "{}", batch.len());
        assert!(batch.iter().all(|p| !p.reply.is_closed() && &*p.name == "echo"));
        assert!(encode(&batch).expect("encode").len() <= limit);
        let mut taken = batch.len();
        while !queue.is_empty() {
            let batch = take_batch(&mut queue, 10_000, 100);
            let names: std::collections::HashSet<&str> = batch.iter().map(|p| &*p.name).collect();
            assert_eq!(names.len(), 1, "one function per batch: {names:?}");
            taken += batch.len();
        }
        assert_eq!(taken, 11);
    }

    /// 64 calls of 8.5 KB each in batches for a '100kb' host: every batch within the limit.
    #[tokio::test]
    async fn batches_of_large_items_stay_within_100kb() {
        let data: &'static [u8] = Box::leak(
            format!("{{\"p\":\"{}\"}}", "x".repeat(8_700))
                .into_bytes()
                .into_boxed_slice(),
        );
        let mut queue = VecDeque::new();
        let mut answers = Vec::new();
        for _ in 0..64 {
            let (p, a) = pending("echo", data);
            queue.push_back(p);
            answers.push(a);
        }
        let limit = 100 * 1024;
        while !queue.is_empty() {
            let batch = take_batch(&mut queue, limit, 64);
            let size = encode(&batch).expect("encode").len();
            assert!(size <= limit, "{} calls: {size} bytes", batch.len());
        }
    }
}
