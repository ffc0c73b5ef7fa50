//! Simulated controllers.
use crate::store::Store;
pub fn start(_store: Store) {}
