//! kip engine (being written).
