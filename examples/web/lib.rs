//! Nothing: this package holds jshost's axum and actix-web examples (`examples/axum_ssr.rs`,
//! `examples/actix_ssr.rs`), kept out of the root package so that its examples build without a
//! web framework. Run them with `cargo run -p jshost-web-examples --example axum_ssr` (or `actix_ssr`).
