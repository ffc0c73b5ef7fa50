//! A local, file-backed server that speaks the Kubernetes REST API.
//!
//! The sandbox is kip's default cluster when none is configured and the backend of the test suite.

pub mod apply;
pub mod patch;
pub mod selector;
pub mod table;
pub mod validation;

pub mod admission;
pub mod api;
pub mod auth;
pub mod ca;
pub mod containers;
pub mod controllers;
pub mod convert;
pub mod cron;
pub mod defaults;
pub mod error;
pub mod home;
pub mod http;
pub mod ingress_proxy;
pub mod node;
pub mod openapi;
pub mod ops;
pub mod registry;
pub mod runtime;
pub mod schema;
pub mod server;
pub mod spdy;
pub mod store;
pub mod strategy;

pub use server::Sandbox;
