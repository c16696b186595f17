//! wolkvox-import: spreadsheets → Wolkvox CRM Cases Insert API, exactly once.
//!
//! The pipeline is one module per stage, and data flows one way:
//! `source` → `mapping` → `ledger` check → `sender` → `ledger` + `report`.
//! Only `commands/` wires the stages together.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod background;
pub mod cli;
pub mod commands;
pub mod contacts;
pub mod exit;
pub mod feedback;
pub mod ledger;
pub mod mapping;
pub mod outcome;
pub mod reconcile;
pub mod report;
pub mod run;
pub mod sender;
pub mod simulator;
pub mod source;
pub mod wolkvox;

pub use commands::run;
