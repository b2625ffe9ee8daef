//! The Backchannel CIBA authorization server as a library: the domain rules, the stores, the
//! HTTP routers and the background workers. The `backchannel` binary wires them together.

pub mod app;
pub mod config;
pub mod domain;
pub mod http;
pub mod notify;
pub mod outbound;
pub mod store;
