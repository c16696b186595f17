//! The reconcile stage: ask the CRM about the rows the ledger is in doubt of (sent, answer
//! unknown; with `--ids`, created without the CRM giving a case id) and settle each one:
//! found exactly once → created with its id; found nowhere → safe to send (`missing`);
//! anything else (several matches, a near match, a look-up that failed) → still uncertain,
//! with the reason. Never "not found" on an answer it could not read.
//!
//! Quota-frugal: the ledger knows when each row was sent, so one `queryDates.php` window
//! (paged) answers for every row sent in it; `queryCases.php` row by row only where a
//! window would cost more (dense, refused, or the CRM's clock unknown). The plan's calls
//! are said before the first one; `--max-calls` caps them.

pub mod clock;
pub mod identity;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::ledger::{Doubt, Found, Ledger, LedgerError, State};
use crate::mapping::Payload;
use crate::sender::lookup::{self, Failed, Query, Record};
use crate::sender::{Client, StopKind, Token};

use clock::{Clock, Span};
use identity::{Compared, Identity};

pub use identity::SEARCHABLE;

/// Records a date window asks for at once (the most `queryDates.php` gives, as far as is
/// known).
pub const PAGE: usize = 1000;
/// Look-ups that get no answer in a row before the CRM is taken for down.
const DOWN_AFTER: u32 = 3;

/// How a reconcile runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Also look up created rows the CRM gave no case id for.
    pub ids: bool,
    /// At most this many calls (`--max-calls`, and what the quota leaves above the
    /// reserve).
    pub max_calls: Option<u64>,
    /// The pause between calls (`--rate`).
    pub spacing: Option<Duration>,
    pub quiet: bool,
}

/// One row's result, for the results file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub row: i64,
    pub key: String,
    /// `created`, `pending` (safe to send: the next import sends it) or `uncertain`.
    pub status: &'static str,
    pub case_id: Option<String>,
    pub message: String,
}

/// What a reconcile did.
#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Settled>,
    /// The calls said before the first one.
    pub planned: u64,
    /// Look-up calls, retries included.
    pub calls: u64,
    /// Token-information calls made before the look-ups (the quota check), not in `calls`.
    pub token_info_calls: u64,
    /// Why it stopped early (the token refused, the quota spent, the CRM down).
    pub stop: Option<(StopKind, String)>,
    /// Rows it could not settle (still uncertain, or a case id still unknown).
    pub unsettled: usize,
}

impl Report {
    pub fn count(&self, status: &str) -> usize {
        self.rows.iter().filter(|r| r.status == status).count()
    }
}

/// A row being settled.
struct Row {
    doubt: Doubt,
    identity: Option<Identity>,
    /// Settled without asking the CRM (it cannot be looked up), or by a failed look-up.
    found: Option<(Found, String)>,
    /// What the look-ups that answered for it found; decided once all are in (a case one
    /// look-up gives this row, another may give a second row too).
    candidates: Option<Candidates>,
}

/// The cases a look-up found for one row.
#[derive(Default)]
struct Candidates {
    same: Vec<String>,
    near: Vec<(String, Vec<String>)>,
    /// Exact matches created outside the time the row was sent.
    dated_out: Vec<String>,
    how: String,
}

/// The look-up client of one reconcile: spacing, the call cap, the ledger's record of
/// every call, and the breaker.
struct Asker<'a> {
    client: &'a Client,
    token: &'a Token,
    operation: &'a str,
    ledger: &'a Ledger,
    options: &'a Options,
    calls: u64,
    silent: u32,
    stop: Option<(StopKind, String)>,
}

/// Why a question was not answered.
enum NotAsked {
    Capped,
    Stopped,
    Failed(Failed),
}

impl Asker<'_> {
    /// Ask `query`: its records and the number of the ledger's record of it.
    async fn ask(&mut self, query: &Query) -> Result<(Vec<Record>, i64), NotAsked> {
        if self.stop.is_some() {
            return Err(NotAsked::Stopped);
        }
        if self.options.max_calls.is_some_and(|max| self.calls >= max) {
            return Err(NotAsked::Capped);
        }
        if self.calls > 0
            && let Some(spacing) = self.options.spacing
        {
            tokio::time::sleep(spacing).await;
        }
        // Each try is a call: the retries inside stay within the cap too.
        let tries = self.options.max_calls.map_or(lookup::TRIES, |max| {
            u32::try_from(max - self.calls)
                .unwrap_or(u32::MAX)
                .min(lookup::TRIES)
        });
        let looked =
            lookup::ask_within(self.client, self.token, self.operation, query, tries).await;
        self.calls += u64::from(looked.calls.max(1));
        let number = self
            .ledger
            .record_lookup(query.endpoint(), &query.describe(), &looked.found())
            .map_err(|e| NotAsked::Failed(Failed::NoAnswer(e.to_string())))?;
        match looked.records {
            Ok(records) => {
                self.silent = 0;
                Ok((records, number))
            }
            Err(Failed::Stop(kind, why)) => {
                self.stop = Some((kind, why.clone()));
                Err(NotAsked::Failed(Failed::Stop(kind, why)))
            }
            Err(why) => {
                if matches!(why, Failed::NoAnswer(_)) {
                    self.silent += 1;
                    if self.silent >= DOWN_AFTER {
                        self.stop = Some((
                            StopKind::WrongEndpoint,
                            format!("{DOWN_AFTER} look-ups in a row got no answer: {why}"),
                        ));
                    }
                }
                Err(NotAsked::Failed(why))
            }
        }
    }
}

