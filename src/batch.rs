//! Automatic batching: calls made while others are in flight to a jshost-node host leave
//! together in `POST /batch` requests.
//!
//! A call made when nothing is in flight or queued goes out at once as a plain call: a lone or
//! sequential call never waits and is never wrapped. Any other call (of a function with small
//! answers: see below) is queued. When a request slot is free (each host gets a few requests in
//! flight: four per worker process, since jshost-node spreads connections, not requests, over
//! its workers), a task spawned on the caller's runtime sends what queued once the calling task
//! lets go of its thread, so calls made together (a `join_all`, a `buffer_unordered` refilling,
//! handlers of one burst) leave together; with every slot taken, the next request to finish
//! sends them. What is sent at once is shared
//! out over the free slots in parts of at least 16 calls (the host works on one part while the
//! next is sent; every worker gets a part), each within the host's `requestDataLimit`. Every call
//! keeps its own deadline, cancellation (dropping it), result and error; a batch that fails as a
//! whole gives each of its calls that error.
//!
//! A host has one batcher per runtime that calls it ([`Batchers`]): a call queues only beside
//! calls made on its own runtime, and their batch is sent from that runtime, on its connections.
//! So a runtime that blocks or ends holds up no other runtime's calls, and a call never crosses
//! to another runtime's threads and back.
//!
//! Calls of a function whose answers are large ([`AnswerSizes`]: [`LARGE_ANSWER`] bytes or more,
//! on average over its last few) always go out plain. A batch answer carries each output as a
//! JSON string, which the host escapes and the client unescapes, and no caller of a batch gets
//! its answer before the slowest of its batch-mates is done: for a page renderer (10 KB of HTML
//! a call, a few hundred µs of JavaScript) that cost 8% of the calls per second with 64 in
//! flight and 29–46% with 8, and the per-request cost batching saves is small beside such calls.

use bytes::{BufMut, Bytes, BytesMut};
use jshost_client::HttpClient;
use jshost_core::{Error, ErrorKind, Result};
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
/// beyond them are batched whatever their answers.
const KEEP_SIZES: usize = 1024;

/// The recent answer size of each function of a host (an average weighting the last answer by
/// a quarter), which decides whether its calls may be batched.
#[derive(Default)]
pub(crate) struct AnswerSizes {
    by_name: RwLock<HashMap<Box<str>, AtomicUsize>>,
}

