//! The run's tokens: each with its own concurrency slots, call count and quota budget.

use crate::outcome::TokenUse;
use crate::sender::Token;
use crate::sender::client::{Client, TokenInfoError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    Live,
    /// 401 / 403 PLEASE VALIDATE TOKEN: dropped for the run.
    Rejected,
    /// Its daily quota (less the reserve) is spent.
    Exhausted,
}

#[derive(Debug)]
struct Slot {
    token: Token,
    in_flight: usize,
    /// Inserts that reached the CRM this run (retries included).
    calls: u64,
    /// Calls made before the preflight's figure (`--reconcile`'s look-ups) or for it (the
    /// token-information call): they cost quota too, but the quota the preflight reports
    /// is what is left after them.
    earlier_calls: u64,
    /// Calls left today as the preflight found them, or 0 once the CRM said the quota is
    /// spent; `None` when unknown or unlimited.
    left: Option<u64>,
    /// Calls this run may still make with it; `None` when the quota is unknown or unlimited.
    budget: Option<u64>,
    state: SlotState,
}

/// What the preflight learnt, for the plan printed before sending.
#[derive(Debug, Default)]
pub struct QuotaPlan {
    pub calls_left_today: u64,
    pub calls_per_day: u64,
    pub known: bool,
}

#[derive(Debug)]
pub struct TokenPool {
    slots: Vec<Slot>,
    per_token: usize,
    /// The CRM's answer when it last refused a token, for the stop message.
    pub last_refusal: Option<String>,
    /// Hours until the quota resets, as the token information API last said.
    pub hours_to_reset: Option<String>,
}

impl TokenPool {
    pub fn new(tokens: Vec<Token>, per_token: usize) -> TokenPool {
        TokenPool {
            slots: tokens
                .into_iter()
                .map(|token| Slot {
                    token,
                    in_flight: 0,
                    calls: 0,
                    earlier_calls: 0,
                    left: None,
                    budget: None,
                    state: SlotState::Live,
                })
                .collect(),
            per_token,
            last_refusal: None,
            hours_to_reset: None,
        }
    }

    /// Ask the token information API about every token (one call each). `Err` when the
    /// server cannot be reached at all: nothing would get through, so nothing is tried.
    pub async fn preflight(
        &mut self,
        client: &Client,
        operation: &str,
        reserve: u64,
    ) -> Result<QuotaPlan, String> {
        let mut plan = QuotaPlan::default();
        for slot in &mut self.slots {
            let fingerprint = slot.token.fingerprint();
            let answer = client.token_info(&slot.token, operation).await;
            if !matches!(answer, Err(TokenInfoError::Unreachable(_))) {
                slot.earlier_calls += 1;
            }
            match answer {
                Err(TokenInfoError::QuotaSpent) => {
                    slot.left = Some(0);
                    self.last_refusal = Some(format!("HTTP 403: {}", crate::wolkvox::TOKEN_LIMIT));
                    slot.state = SlotState::Exhausted;
                    slot.budget = Some(0);
                    plan.known = true;
                    tracing::warn!(token = %fingerprint, "The token has no calls left today.");
                }
                Ok(info) if info.limit == 0 => {
                    tracing::info!(token = %fingerprint, "The token has no daily limit.");
                }
                Ok(info) => {
                    slot.left = Some(info.left);
                    let budget = info.left.saturating_sub(reserve);
                    slot.budget = Some(budget);
                    if budget == 0 {
                        slot.state = SlotState::Exhausted;
                    }
                    plan.known = true;
                    if info.hours_to_reset.is_some() {
                        self.hours_to_reset.clone_from(&info.hours_to_reset);
                    }
                    plan.calls_left_today += budget;
                    plan.calls_per_day += info.limit.saturating_sub(reserve);
                    tracing::info!(
                        token = %fingerprint,
                        limit = info.limit,
                        used = info.used,
                        left = info.left,
                        reserve,
                        hours_to_reset = info.hours_to_reset.as_deref().unwrap_or("?"),
                        "Token quota."
                    );
                }
                Err(TokenInfoError::Rejected(why)) => {
                    slot.state = SlotState::Rejected;
                    self.last_refusal = Some(why.clone());
                    tracing::warn!(token = %fingerprint, %why, "The CRM rejected this token; it is left out of the run.");
                }
                Err(TokenInfoError::Unreachable(why)) => return Err(why),
                Err(TokenInfoError::Unavailable(why)) => {
                    tracing::warn!(token = %fingerprint, %why, "No token information; sending without a quota plan.");
                }
            }
        }
        Ok(plan)
    }

