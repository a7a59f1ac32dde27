//! Switchyard's gateway as a library: the binary (`main.rs`) only parses the command line, loads config and
//! serves. Everything is here so the engine, config and policy are testable in-process.
//!
//! Dependencies point one way (checked by `tests/layering.rs`): `server` → `service` / `layers` → `engine` →
//! `policy` / `metrics` / `config` / `telemetry`, with `classical` and `llm` below them all. No module imports
//! one above it.

pub mod admin;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod convert;
pub mod drift;
pub mod engine;
pub mod error;
pub mod explanation;
pub mod health;
pub mod inference;
pub mod layers;
pub mod listen;
pub mod metrics;
pub mod policy;
pub mod quota;
pub mod reload;
pub mod remote;
pub mod request;
pub mod server;
pub mod service;
pub mod telemetry;
pub mod tls;
