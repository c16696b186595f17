//! `simulate`: a local Wolkvox-compatible server until Ctrl-C.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::cli::SimulateArgs;
use crate::exit::Verdict;
use crate::simulator::{self, Faults, Scenario, SimState};

pub async fn run(args: &SimulateArgs) -> anyhow::Result<Verdict> {
    let scenario = scenario(args)?;
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "http://{addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, "Simulator listening; Ctrl-C stops it.");
    let state = match &args.cases_file {
        None => SimState::new(scenario),
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("--cases-file {}: cannot create it", path.display()))?;
            SimState::with_journal(scenario, file)
        }
    };
    simulator::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(Verdict::Clean)
}

fn scenario(args: &SimulateArgs) -> anyhow::Result<Scenario> {
    let maintenance = match &args.maintenance {
        None => None,
        Some(text) => {
            let (from, to) = text
                .split_once('-')
                .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
                .with_context(|| format!("--maintenance {text:?}: write FROM-TO, e.g. 10-20"))?;
            Some((from, to))
        }
    };
    let mut scenario = Scenario {
        tokens: args.tokens.clone(),
        daily_limit: args.daily_limit,
        revoke_after: args.revoke_after,
        max_concurrent: args.max_concurrent,
        latency: Duration::from_millis(args.latency_ms),
        jitter: Duration::from_millis(args.jitter_ms),
        faults: Faults {
            error_500_before_store: args.p500_before,
            error_500_after_store: args.p500_after,
            error_503: args.p503,
            too_many_429: args.p429,
            retry_after_secs: args.retry_after,
            drop_before_store: args.pdrop_before,
            drop_after_store: args.pdrop_after,
            hang_after_store: args.phang_after,
            hang_for: Duration::from_millis(args.hang_ms),
        },
        maintenance,
        ..Scenario::default()
    };
    if !args.case_types.is_empty() {
        scenario.case_types = args.case_types.clone();
    }
    Ok(scenario)
}
