//! # usage-cli
//!
//! The library behind the `kb-usage` binary: talk to a Kill Bill server from the command line
//! (record one usage record, import a file of them, read roll-ups and series), and serve the
//! in-memory emulator over HTTP (with `usage_transport_memory::serve`).
//!
//! The modules are public so that tests and benchmarks can use them in-process:
//! - [`import`]: reading CSV or JSON-lines files, validating every row (cut into requests with
//!   deterministic tracking ids by [`usage_meter::plan`]);
//! - [`series`]: periods of a window and their table, CSV, JSON and SVG forms;
//! - [`render`]: roll-ups as a table or JSON;
//! - [`commands`]: the command line itself, one module per subcommand.
//!
//! ```
//! use usage_cli::series::{periods, Every};
//!
//! // The daily periods `kb-usage series` queries, each a half-open window.
//! let days = periods("2013-08-30".parse().unwrap(), "2013-09-02".parse().unwrap(), Every::Day, 100).unwrap();
//! assert_eq!(days.len(), 3);
//! ```
//!
//! ## Features
//!
//! This crate has no optional features; `usage-core`'s `tracing` feature is on, for `-v`.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod commands;
pub mod import;
pub mod render;
pub mod series;
