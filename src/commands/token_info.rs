//! `token-info`: each token's daily quota, from the token information API.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

use crate::cli::TokenInfoArgs;
use crate::exit::Verdict;
use crate::sender::client::{self, Client, TokenInfoError};
use crate::sender::token;

pub async fn run(args: &TokenInfoArgs) -> anyhow::Result<Verdict> {
    let url = client::insert_url(&args.server)?;
    let tokens = token::load(
        args.token_file.as_deref(),
        std::env::var("WOLKVOX_TOKEN").ok(),
    )?;
    let client = Client::new(url, Duration::from_secs(30))?;
    let mut out = std::io::stdout().lock();
    let mut verdict = Verdict::Clean;
    for token in &tokens {
        let fingerprint = token.fingerprint();
        match client.token_info(token, &args.operation).await {
            Ok(info) if args.json => writeln!(
                out,
                "{}",
                json!({"token": fingerprint, "limit": info.limit, "used": info.used,
                       "left": info.left, "hours_to_reset": info.hours_to_reset})
            )?,
            // A limit of 0 is the CRM setting none, not a quota spent.
            Ok(info) if info.limit == 0 => writeln!(
                out,
                "token {fingerprint}: no daily limit, used {} today",
                info.used
            )?,
            Ok(info) => writeln!(
                out,
                "token {fingerprint}: limit {} a day, used {}, left {}, resets in {} h",
                info.limit,
                info.used,
                info.left,
                info.hours_to_reset.as_deref().unwrap_or("?")
            )?,
            Err(TokenInfoError::Rejected(why)) => {
                verdict = Verdict::Aborted;
                writeln!(out, "token {fingerprint}: rejected ({why})")?;
            }
            Err(TokenInfoError::QuotaSpent) => {
                verdict = Verdict::QuotaStop;
                writeln!(
                    out,
                    "token {fingerprint}: no calls left today (TOKEN LIMIT EXCEEDED)"
                )?;
            }
            Err(TokenInfoError::Unreachable(why) | TokenInfoError::Unavailable(why)) => {
                anyhow::bail!("the token information API did not answer usefully: {why}");
            }
        }
    }
    Ok(verdict)
}
