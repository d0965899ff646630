//! cloonix: network labs from a YAML file, changed live when the file changes.
//!
//! Data flows one way: [`model`] (the file) → [`graph`] (desired and observed resources)
//! → [`plan`] (the diff as ordered actions) → the executor and drivers.

pub mod apply;
pub mod capture;
pub mod checks;
pub mod diag;
pub mod graph;
pub mod helper;
pub mod host;
pub mod kinds;
pub mod model;
pub mod observe;
pub mod picture;
pub mod plan;
pub mod status;
pub mod yaml;
