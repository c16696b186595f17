//! The contacts stage (issue #17): the contacts the cases name exist before their cases.
//!
//! Before any case call, the file is read ahead once (`plan`): the distinct contacts
//! (`contact`, the contact's e-mail) of the rows an import would insert, less those the
//! ledger found or created within `--contacts-max-age`. `settle` then looks the rest up
//! (one `custom/query.php` call per contact, or pages of `custom/queryDates.php` over the
//! whole contacts module when that costs fewer calls) and, with `contacts.create`, creates
//! the missing ones with `custom/insertMany.php` in batches, exactly once (`create.rs`).
//! What it found is a `Verdicts`: the run engine makes the rows of a contact that is
//! missing `invalid`, of one the CRM refused `rejected`, of one it could not settle
//! `failed`, before their case is sent.

mod create;
mod settle;

use std::collections::{BTreeMap, HashMap};

use crate::ledger::{KnownContact, Ledger, Prior};
use crate::mapping::check::{self, Checked};
use crate::mapping::{CompiledMapping, DuplicateKeys};
use crate::outcome::Status;
use crate::run::preflight::PlanError;
use crate::source::Source;

pub use settle::{Caller, Settled, settle};

/// Records a `custom/queryDates.php` page asks for (the simulator's maximum; the real
/// API's is unknown, docs/wolkvox-api.md §8).
pub const PAGE: usize = 1000;

/// What the contact stage is told.
#[derive(Debug, Clone, Copy)]
pub struct ContactSettings {
    /// A contact found or created this long ago is not looked up again.
    pub max_age_secs: u64,
    /// Contacts per `insertMany` call.
    pub batch: usize,
    /// Rows an earlier run left uncertain are resent (`--resend-uncertain`): their
    /// contacts count too.
    pub resend_uncertain: bool,
}

/// One contact named by the rows to send.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    /// Rows naming it.
    pub rows: u64,
    /// What it is created with (`contacts.create`; the first row's values).
    pub fields: Vec<(&'static str, String)>,
}

/// How the contacts not in the ledger are looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Nothing to look up.
    Nothing,
    /// One `custom/query.php` call per contact.
    PerContact,
    /// Pages of `custom/queryDates.php` over the whole module: about this many.
    Pages(u64),
}

/// The contacts of the rows an import would insert, read ahead before any call.
#[derive(Debug, Default)]
pub struct Plan {
    pub contacts: BTreeMap<String, Wanted>,
    /// Those the ledger found or created within the max age.
    pub known: HashMap<String, KnownContact>,
    /// Those to look up, in order.
    pub to_check: Vec<String>,
    pub way: Option<Way>,
    /// Create the missing ones (`contacts.create`).
    pub create: bool,
    pub batch: usize,
}

impl Plan {
    /// Look-up calls the chosen way costs (pages: the estimate).
    pub fn check_calls(&self) -> u64 {
        match self.way {
            Some(Way::PerContact) => self.to_check.len() as u64,
            Some(Way::Pages(pages)) => pages,
            _ => 0,
        }
    }

    /// Calls the stage may spend: the look-ups, and with `create` at most one
    /// `insertMany` call per batch of the contacts looked up (if all were missing).
    pub fn calls(&self) -> u64 {
        let create = if self.create {
            self.to_check.len().div_ceil(self.batch.max(1)) as u64
        } else {
            0
        };
        self.check_calls() + create
    }

    /// The choice, as the log says it.
    pub fn describe_way(&self) -> String {
        let n = self.to_check.len();
        match self.way {
            Some(Way::Pages(pages)) => format!(
                "by pages of custom/queryDates.php over the contacts module (about {pages} \
                 call(s)) rather than one custom/query.php call per contact ({n} calls)"
            ),
            Some(Way::PerContact) => format!(
                "with one custom/query.php call per contact ({n} call(s)): paging through the \
                 whole contacts module would cost as many or more"
            ),
            _ => "nothing to look up".into(),
        }
    }
}

