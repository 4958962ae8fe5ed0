//! Micro-benchmarks of what every call does in the SDK besides the network: its URL (with the
//! SHA-1 of its body) and turning the host's answer into a result. `cargo bench -p
//! jshost-client`; process-level figures come from `jshost-bench` (bench/).

use bytes::Bytes;
use divan::{black_box, Bencher};
use jshost_client::{call_result, function_url};

fn main() {
    divan::main();
}

/// Bodies of the sizes the bench's rows send: echo's few bytes, a 4 KB markdown document.
const SIZES: [usize; 2] = [16, 4096];

fn body(size: usize) -> Vec<u8> {
    let mut body = b"{\"text\":\"".to_vec();
    body.resize(size - 2, b'a');
    body.extend_from_slice(b"\"}");
    body
}

#[divan::bench(args = SIZES)]
fn url_of_a_call(bencher: Bencher<'_, '_>, size: usize) {
    let body = body(size);
    bencher.bench(|| {
        function_url(
            black_box("http://127.0.0.1:9009"),
            black_box("render"),
            black_box(&body),
        )
    });
}

#[divan::bench(args = SIZES)]
fn answer_200_to_output(bencher: Bencher<'_, '_>, size: usize) {
    let answer = Bytes::from(body(size));
    bencher.bench(|| call_result(200, black_box(answer.clone()), "render", String::new));
}

#[divan::bench]
fn answer_500_to_error_with_its_stack(bencher: Bencher<'_, '_>) {
    let stack = Bytes::from_static(b"Error: No number was provided\n    at double (/app/host.config.js:31:17)\n    at run (/app/node_modules/jshost-node/lib/call.js:177:14)");
    bencher.bench(|| {
        call_result(500, black_box(stack.clone()), "double", || {
            "http://127.0.0.1:9009/function/double?hash=0".to_owned()
        })
    });
}
