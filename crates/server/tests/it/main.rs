//! Integration tests of the server crate: the store contract suite and end-to-end tests over
//! real HTTP against a server on a loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod e2e_admin;
mod e2e_backchannel;
mod e2e_browser;
mod e2e_conformance;
mod e2e_device;
mod e2e_disabled;
mod e2e_events;
mod e2e_external;
mod e2e_fanout;
mod e2e_fuzz;
mod e2e_introspect;
mod e2e_jwe;
mod e2e_keys;
mod e2e_limits;
mod e2e_long_poll;
mod e2e_notify;
mod e2e_policy;
mod e2e_postgres;
mod e2e_refresh;
mod e2e_token;
mod e2e_userinfo;
mod e2e_webauthn;
mod push;
mod store_contract;
mod support;