impl NotAsked {
    fn why(&self, options: &Options) -> String {
        match self {
            NotAsked::Capped => format!(
                "not looked up: the {} calls it could spend (--max-calls, or the token's quota \
                 less --quota-reserve) are spent; run reconcile again",
                options.max_calls.unwrap_or_default()
            ),
            NotAsked::Stopped => "not looked up: the reconcile stopped first".into(),
            NotAsked::Failed(why) => format!("the look-up failed ({why})"),
        }
    }
}

/// Settle the ledger's rows in doubt, by the `payloads` of the input that was imported
/// (by key) and the mapping's `lookup` fields.
pub async fn reconcile(
    ledger: &Ledger,
    client: &Client,
    token: &Token,
    operation: &str,
    payloads: &HashMap<String, Payload>,
    lookup: &[String],
    options: &Options,
) -> Result<Report, LedgerError> {
    let mut rows: Vec<Row> = ledger
        .doubts(options.ids)?
        .into_iter()
        .map(|doubt| {
            let (identity, found) = identify(&doubt, payloads.get(&doubt.key), lookup);
            Row {
                doubt,
                identity,
                found,
                candidates: None,
            }
        })
        .collect();
    let mut report = Report::default();
    let open: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].found.is_none())
        .collect();
    let known = ledger.known_case()?;
    let (spans, one_by_one, planned) = plan(ledger, &rows, &open, known.is_some())?;
    report.planned = planned;
    if !options.quiet && !open.is_empty() {
        let windows = spans.len();
        eprintln!(
            "reconcile: {} rows to look up ({} in doubt of whether the CRM has them{}); \
             plan: {} calls ({}{windows} date window(s), {} row-by-row look-ups){}",
            open.len(),
            open.iter()
                .filter(|&&i| rows[i].doubt.state != State::Created)
                .count(),
            if options.ids {
                ", the rest created without a case id"
            } else {
                ""
            },
            planned,
            if windows > 0 {
                "1 to read the CRM's clock, "
            } else {
                ""
            },
            one_by_one.len(),
            match options.max_calls {
                Some(max) if max < planned => format!(
                    "; at most {max} calls may be spent (--max-calls, or the quota less \
                     --quota-reserve)"
                ),
                _ => String::new(),
            }
        );
    }
    let ids = ledger.case_ids()?;
    let mut asker = Asker {
        client,
        token,
        operation,
        ledger,
        options,
        calls: 0,
        silent: 0,
        stop: None,
    };
    let mut by_row = one_by_one;
    let clock = match (&known, spans.is_empty()) {
        (Some(case), false) => {
            let query = Query::Cases {
                field: "wolkvox-id".into(),
                value: case.case_id.clone(),
            };
            let read = match asker.ask(&query).await {
                Ok((records, _)) => records
                    .iter()
                    .find(|r| lookup::text(r, "wolkvox_id").as_deref() == Some(&case.case_id))
                    .and_then(|r| Clock::from_case(r, &case.sent_at, &case.answered_at))
                    .ok_or_else(|| {
                        format!(
                            "case {} came back without a creation time that fits when it was sent",
                            case.case_id
                        )
                    }),
                Err(why) => Err(why.why(options)),
            };
            match read {
                Ok(clock) => Some(clock),
                Err(why) => {
                    if !options.quiet && asker.stop.is_none() {
                        eprintln!(
                            "reconcile: could not read the CRM's clock ({why}): looking the rows \
                             up one by one instead"
                        );
                    }
                    None
                }
            }
        }
        _ => None,
    };
    match clock {
        Some(clock) => {
            for span in &spans {
                windowed(&mut asker, &clock, span, &mut rows, &ids, &mut by_row).await;
            }
        }
        None => by_row.extend(spans.iter().flat_map(|s| s.rows.iter().copied())),
    }
    by_row.sort_unstable();
    by_row.dedup();
    for index in by_row {
        one(&mut asker, clock.as_ref(), index, &mut rows, &ids).await;
    }
    decide(&mut rows);
    report.calls = asker.calls;
    report.stop = asker.stop.clone();
    let run = ledger.run_id();
    for row in &rows {
        let (found, why) = row
            .found
            .clone()
            .unwrap_or((Found::Unsettled(String::new()), "not looked up".into()));
        let created_before = row.doubt.state == State::Created;
        if matches!(found, Found::Unsettled(_)) {
            report.unsettled += 1;
        }
        let (status, case_id, message) = match &found {
            Found::Case(id) => (
                "created",
                Some(id.clone()),
                format!("reconcile (run {run}): in the CRM as case {id} ({why}); not sent again"),
            ),
            Found::Nothing if created_before => (
                "created",
                None,
                format!(
                    "reconcile (run {run}): no case in the CRM matches it ({why}); deleted there? \
                     left as created"
                ),
            ),
            Found::Nothing => (
                "pending",
                None,
                format!("reconcile (run {run}): not in the CRM ({why}); the next import sends it"),
            ),
            Found::Unsettled(_) if created_before => (
                "created",
                None,
                format!("reconcile (run {run}): case id still unknown: {why}"),
            ),
            Found::Unsettled(_) => (
                "uncertain",
                None,
                format!(
                    "reconcile (run {run}): {why}; still uncertain: check the CRM and record it \
                     with `resolve`, or run reconcile again"
                ),
            ),
        };
        ledger.settle_looked_up(&row.doubt, &found, &message)?;
        report.rows.push(Settled {
            row: row.doubt.source_row,
            key: row.doubt.key.clone(),
            status,
            case_id,
            message,
        });
    }
    ledger.commit()?;
    Ok(report)
}