/// Choose between one call per contact and pages of the whole module: the pages a scan
/// needs are estimated from the module's size at the last scan (one page when never
/// scanned); the scan is chosen only when that is fewer calls.
pub fn choose(to_check: usize, last_scan: Option<u64>) -> Way {
    if to_check == 0 {
        return Way::Nothing;
    }
    let pages = last_scan.map_or(1, |records| records / PAGE as u64 + 1);
    if pages < to_check as u64 {
        Way::Pages(pages)
    } else {
        Way::PerContact
    }
}

/// Whether a row with this prior would be inserted by an import.
fn would_insert(prior: Option<&Prior>, resend_uncertain: bool) -> bool {
    match prior {
        None | Some(Prior::Retryable) => true,
        Some(Prior::InDoubt { .. }) => resend_uncertain,
        Some(Prior::Created { .. }) => false,
    }
}

/// Read the opened `source` again and gather the contacts of the rows an import would
/// insert (by `ledger`, when there is one). `None` when the mapping checks no contacts.
pub fn plan(
    source: &Source,
    mapping: &CompiledMapping,
    ledger: Option<&Ledger>,
    settings: &ContactSettings,
) -> Result<Option<Plan>, PlanError> {
    if !mapping.checks_contacts() {
        return Ok(None);
    }
    let mut plan = Plan {
        create: mapping.creates_contacts(),
        batch: settings.batch.max(1),
        ..Plan::default()
    };
    let mut keys = DuplicateKeys::default();
    for item in source.reread()? {
        let Checked::Ready { payload, .. } = check::check(item, mapping, &mut keys) else {
            continue;
        };
        let prior = match ledger {
            Some(ledger) => ledger.prior(&payload.key)?,
            None => None,
        };
        if !would_insert(prior.as_ref(), settings.resend_uncertain) {
            continue;
        }
        let Some(email) = payload.contact() else {
            continue;
        };
        let wanted = plan.contacts.entry(email.to_string()).or_default();
        if wanted.rows == 0 {
            wanted.fields = payload.contact_fields().to_vec();
        }
        wanted.rows += 1;
    }
    if let Some(ledger) = ledger {
        let mut known = ledger.known_contacts(settings.max_age_secs)?;
        known.retain(|email, _| plan.contacts.contains_key(email));
        plan.known = known;
    }
    plan.to_check = plan
        .contacts
        .keys()
        .filter(|email| !plan.known.contains_key(*email))
        .cloned()
        .collect();
    let last_scan = match ledger {
        Some(ledger) => ledger.last_contact_scan()?,
        None => None,
    };
    plan.way = Some(choose(plan.to_check.len(), last_scan));
    Ok(Some(plan))
}

/// What became of one contact the rows name, when their cases must not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowVerdict {
    /// The CRM does not have it (and it was not to be created).
    Missing,
    /// The CRM refused to create it: its message.
    Refused(String),
    /// It could be neither found nor created (no answer, the run stopped): why.
    Unsettled(String),
}

/// The contacts whose rows are not sent, by e-mail.
#[derive(Debug, Default)]
pub struct Verdicts(pub HashMap<String, RowVerdict>);

impl Verdicts {
    /// The status and message of a row naming `email`, when its case must not be sent.
    pub fn for_row(&self, email: Option<&str>) -> Option<(Status, String)> {
        let email = email?;
        Some(match self.0.get(email)? {
            RowVerdict::Missing => (Status::Invalid, missing_message(email)),
            RowVerdict::Refused(why) => (
                Status::Rejected,
                format!("the CRM refused to create contact {email}: {why}"),
            ),
            RowVerdict::Unsettled(why) => (
                Status::Failed,
                format!(
                    "contact {email} could not be checked or created ({why}): its case was not \
                     sent; a re-run tries again"
                ),
            ),
        })
    }
}

/// The message of a row naming a contact the CRM lacks.
pub fn missing_message(email: &str) -> String {
    format!("contact {email} does not exist in the CRM (create it there, or add contacts.create)")
}