    /// The live token with a free slot and budget, least busy first.
    pub fn pick(&self) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state == SlotState::Live && s.in_flight < self.per_token)
            .filter(|(_, s)| s.budget.is_none_or(|b| s.calls + (s.in_flight as u64) < b))
            .min_by_key(|(_, s)| s.in_flight)
            .map(|(i, _)| i)
    }

    /// Requests in flight, over every token.
    pub fn in_flight(&self) -> usize {
        self.slots.iter().map(|s| s.in_flight).sum()
    }

    /// How many more requests could start now, over every token.
    pub fn free_slots(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.state == SlotState::Live)
            .map(|s| {
                let free = self.per_token.saturating_sub(s.in_flight);
                match s.budget {
                    Some(b) => free.min(b.saturating_sub(s.calls + s.in_flight as u64) as usize),
                    None => free,
                }
            })
            .sum()
    }

    /// Whether any token could still send, now or once its requests in flight end.
    pub fn usable(&self) -> bool {
        self.slots.iter().any(|s| {
            s.state == SlotState::Live
                && s.budget.is_none_or(|b| s.calls + (s.in_flight as u64) < b)
        })
    }

    /// Why nothing can be sent any more: quota (resumable) or every token rejected.
    pub fn exhausted_by_quota(&self) -> bool {
        self.slots.iter().any(|s| s.state != SlotState::Rejected)
    }

    pub fn token(&self, index: usize) -> Token {
        self.slots[index].token.clone()
    }

    pub fn start(&mut self, index: usize) {
        self.slots[index].in_flight += 1;
    }

    /// `calls` made with this slot's token before the pool was made (`--reconcile`'s
    /// look-ups): counted in its use, and already in the CRM's figure of calls left.
    pub fn count_earlier(&mut self, index: usize, calls: u64) {
        if let Some(slot) = self.slots.get_mut(index) {
            slot.earlier_calls += calls;
        }
    }

    /// A request of this slot ended, after `calls` calls that reached the CRM.
    pub fn finish(&mut self, index: usize, calls: u32) {
        let slot = &mut self.slots[index];
        slot.in_flight = slot.in_flight.saturating_sub(1);
        slot.calls += u64::from(calls);
    }

    /// The CRM refused the token (`Rejected`) or said its quota is spent (`Exhausted`).
    pub fn mark(&mut self, index: usize, state: SlotState) {
        let slot = &mut self.slots[index];
        slot.state = state;
        if state == SlotState::Exhausted {
            slot.left = Some(0);
        }
    }

    pub fn live_count(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.state == SlotState::Live)
            .count()
    }

    /// How many tokens the run was given (live or not).
    pub fn tokens(&self) -> usize {
        self.slots.len()
    }

    pub fn uses(&self) -> Vec<TokenUse> {
        self.slots
            .iter()
            .map(|s| TokenUse {
                fingerprint: s.token.fingerprint(),
                calls: s.calls + s.earlier_calls,
                quota_left: s.left.map(|left| left.saturating_sub(s.calls)),
                state: match s.state {
                    SlotState::Live => "ok",
                    SlotState::Rejected => "rejected",
                    SlotState::Exhausted => "quota",
                },
            })
            .collect()
    }
}
