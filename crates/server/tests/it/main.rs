//! Integration tests of the server crate: the store contract suite and end-to-end tests over
//! real HTTP.

mod store_contract;
