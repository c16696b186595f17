//! Integration tests: the real binary against the built-in simulator on 127.0.0.1:0.

mod cli;
mod exactly_once;
mod import;
mod phone;
mod quota;
mod reports;
mod scripted;
mod simulator;
mod snapshots;
mod sources;
mod support;