/// The row's identity, or why it cannot be looked up.
fn identify(
    doubt: &Doubt,
    payload: Option<&Payload>,
    lookup: &[String],
) -> (Option<Identity>, Option<(Found, String)>) {
    let unsettled = |why: String| Some((Found::Unsettled(why.clone()), why));
    let Some(payload) = payload else {
        return (
            None,
            unsettled(format!(
                "not in this input (or not valid in it): reconcile with the file run {} read",
                doubt.run
            )),
        );
    };
    let identity = Identity::of(payload, lookup);
    let changed = identity.changed_since_sent(payload, doubt.fields.as_deref());
    if !changed.is_empty() {
        return (
            None,
            unsettled(format!(
                "the file's row differs from what was sent ({}): reconcile with the file run {} \
                 read",
                changed.join(", "),
                doubt.run
            )),
        );
    }
    if identity.search().is_none() {
        return (
            None,
            unsettled("the field it is searched by is empty: nothing to look it up by".into()),
        );
    }
    (Some(identity), None)
}

/// The date windows, the rows looked up one by one, and the calls that costs.
fn plan(
    ledger: &Ledger,
    rows: &[Row],
    open: &[usize],
    clock_readable: bool,
) -> Result<(Vec<Span>, Vec<usize>, u64), LedgerError> {
    if !clock_readable {
        return Ok((Vec::new(), open.to_vec(), open.len() as u64));
    }
    let mut by_row = Vec::new();
    let mut spans = Vec::new();
    for &i in open {
        match clock::row_span(
            i,
            rows[i].doubt.sent_at.as_deref(),
            &rows[i].doubt.answered_at,
        ) {
            Some(span) => spans.push(span),
            None => by_row.push(i),
        }
    }
    let mut windows = Vec::new();
    let mut window_calls = 0u64;
    for span in clock::merge(spans) {
        let from = span.from.to_rfc3339();
        let to = span.to.to_rfc3339();
        let pages = ledger
            .sent_between(&from, &to)?
            .div_ceil(PAGE as u64)
            .max(1);
        if pages >= span.rows.len() as u64 {
            by_row.extend(span.rows);
        } else {
            window_calls += pages;
            windows.push(span);
        }
    }
    // One call reads the clock: worth it only if the windows then save more than it.
    if !windows.is_empty() {
        let in_windows: u64 = windows.iter().map(|s| s.rows.len() as u64).sum();
        if window_calls + 1 >= in_windows {
            by_row.extend(windows.drain(..).flat_map(|s| s.rows));
            window_calls = 0;
        } else {
            window_calls += 1;
        }
    }
    let calls = window_calls + by_row.len() as u64;
    Ok((windows, by_row, calls))
}