/// Run the stage over `plan` and say what it found: the log lines, and the notes the
/// summary repeats (rows left out, contacts created). `ledger` is `None` when read-only.
pub async fn stage(
    plan: &Plan,
    caller: &mut Caller<'_>,
    ledger: Option<&Ledger>,
    durable: bool,
) -> anyhow::Result<(Settled, Vec<String>)> {
    let named = plan.contacts.len();
    tracing::info!(
        named,
        known = plan.known.len(),
        to_check = plan.to_check.len(),
        "Contacts: {named} named by the rows to send; {} known from the ledger \
         (--contacts-max-age), {} to look up {}.",
        plan.known.len(),
        plan.to_check.len(),
        plan.describe_way()
    );
    let settled = settle(plan, caller, ledger, durable).await?;
    let mut notes = Vec::new();
    tracing::info!(
        lookups = settled.lookups,
        missing = settled.missing,
        "Contacts: {} look-up call(s) made; {} contact(s) not in the CRM.",
        settled.lookups,
        settled.missing
    );
    if settled.missing > 0 {
        let (rows, contacts) = (settled.missing_rows, settled.missing);
        let note = if !plan.create {
            format!(
                "{rows} rows name {contacts} contacts the CRM does not have: those rows are \
                 invalid (create the contacts in the CRM, or add contacts.create to the mapping)"
            )
        } else if ledger.is_none() {
            format!(
                "{rows} rows name {contacts} contacts the CRM does not have: an import creates \
                 them first (contacts.create), in about {} call(s) of up to {}",
                contacts.div_ceil(plan.batch.max(1)),
                plan.batch
            )
        } else {
            format!(
                "{rows} rows named {contacts} contacts the CRM did not have: {} created in {} \
                 custom/insertMany.php call(s) of up to {} (--contacts-batch)",
                settled.created, settled.batches, plan.batch
            )
        };
        tracing::warn!("{note}");
        notes.push(note);
    }
    let refused = settled
        .verdicts
        .0
        .values()
        .filter(|v| matches!(v, RowVerdict::Refused(_)))
        .count();
    let unsettled = settled
        .verdicts
        .0
        .values()
        .filter(|v| matches!(v, RowVerdict::Unsettled(_)))
        .count();
    if refused > 0 {
        let note = format!(
            "{refused} contact(s) refused by the CRM: their rows are rejected, with its message"
        );
        tracing::warn!("{note}");
        notes.push(note);
    }
    if unsettled > 0 {
        let note = format!(
            "{unsettled} contact(s) could not be checked or created: their rows failed, not \
             sent (a re-run tries again)"
        );
        tracing::warn!("{note}");
        notes.push(note);
    }
    Ok((settled, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_chosen_only_when_they_cost_fewer_calls() {
        assert_eq!(choose(0, None), Way::Nothing);
        assert_eq!(choose(1, None), Way::PerContact);
        // Never scanned: one page is the guess.
        assert_eq!(choose(2, None), Way::Pages(1));
        // 4,500 contacts in the CRM: five pages, so 5 contacts go one by one, 6 by pages.
        assert_eq!(choose(5, Some(4_500)), Way::PerContact);
        assert_eq!(choose(6, Some(4_500)), Way::Pages(5));
    }

    #[test]
    fn rows_say_why_their_case_was_not_sent() {
        let mut verdicts = Verdicts::default();
        verdicts.0.insert("ana@x.co".into(), RowVerdict::Missing);
        verdicts
            .0
            .insert("b@x.co".into(), RowVerdict::Refused("HTTP 400: NO".into()));
        assert_eq!(
            verdicts.for_row(Some("ana@x.co")),
            Some((
                Status::Invalid,
                "contact ana@x.co does not exist in the CRM (create it there, or add \
                 contacts.create)"
                    .into()
            ))
        );
        assert_eq!(
            verdicts.for_row(Some("b@x.co")).map(|v| v.0),
            Some(Status::Rejected)
        );
        assert_eq!(verdicts.for_row(Some("c@x.co")), None);
        assert_eq!(verdicts.for_row(None), None);
    }
}
