//! End-to-end tests through the real `kip` binary, the sandbox over HTTP and the real `kubectl`.

mod app_list;
mod app_verbs;
mod cluster_verbs;
mod common;
mod doc;
mod install;
mod integrity;
mod overrides;
mod readme_tour;
mod sandbox_cli;
mod sandbox_defaults;
mod sandbox_durability;
mod sandbox_exec;
mod sandbox_kube;
mod sandbox_kubectl;
mod sandbox_portforward;
mod sandbox_strategy;
mod script_limits;
mod script_tests;
mod service_databases;
mod service_verbs;
mod shell;
mod templates;
mod tunnel;
mod verbs;