/// The cases of one window, paged, matched against its rows; rows it cannot answer for
/// go to `by_row`.
async fn windowed(
    asker: &mut Asker<'_>,
    clock: &Clock,
    span: &Span,
    rows: &mut [Row],
    ids: &HashMap<String, String>,
    by_row: &mut Vec<usize>,
) {
    let to = clock.minute(span.to + chrono::TimeDelta::minutes(1));
    let mut from = clock.minute(span.from);
    let mut seen = HashSet::new();
    let mut records = Vec::new();
    let mut pages = 0;
    let mut numbers = Vec::new();
    loop {
        let query = Query::Dates {
            module: "cases".into(),
            from: from.clone(),
            to: to.clone(),
            limit: PAGE,
        };
        pages += 1;
        match asker.ask(&query).await {
            Ok((page, number)) => {
                numbers.push(number);
                let full = may_be_cut(page.len());
                let last_minute = page
                    .last()
                    .and_then(clock::created)
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string());
                let mut new = 0;
                for record in page {
                    let id = lookup::text(&record, "wolkvox_id").map(|v| v.to_string());
                    if id.as_ref().is_none_or(|id| seen.insert(id.clone())) {
                        records.push(record);
                        new += 1;
                    }
                }
                if !full {
                    break;
                }
                match last_minute {
                    // A full page ending in a later minute, with something new: ask again
                    // from that minute.
                    Some(minute) if minute > from && new > 0 && pages < span.rows.len() => {
                        from = minute
                    }
                    // Denser than a page a minute, or dearer than the rows: the rows whose
                    // minutes were read whole are settled by them, the rest one by one.
                    _ => {
                        let whole_until = last_minute.unwrap_or_default();
                        let mut covered = Vec::new();
                        for &i in &span.rows {
                            let ends = clock::row_span(
                                i,
                                rows[i].doubt.sent_at.as_deref(),
                                &rows[i].doubt.answered_at,
                            )
                            .map(|own| clock.minute(own.to + chrono::TimeDelta::minutes(1)));
                            match ends {
                                Some(end) if end <= whole_until => covered.push(i),
                                _ => by_row.push(i),
                            }
                        }
                        let how = format!(
                            "look-ups {numbers:?} of the cases created from {}",
                            clock.minute(span.from)
                        );
                        candidates(rows, &covered, &records, ids, &how, None);
                        return;
                    }
                }
            }
            Err(NotAsked::Failed(Failed::Refused(_))) => {
                by_row.extend(&span.rows);
                return;
            }
            Err(why) => {
                let why = why.why(asker.options);
                for &i in &span.rows {
                    rows[i].found = Some((Found::Unsettled(why.clone()), why.clone()));
                }
                return;
            }
        }
    }
    let how = format!(
        "look-up {} of the cases created {}–{}",
        numbers
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        clock.minute(span.from),
        to
    );
    // The window must hold the cases this ledger saw created in it: else the CRM's clock
    // was misread (or the answer is short), and "not there" would mean nothing.
    let expected = asker
        .ledger
        .created_between(&span.from.to_rfc3339(), &span.to.to_rfc3339())
        .unwrap_or_default();
    if let Some(absent) = expected.iter().find(|id| !seen.contains(*id)) {
        let why = format!(
            "the CRM's cases for {}–{to} ({how}) lack case {absent}, which this ledger saw \
             created then: its clock or its answer cannot be trusted; check by hand",
            clock.minute(span.from)
        );
        for &i in &span.rows {
            rows[i].found = Some((Found::Unsettled(why.clone()), why.clone()));
        }
        return;
    }
    candidates(rows, &span.rows, &records, ids, &how, None);
}

/// Whether a page of `len` records may have been cut by a limit: `PAGE` is the most the
/// CRM is known to give, but a CRM that gives fewer says nothing of it, and a window read
/// short would take sent rows for missing ones. Limits are round numbers: a page of a
/// multiple of 50 is followed by one more from its last minute (one call, and only then).
fn may_be_cut(len: usize) -> bool {
    len >= PAGE || (len >= 50 && len.is_multiple_of(50))
}

