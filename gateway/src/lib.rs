//! `kip-gateway`: the reverse proxy that receives every request for `*.<domain>`, finds the
//! cluster a hostname names in its registry, and forwards the request there with the original
//! Host, so the cluster's ingress routes it to the right app.
//!
//! Without the default `server` feature only [`host`], the hostname rule, is built: that is
//! what `builtins` shares with the gateway.

pub mod host;
mod punycode;

#[cfg(feature = "server")]
pub mod admin;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod policy;
#[cfg(feature = "server")]
pub mod pool;
#[cfg(feature = "server")]
pub mod proxy;
#[cfg(feature = "server")]
pub mod registry;
#[cfg(feature = "server")]
pub mod serve;
#[cfg(feature = "server")]
pub mod tls;
#[cfg(feature = "server")]
pub mod upstream;
#[cfg(feature = "server")]
pub mod workers;
