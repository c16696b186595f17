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
    let addrs = listen_addrs(&args.listen).await?;
    let listener = TcpListener::bind(&addrs[..])
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "http://{addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, "Simulator listening; Ctrl-C or SIGTERM stops it.");
    let state = match &args.cases_file {
        None => SimState::new(scenario),
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("--cases-file {}: cannot create it", path.display()))?;
            SimState::with_journal(scenario, file)
        }
    };
    simulator::serve(listener, state, stopped()).await?;
    Ok(Verdict::Clean)
}

/// Ctrl-C, or SIGTERM (`docker stop`, Kubernetes): the simulator stops serving.
async fn stopped() {
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        return;
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The addresses of `--listen HOST:PORT`. An IP address or `localhost` is read here, not
/// by the C library's resolver, which a static binary in an empty root (a `scratch`
/// container) cannot use: it would need glibc's NSS modules. Other names go to it.
async fn listen_addrs(text: &str) -> anyhow::Result<Vec<std::net::SocketAddr>> {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let (host, port) = text
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
        .with_context(|| {
            format!("--listen {text:?}: write HOST:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:0")
        })?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if bare.trim_end_matches('.').eq_ignore_ascii_case("localhost") {
        return Ok(vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)]);
    }
    let found: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .with_context(|| {
            format!(
                "--listen {text:?}: cannot resolve {bare:?} (give an address instead, e.g. \
                 127.0.0.1:{port} or 0.0.0.0:{port})"
            )
        })?
        .collect();
    anyhow::ensure!(
        !found.is_empty(),
        "--listen {text:?}: {bare:?} has no address; give one, e.g. 127.0.0.1:{port}"
    );
    Ok(found)
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
    let contacts = match &args.contacts_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--contacts-file {}: cannot read it", path.display()))?;
            let contacts = simulator::parse_contacts(&path.display().to_string(), &text)
                .map_err(|e| anyhow::anyhow!("--contacts-file {e}"))?;
            Some(contacts)
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
        contacts,
        no_id_every: args.no_id_every,
        duplicate_every: args.duplicate_every,
        ..Scenario::default()
    };
    if !args.case_types.is_empty() {
        scenario.case_types = args.case_types.clone();
    }
    Ok(scenario)
}
