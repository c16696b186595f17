//! Integration tests: the real binary against the built-in simulator on 127.0.0.1:0.

mod ca_roots;
mod cli;
mod contacts;
mod crm_endpoints;
mod delta;
mod durability;
mod exactly_once;
mod hostile;
mod import;
mod machine_faults;
mod network;
mod ops;
mod phone;
mod quota;
mod reconcile;
mod reports;
mod schema;
mod scripted;
mod simulator;
mod snapshots;
mod sources;
mod support;
mod undo;
mod workflows;
