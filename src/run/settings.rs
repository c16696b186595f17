//! An import's settings, checked once: nothing below `Settings::from_cli` sees clap types.

use std::time::Duration;

use anyhow::Context;
use reqwest::Url;

use crate::cli::{Durability, ImportArgs};
use crate::ledger::Target;
use crate::sender::{self, Backoff, SenderConfig, Token};

/// Where the requests go.
#[derive(Debug)]
pub enum Endpoint {
    /// The built-in simulator, started by the command for this run.
    Simulator,
    /// A CRM: its insert URL, and the tokens to spread the requests over.
    Server { url: Url, tokens: Vec<Token> },
}

/// What a run does, from the command line and the environment, validated.
#[derive(Debug)]
pub struct Settings {
    pub endpoint: Endpoint,
    /// The CRM target (server and operation): which ledger, which history.
    pub target: Target,
    /// Requests per second, retries included; `None`: no limit.
    pub rate: Option<f64>,
    pub timeout: Duration,
    /// Requests in flight per token.
    pub concurrency: usize,
    pub max_retries: u32,
    /// Retry answers that may have stored the case (`--retry-ambiguous`).
    pub retry_ambiguous: bool,
    /// Send again rows an earlier run left uncertain (`--resend-uncertain`).
    pub resend_uncertain: bool,
    /// Send the changes of created rows to their cases (`--update`).
    pub update: bool,
    /// Send at most this many rows (`--limit`).
    pub limit: Option<u64>,
    /// Calls to leave on each token's daily quota.
    pub quota_reserve: u64,
    /// Marks must be synced to disk before their request leaves (`--durability full`).
    pub durable: bool,
    /// Ask the token information API before sending (quota plan, token check).
    pub preflight: bool,
}

/// The slowest `--rate` taken: one request an hour.
pub const MIN_RATE: f64 = 1.0 / 3600.0;

impl Settings {
    /// Check the arguments of `import` for the mapping's `operation`.
    /// (`MIN_RATE` is the slowest: below it the pause between calls overflows.)
    pub fn from_cli(args: &ImportArgs, operation: &str) -> anyhow::Result<Settings> {
        let rate = args.rate.unwrap_or(if args.simulate { 50.0 } else { 5.0 });
        anyhow::ensure!(
            rate == 0.0 || (rate >= MIN_RATE && rate.is_finite()),
            "--rate {rate} must be a number of requests per second, at least {MIN_RATE} (one \
             an hour), or 0 for no limit"
        );
        anyhow::ensure!(
            args.timeout > 0.0 && args.timeout.is_finite(),
            "--timeout must be a positive number of seconds"
        );
        let endpoint = if args.simulate {
            if args.server.is_some() {
                tracing::warn!(
                    "--simulate: the server given (--server or WOLKVOX_SERVER) is not used; \
                     nothing is sent to it"
                );
            }
            Endpoint::Simulator
        } else {
            let server = args
                .server
                .as_deref()
                .context("--server or --simulate is required")?;
            let url = sender::client::insert_url(server)?;
            let tokens = sender::token::load(
                args.token_file.as_deref(),
                std::env::var("WOLKVOX_TOKEN").ok(),
            )?;
            Endpoint::Server { url, tokens }
        };
        let target = match &endpoint {
            Endpoint::Simulator => Target::simulator(operation),
            Endpoint::Server { url, .. } => Target::of_url(url, operation),
        };
        let durability = args.durability.unwrap_or(if args.simulate {
            Durability::Fast
        } else {
            Durability::Full
        });
        Ok(Settings {
            endpoint,
            target,
            rate: (rate > 0.0).then_some(rate),
            timeout: Duration::from_secs_f64(args.timeout),
            concurrency: usize::from(args.concurrency),
            max_retries: args.max_retries,
            retry_ambiguous: args.retry_ambiguous,
            resend_uncertain: args.resend_uncertain,
            update: args.update,
            limit: args.limit,
            quota_reserve: args.quota_reserve,
            durable: durability == Durability::Full,
            preflight: !args.no_preflight && !args.simulate,
        })
    }

    pub fn simulated(&self) -> bool {
        matches!(self.endpoint, Endpoint::Simulator)
    }

    /// The warning a run starts with when it asks for more than Wolkvox allows.
    pub fn concurrency_warning(&self) -> Option<String> {
        (self.concurrency > 2).then(|| {
            format!(
                "--concurrency {}: Wolkvox refuses a third simultaneous request per token (403 \
                 EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS), and each refused call still costs \
                 quota; keep 2, and give more tokens (--token-file) for more requests in flight",
                self.concurrency
            )
        })
    }

    pub fn sender_config(&self) -> SenderConfig {
        SenderConfig {
            rate: self.rate,
            max_retries: self.max_retries,
            retry_ambiguous: self.retry_ambiguous,
            backoff: Backoff::default(),
        }
    }
}