/// One row looked up by its searched field; the cases it finds are kept to those created
/// around its send, when the CRM's clock is known.
async fn one(
    asker: &mut Asker<'_>,
    clock: Option<&Clock>,
    index: usize,
    rows: &mut [Row],
    ids: &HashMap<String, String>,
) {
    let Some((field, value)) = rows[index].identity.as_ref().and_then(Identity::search) else {
        return;
    };
    let query = Query::Cases {
        field: field.to_string(),
        value: value.to_string(),
    };
    match asker.ask(&query).await {
        Ok((records, number)) => {
            // Rows without a send time (older ledgers) are not filtered by date: their
            // answer time is not when they were sent.
            let span = rows[index].doubt.sent_at.as_deref().and_then(|sent| {
                clock::row_span(index, Some(sent), &rows[index].doubt.answered_at)
            });
            let when = |r: &Record| match (clock, &span, clock::created(r)) {
                (Some(clock), Some(span), Some(created)) => clock.within(created, span),
                _ => true,
            };
            let how = format!("look-up {number}: {}", query.describe());
            candidates(rows, &[index], &records, ids, &how, Some(&when));
        }
        Err(why) => {
            let why = why.why(asker.options);
            rows[index].found = Some((Found::Unsettled(why.clone()), why));
        }
    }
}

/// Match `records` against the rows `indexes` (only rows not settled yet), skipping the
/// cases another key of the ledger created; `when` says whether a case was created in the
/// time the row was sent (a match outside it is kept apart: it is not "nothing").
fn candidates(
    rows: &mut [Row],
    indexes: &[usize],
    records: &[Record],
    ids: &HashMap<String, String>,
    how: &str,
    when: Option<&dyn Fn(&Record) -> bool>,
) {
    for &i in indexes {
        if rows[i].found.is_some() {
            continue;
        }
        let Some(identity) = rows[i].identity.as_ref() else {
            continue;
        };
        let key = &rows[i].doubt.key;
        let mut found = Candidates {
            how: how.to_string(),
            ..Candidates::default()
        };
        for record in records {
            let Some(id) = lookup::text(record, "wolkvox_id").map(|v| v.to_string()) else {
                continue;
            };
            if ids.get(&id).is_some_and(|owner| owner != key) {
                continue;
            }
            let in_time = when.is_none_or(|when| when(record));
            match identity.compare(record) {
                Compared::Same if in_time => found.same.push(id),
                Compared::Same => found.dated_out.push(id),
                Compared::Near(fields) if in_time => found.near.push((id, fields)),
                Compared::Near(_) | Compared::Other => {}
            }
        }
        rows[i].candidates = Some(found);
    }
}

/// Decide every looked-up row at once: a case matching one row only, over every look-up
/// of the run, is that row's.
fn decide(rows: &mut [Row]) {
    let mut claims: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        if let (None, Some(c)) = (&row.found, &row.candidates) {
            for id in &c.same {
                claims.entry(id.clone()).or_default().push(i);
            }
        }
    }
    for i in 0..rows.len() {
        if rows[i].found.is_some() {
            continue;
        }
        let Some(c) = rows[i].candidates.take() else {
            continue;
        };
        let how = &c.how;
        let shared: Vec<&String> = c
            .same
            .iter()
            .filter(|id| claims.get(*id).is_some_and(|rows| rows.len() > 1))
            .collect();
        let unsettled = |why: String| (Found::Unsettled(why.clone()), why);
        let found = if !shared.is_empty() {
            let others: Vec<String> = shared
                .iter()
                .flat_map(|id| &claims[*id])
                .filter(|&&j| j != i)
                .map(|&j| format!("row {}", rows[j].doubt.source_row))
                .collect();
            unsettled(format!(
                "case {} matches this row and {} alike ({how}): tell them apart with a \
                 `lookup:` field, or check by hand",
                shared
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                others.join(", ")
            ))
        } else if c.same.len() > 1 {
            unsettled(format!(
                "{} cases match it: {} ({how}): a duplicate; delete one in the CRM, then \
                 `resolve --created KEY=ID`",
                c.same.len(),
                c.same.join(", ")
            ))
        } else if let Some(id) = c.same.first() {
            (Found::Case(id.clone()), how.clone())
        } else if !c.near.is_empty() {
            let list: Vec<String> = c
                .near
                .iter()
                .map(|(id, fields)| format!("case {id} differs in {}", fields.join(", ")))
                .collect();
            unsettled(format!(
                "no case matches exactly, but {} ({how}): check by hand",
                list.join("; ")
            ))
        } else if !c.dated_out.is_empty() {
            unsettled(format!(
                "case {} matches it but was created outside the minutes it was sent ({how}): \
                 check by hand",
                c.dated_out.join(", ")
            ))
        } else {
            (Found::Nothing, how.clone())
        };
        rows[i].found = Some(found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_of_a_round_size_may_have_been_cut_by_a_limit() {
        for cut in [50, 100, 200, 250, 500, 1000, 1200] {
            assert!(may_be_cut(cut), "{cut}");
        }
        for whole in [0, 1, 49, 99, 101, 219, 999] {
            assert!(!may_be_cut(whole), "{whole}");
        }
    }
}