impl AnswerSizes {
    /// Whether `name`'s answers are large: its calls go out plain. Unknown until it answered.
    pub(crate) fn large(&self, name: &str) -> bool {
        let sizes = self
            .by_name
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sizes
            .get(name)
            .is_some_and(|s| s.load(Ordering::Relaxed) >= LARGE_ANSWER)
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

/// One queued call.
struct Pending {
    name: Arc<str>,
    body: Bytes,
    deadline: Instant,
    span: tracing::Span,
    reply: oneshot::Sender<Result<String>>,
}

/// The batchers of one host, one per runtime that calls it.
pub(crate) struct Batchers {
    lanes: usize,
    workers: usize,
    limit: u64,
    by_runtime: RwLock<Vec<Arc<Batcher>>>,
}

impl Batchers {
    /// Batchers keeping up to `lanes` requests in flight each, to a host with `workers` worker
    /// processes whose `requestDataLimit` is `limit` bytes.
    pub(crate) fn new(lanes: usize, workers: usize, limit: u64) -> Batchers {
        Batchers {
            lanes,
            workers,
            limit,
            by_runtime: RwLock::new(Vec::new()),
        }
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
    cap: usize,
    /// What queued is shared over at least this many requests (the host's workers).
    workers: usize,
    limit: usize,
    /// Where its batches are sent from: the runtime of its calls.
    runtime: Handle,
}

/// Gives the batcher's slot back when a plain call ends, however it ends.
pub(crate) struct Slot<'a>(&'a Arc<Batcher>, &'a Target);

/// Where batches go.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) client: HttpClient,
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
    fn new(lanes: usize, workers: usize, limit: u64, runtime: Handle) -> Arc<Batcher> {
        Arc::new(Batcher {
            queue: Mutex::new(VecDeque::new()),
            in_flight: AtomicUsize::new(0),
            flush_scheduled: AtomicBool::new(false),
            cap: lanes.max(1),
            workers: workers.max(1),
            limit: usize::try_from(limit).unwrap_or(usize::MAX).max(1024),
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
    pub(crate) fn try_slot<'a>(self: &'a Arc<Self>, target: &'a Target) -> Option<Slot<'a>> {
        if self.in_flight.load(Ordering::Acquire) != 0 || !self.lock().is_empty() {
            return None;
        }
        self.in_flight
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Slot(self, target))
    }

    /// Queues a call and waits for its result, at most until its deadline.
    pub(crate) async fn call(
        self: &Arc<Self>,
        target: &Target,
        name: Arc<str>,
        body: Bytes,
        timeout: Duration,
    ) -> Result<String> {
        let (reply, answer) = oneshot::channel();
        let deadline = Instant::now() + timeout;
        let span = tracing::Span::current();
        let function = name.clone();
        self.lock().push_back(Pending {
            name,
            body,
            deadline,
            span,
            reply,
        });
        self.flush_soon(target);
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::connection("the batch carrying the call was abandoned")
                .with_function(function.as_ref())
                .with_url(target.url.as_str())),
            Err(_) => Err(
                Error::new(ErrorKind::Timeout, format!("no answer within {timeout:?}"))
                    .with_function(function.as_ref())
                    .with_url(target.url.as_str()),
            ),
        }
    }

    /// When a request slot is free, sends what is queued from a task of its own, which runs
    /// once the calling task lets go of its thread: calls made together (a `join_all`, a
    /// `buffer_unordered` refilling) queue first and leave in one batch. With every slot taken,
    /// the next request to finish sends them.
    fn flush_soon(self: &Arc<Self>, target: &Target) {
        if self.in_flight.load(Ordering::Acquire) >= self.cap
            || self.flush_scheduled.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let (batcher, target) = (self.clone(), target.clone());
        self.runtime.spawn(async move {
            batcher.flush_scheduled.store(false, Ordering::Release);
            batcher.flush(&target);
        });
    }

    /// Sends what is queued as one batch when a request slot is free (and again after it).
    fn flush(self: &Arc<Self>, target: &Target) {
        for batch in self.next_batches() {
            self.send_batch(batch, target);
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

    fn send_batch(self: &Arc<Self>, batch: Vec<Pending>, target: &Target) {
        let (batcher, target) = (self.clone(), target.clone());
        let sending = async move {
            send(&target, batch).await;
            // The callers just answered usually call again at once: let them queue before the
            // lane is freed, or the first of them would take it for a lone plain call.
            tokio::task::yield_now().await;
            batcher.in_flight.fetch_sub(1, Ordering::AcqRel);
            batcher.flush(&target);
        };
        // On the runtime of its calls (whichever thread flushes): if that runtime has ended,
        // the task is dropped, and so are its calls, which were that runtime's.
        self.runtime.spawn(sending);
    }
}

/// Takes up to `count` queued calls, oldest first, while the batch stays within `limit` bytes;
/// drops calls whose caller is gone.
fn take_batch(queue: &mut VecDeque<Pending>, limit: usize, count: usize) -> Vec<Pending> {
    let count = count.clamp(1, MAX_BATCH);
    let mut batch = Vec::new();
    let mut size = 2;
    while let Some(next) = queue.front() {
        if next.reply.is_closed() {
            queue.pop_front();
            continue;
        }
        let item = next.body.len() + next.name.len() * 2 + 32;
        if !batch.is_empty() && (size + item > limit || batch.len() == count) {
            break;
        }
        size += item;
        if let Some(p) = queue.pop_front() {
            batch.push(p);
        }
    }
    batch
}

/// `[{"function": NAME, "data": DATA, "timeout": MS}, ...]`: the data is sent as it was
/// serialised; the host answers an item still running at its timeout (the call's own deadline)
/// with a 504, so a function that never answers delays its batch-mates no longer than that.
fn encode(batch: &[Pending]) -> Result<Bytes> {
    let now = Instant::now();
    let mut out = BytesMut::with_capacity(batch.iter().map(|p| p.body.len() + 48).sum());
    out.put_u8(b'[');
    for (i, p) in batch.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(b"{\"function\":");
        let name = serde_json::to_vec(p.name.as_ref())
            .map_err(|e| Error::new(ErrorKind::Encode, "cannot encode a function name").with_source(e))?;
        out.put_slice(&name);
        out.put_slice(b",\"data\":");
        out.put_slice(&p.body);
        let left = p.deadline.saturating_duration_since(now).as_millis().max(1);
        out.put_slice(format!(",\"timeout\":{left}}}").as_bytes());
    }
    out.put_u8(b']');
    Ok(out.freeze())
}

async fn send(target: &Target, batch: Vec<Pending>) {
    let size = batch.len();
    for p in &batch {
        p.span.record("batch", size);
    }
    let latest = batch
        .iter()
        .map(|p| p.deadline)
        .max()
        .unwrap_or_else(Instant::now);
    let timeout = latest
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let url = format!("{}/batch", target.url);
    let answer = match encode(&batch) {
        Ok(body) => target.client.post_json(&url, body, timeout).await,
        Err(e) => Err(e),
    };
    let items = answer.and_then(|response| decode(&url, response, size));
    match items {
        Ok(items) => {
            for (p, item) in batch.into_iter().zip(items) {
                let result = item_result(&target.url, &p.name, item);
                let _ = p.reply.send(result);
            }
        }
        Err(e) => {
            tracing::debug!(%url, error = %e, calls = size, "a batch failed as a whole");
            for p in batch {
                let _ = p.reply.send(Err(copy_error(&e).with_function(p.name.as_ref())));
            }
        }
    }
}

fn decode(url: &str, response: jshost_client::Response, size: usize) -> Result<Vec<Item>> {
    if response.status != 200 {
        return Err(Error::new(
            ErrorKind::UnexpectedResponse,
            format!("the host answered the batch with HTTP {}", response.status),
        )
        .with_url(url)
        .with_status(response.status)
        .with_body(response.text_lossy()));
    }
    let items: Vec<Item> = serde_json::from_slice(&response.body).map_err(|e| {
        Error::new(
            ErrorKind::UnexpectedResponse,
            "the host's batch answer is not a list of results",
        )
        .with_url(url)
        .with_source(e)
    })?;
    if items.len() != size {
        return Err(Error::new(
            ErrorKind::UnexpectedResponse,
            format!("the host answered {} results to a batch of {size}", items.len()),
        )
        .with_url(url));
    }
    Ok(items)
}

/// One call's result, as a plain call would have given it.
fn item_result(root: &str, name: &str, item: Item) -> Result<String> {
    if item.status == 200 {
        return Ok(item.output.unwrap_or_default());
    }
    let url = format!("{root}/batch");
    match item.status {
        404 => Err(Error::new(
            ErrorKind::UnknownFunction,
            format!("the host at {root} has no function named {name:?}"),
        )
        .with_function(name)
        .with_url(url)
        .with_status(404)),
        504 => Err(
            Error::new(ErrorKind::Timeout, "no answer within the call's timeout")
                .with_function(name)
                .with_url(url)
                .with_status(504),
        ),
        500 => Err(Error::new(ErrorKind::Function, "the function reported an error")
            .with_function(name)
            .with_url(url)
            .with_status(500)
            .with_body(item.error.unwrap_or_default())),
        status => Err(Error::new(
            ErrorKind::UnexpectedResponse,
            format!("the host answered the call with status {status}"),
        )
        .with_function(name)
        .with_url(url)
        .with_status(status)
        .with_body(item.error.unwrap_or_default())),
    }
}

/// The same failure, for another call of the batch.
fn copy_error(e: &Error) -> Error {
    let mut copy = Error::new(e.kind(), e.message());
    if let Some(url) = e.url() {
        copy = copy.with_url(url);
    }
    if let Some(status) = e.status() {
        copy = copy.with_status(status);
    }
    if let Some(body) = e.body() {
        copy = copy.with_body(body);
    }
    if e.is_not_sent() {
        copy = copy.with_not_sent();
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(name: &str, body: &'static [u8]) -> (Pending, oneshot::Receiver<Result<String>>) {
        let (reply, answer) = oneshot::channel();
        let p = Pending {
            name: Arc::from(name),
            body: Bytes::from_static(body),
            deadline: Instant::now() + Duration::from_secs(1),
            span: tracing::Span::none(),
            reply,
        };
        (p, answer)
    }

    #[test]
    fn a_batch_is_a_json_list_of_calls_with_the_data_as_sent() {
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

    #[test]
    fn functions_with_large_answers_are_told_apart_by_their_recent_answers() {
        let sizes = AnswerSizes::default();
        assert!(!sizes.large("render"), "unknown until it answered");
        sizes.record("render", 10_000);
        sizes.record("echo", 100);
        assert!(sizes.large("render") && !sizes.large("echo"));
        sizes.record("render", 10);
        assert!(
            sizes.large("render"),
            "one small answer (10,000 -> 7,502) does not change its kind"
        );
        for _ in 0..10 {
            sizes.record("render", 10);
        }
        assert!(!sizes.large("render"), "answers that stay small do");
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

    #[test]
    fn batches_stay_within_the_limit_and_skip_cancelled_calls() {
        let mut queue = VecDeque::new();
        let mut answers = Vec::new();
        for _ in 0..10 {
            let (p, a) = pending("echo", b"{\"0123456789\":\"0123456789\"}");
            queue.push_back(p);
            answers.push(a);
        }
        drop(answers.remove(0)); // the first caller gave up
        let batch = take_batch(&mut queue, 250, 100);
        assert!(!batch.is_empty() && batch.len() < 9, "{}", batch.len());
        assert!(batch.iter().all(|p| !p.reply.is_closed()));
        let rest = take_batch(&mut queue, 10_000, 100);
        assert_eq!(batch.len() + rest.len(), 9);
    }
}
