//! The soak's oracle, all in one place: the ledger invariants I1–I13
//! (ledger-and-reliability.md §2.3) as SQL over the ledger tables, the queue's own consistency
//! (terminal messages, counters, queue figures), the provider's record (the simulator's accepted
//! references) against ours, and the stores' history (what the API acknowledged) against the
//! ledger. Each check gives ok or VIOLATION with its numbers and up to a few offending rows.

use super::load::{Api, History, Store};
use super::nemesis::NemesisLog;
use crate::domain::delivery::DeliveryStatus;
use crate::provider::simulator::Simulator;
use crate::store::{Db, on_db};
use std::collections::{BTreeMap, HashMap, HashSet};

pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// Offending rows shown per check.
const SHOWN: usize = 5;

fn check(name: &str, bad: &[String], numbers: String) -> Check {
    let detail = if bad.is_empty() {
        numbers
    } else {
        let more = if bad.len() > SHOWN { format!(" … and {} more", bad.len() - SHOWN) } else { String::new() };
        format!("{numbers}; {} offending: {}{more}", bad.len(), bad[..bad.len().min(SHOWN)].join("; "))
    };
    Check { name: name.to_string(), ok: bad.is_empty(), detail }
}

/// A check whose query failed is a failed check, never a silent pass.
fn failed(name: &str, e: impl std::fmt::Display) -> Check {
    Check { name: name.to_string(), ok: false, detail: format!("the check's query failed: {e}") }
}

/// Reads the whole result of one query on either database (`$t` the row type).
macro_rules! rows {
    ($db:expr, $sql:expr) => {
        on_db!($db, |p| sqlx::query_as(sqlx::AssertSqlSafe($sql)).fetch_all(p).await)
    };
}

/// key, balance, version, Σ of its transfers, how many.
type AccountSums = (String, i64, i64, i64, i64);
/// hold, state, finalized (0/1), final transfers, their kind.
type HoldFinals = (i64, String, i64, i64, Option<String>);
/// campaign, charged, messages charged, cost of sent, sent.
type CampaignCharges = (i64, i64, i64, i64, i64);
/// campaign, its messages' cost, its first hold's reservation, that hold.
type LaunchCost = (i64, i64, i64, Option<i64>);
/// campaign, its status, hold, its state, its balance.
type OpenHold = (i64, String, i64, String, i64);

/// Immutable columns of every transfer: taken when the load stops, compared at the end (I13).
pub type TransferSnap = Vec<(i64, String, String, i64, i64, i64)>;

const TRANSFERS_SQL: &str = "SELECT id, idem_key, kind, debit_account, credit_account, amount FROM transfers ORDER BY id";

pub async fn snapshot(db: &Db) -> Result<TransferSnap, sqlx::Error> {
    rows!(db, TRANSFERS_SQL)
}

pub async fn run(db: &Db, sim: &Simulator, api: &Api, stores: &[Store], histories: &[History], before: &TransferSnap) -> Vec<Check> {
    let (accepted, duplicated) = sim.accepted_references();
    vec![
        terminal(db).await,
        no_duplicate_acceptance(&accepted, &duplicated),
        acceptances_match(db, &accepted).await,
        provider_final_status(db, &accepted).await,
        i1(db).await,
        i2(db).await,
        i3(db).await,
        i4(db).await,
        i5(db).await,
        i6(db).await,
        i7(db).await,
        i8(db).await,
        i9(db).await,
        i10(db).await,
        i11(db, histories).await,
        i12(db).await,
        i13(db, before).await,
        finished_holds_empty(db).await,
        counters(db).await,
        queue_figures(db, api, stores).await,
        top_ups_once(db, histories).await,
        replays(histories),
    ]
}

async fn terminal(db: &Db) -> Check {
    const NAME: &str = "every message terminal (or unknown with a reason)";
    let r: Result<Vec<(String, i64, i64)>, _> = rows!(
        db,
        "SELECT status, COUNT(*), CAST(SUM(CASE WHEN error_code IS NULL OR error_message IS NULL THEN 1 ELSE 0 END) AS BIGINT)
         FROM messages GROUP BY status ORDER BY status"
    );
    let r = match r {
        Ok(r) => r,
        Err(e) => return failed(NAME, e),
    };
    let mut bad = Vec::new();
    for (status, n, no_reason) in &r {
        match status.as_str() {
            "pending" | "sending" => bad.push(format!("{n} still {status}")),
            "unknown" if *no_reason > 0 => bad.push(format!("{no_reason} unknown without a reason")),
            _ => {}
        }
    }
    let total: i64 = r.iter().map(|x| x.1).sum();
    let parts: Vec<String> = r.iter().map(|(s, n, _)| format!("{n} {s}")).collect();
    check(NAME, &bad, format!("{total} messages: {}", parts.join(", ")))
}

fn no_duplicate_acceptance(accepted: &[(String, bool)], duplicated: &[String]) -> Check {
    let bad: Vec<String> = duplicated.iter().map(|r| format!("message {r} accepted again")).collect();
    check("no message accepted twice by the provider", &bad, format!("{} acceptances, {} duplicates", accepted.len(), duplicated.len()))
}

/// Every message's status, by id.
async fn statuses(db: &Db) -> Result<HashMap<i64, (String, Option<String>)>, sqlx::Error> {
    let r: Vec<(i64, String, Option<String>)> = rows!(db, "SELECT id, status, delivery_status FROM messages")?;
    Ok(r.into_iter().map(|(id, s, d)| (id, (s, d))).collect())
}

/// The provider's record against ours: what it accepted is `sent` (or `unknown`: the answer was
/// lost), and nothing is `sent` that it did not accept (I6's "no charge without acceptance").
async fn acceptances_match(db: &Db, accepted: &[(String, bool)]) -> Check {
    const NAME: &str = "I6 provider acceptances = sent messages";
    let all = match statuses(db).await {
        Ok(a) => a,
        Err(e) => return failed(NAME, e),
    };
    let mut bad = Vec::new();
    let mut refs = HashSet::new();
    let mut unknown = 0;
    for (reference, _) in accepted {
        let status = reference.parse::<i64>().ok().and_then(|id| {
            refs.insert(id);
            all.get(&id)
        });
        match status.map(|s| s.0.as_str()) {
            Some("sent") => {}
            Some("unknown") => unknown += 1,
            other => bad.push(format!("message {reference} accepted but {}", other.unwrap_or("not ours"))),
        }
    }
    let mut sent = 0;
    for (id, (status, _)) in &all {
        if status == "sent" {
            sent += 1;
            if !refs.contains(id) {
                bad.push(format!("message {id} sent without the provider's acceptance"));
            }
        }
    }
    check(NAME, &bad, format!("{} accepted: {sent} sent, {unknown} left unknown (their report never came)", accepted.len()))
}

/// Every message recorded sent ends with the provider's final status (reports, duplicated and out
/// of order, or status lookups).
async fn provider_final_status(db: &Db, accepted: &[(String, bool)]) -> Check {
    const NAME: &str = "I10 delivery status = the provider's final one";
    let all = match statuses(db).await {
        Ok(a) => a,
        Err(e) => return failed(NAME, e),
    };
    let mut bad = Vec::new();
    let mut checked = 0;
    for (reference, undelivered) in accepted {
        let Some((status, delivery)) = reference.parse::<i64>().ok().and_then(|id| all.get(&id)) else { continue };
        if status != "sent" {
            continue;
        }
        checked += 1;
        let want = if *undelivered { "undelivered" } else { "delivered" };
        if delivery.as_deref() != Some(want) {
            bad.push(format!("message {reference}: {} but the provider says {want}", delivery.as_deref().unwrap_or("no status")));
        }
    }
    check(NAME, &bad, format!("{checked} sent messages compared"))
}

async fn i1(db: &Db) -> Check {
    const NAME: &str = "I1 no balance below zero (but funding)";
    let r: Result<Vec<(String, i64)>, _> = rows!(db, "SELECT key, balance FROM accounts WHERE kind <> 'funding' AND balance < 0");
    match r {
        Ok(r) => {
            let bad: Vec<String> = r.iter().map(|(k, b)| format!("{k} = {b}")).collect();
            check(NAME, &bad, "all accounts".into())
        }
        Err(e) => failed(NAME, e),
    }
}

async fn i2(db: &Db) -> Check {
    const NAME: &str = "I2 conservation (total 0; per store = top-ups)";
    let total: Result<Vec<(i64,)>, _> = rows!(db, "SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM accounts");
    let per: Result<Vec<(i64, i64, i64)>, _> = rows!(
        db,
        "SELECT a.store_id, CAST(SUM(a.balance) AS BIGINT),
                (SELECT CAST(COALESCE(SUM(t.amount), 0) AS BIGINT) FROM transfers t WHERE t.store_id = a.store_id AND t.kind = 'top_up')
         FROM accounts a WHERE a.store_id IS NOT NULL GROUP BY a.store_id ORDER BY a.store_id"
    );
    let (total, per) = match (total, per) {
        (Ok(t), Ok(p)) => (t.first().map_or(0, |r| r.0), p),
        (Err(e), _) | (_, Err(e)) => return failed(NAME, e),
    };
    let mut bad: Vec<String> =
        per.iter().filter(|r| r.1 != r.2).map(|(s, owned, bought)| format!("store {s} owns {owned} but bought {bought}")).collect();
    if total != 0 {
        bad.push(format!("balances sum to {total}"));
    }
    check(NAME, &bad, format!("sum {total}; {} stores", per.len()))
}

async fn i3(db: &Db) -> Check {
    const NAME: &str = "I3 balance and version = its transfers";
    let r: Result<Vec<AccountSums>, _> = rows!(
        db,
        "WITH moves AS (SELECT credit_account AS account, amount FROM transfers UNION ALL SELECT debit_account, -amount FROM transfers)
         SELECT a.key, a.balance, a.version, CAST(COALESCE(SUM(m.amount), 0) AS BIGINT), COUNT(m.account)
         FROM accounts a LEFT JOIN moves m ON m.account = a.id GROUP BY a.id, a.key, a.balance, a.version"
    );
    match r {
        Ok(r) => {
            let bad: Vec<String> = r
                .iter()
                .filter(|x| x.1 != x.3 || x.2 != x.4)
                .map(|(k, b, v, sum, n)| format!("{k}: balance {b} version {v}, transfers sum {sum} count {n}"))
                .collect();
            check(NAME, &bad, format!("{} accounts", r.len()))
        }
        Err(e) => failed(NAME, e),
    }
}

/// Per hold: (id, state, reserved, charged, released, balance, Σ charges, Σ releases, Σ holds).
type HoldFigures = (i64, String, i64, i64, i64, i64, i64, i64, i64);

async fn holds(db: &Db) -> Result<Vec<HoldFigures>, sqlx::Error> {
    rows!(
        db,
        "WITH per AS (SELECT hold_id,
                CAST(SUM(CASE WHEN kind = 'charge' THEN amount ELSE 0 END) AS BIGINT) AS charged,
                CAST(SUM(CASE WHEN kind IN ('release', 'expiry') THEN amount ELSE 0 END) AS BIGINT) AS released,
                CAST(SUM(CASE WHEN kind = 'hold' THEN amount ELSE 0 END) AS BIGINT) AS held
              FROM transfers WHERE hold_id IS NOT NULL GROUP BY hold_id)
         SELECT h.id, h.state, h.reserved, h.charged, h.released, a.balance,
                COALESCE(per.charged, 0), COALESCE(per.released, 0), COALESCE(per.held, 0)
         FROM holds h JOIN accounts a ON a.id = h.account_id LEFT JOIN per ON per.hold_id = h.id ORDER BY h.id"
    )
}

async fn i4(db: &Db) -> Check {
    const NAME: &str = "I4 hold = reserved - charged - released, closed at 0";
    let r = match holds(db).await {
        Ok(r) => r,
        Err(e) => return failed(NAME, e),
    };
    let mut bad = Vec::new();
    for (id, state, reserved, charged, released, balance, charges, releases, held) in &r {
        let mut why = Vec::new();
        if held != reserved {
            why.push(format!("reserved {reserved} but held {held}"));
        }
        if charges != charged {
            why.push(format!("charged {charged} but charge transfers {charges}"));
        }
        if releases != released {
            why.push(format!("released {released} but release transfers {releases}"));
        }
        if *balance < 0 || charged + released > *reserved || *balance != reserved - charges - releases {
            why.push(format!("balance {balance} with reserved {reserved}, charged {charges}, released {releases}"));
        }
        if state != "active" && (*balance != 0 || charged + released != *reserved) {
            why.push(format!("{state} but balance {balance}, charged {charged} + released {released} != reserved {reserved}"));
        }
        if !why.is_empty() {
            bad.push(format!("hold {id}: {}", why.join(", ")));
        }
    }
    check(NAME, &bad, format!("{} holds", r.len()))
}

async fn i5(db: &Db) -> Check {
    const NAME: &str = "I5 each hold finalized once";
    let r: Result<Vec<HoldFinals>, _> = rows!(
        db,
        "SELECT h.id, h.state, CAST(CASE WHEN h.finalized_at IS NULL THEN 0 ELSE 1 END AS BIGINT), COUNT(t.id), MIN(t.kind)
         FROM holds h LEFT JOIN transfers t ON t.idem_key = 'release:' || CAST(h.id AS TEXT)
         GROUP BY h.id, h.state, h.finalized_at"
    );
    let r = match r {
        Ok(r) => r,
        Err(e) => return failed(NAME, e),
    };
    let mut bad = Vec::new();
    for (id, state, finalized, finals, kind) in &r {
        let ok = match state.as_str() {
            "active" => *finalized == 0 && *finals == 0,
            "released" => *finalized == 1 && *finals <= 1 && kind.as_deref().is_none_or(|k| k == "release"),
            "expired" => *finalized == 1 && *finals <= 1 && kind.as_deref().is_none_or(|k| k == "expiry"),
            _ => false,
        };
        if !ok {
            bad.push(format!("hold {id} {state}: finalized_at set {finalized}, {finals} final transfers ({kind:?})"));
        }
    }
    let closed = r.iter().filter(|x| x.1 != "active").count();
    check(NAME, &bad, format!("{closed} of {} holds finalized", r.len()))
}

async fn i6(db: &Db) -> Check {
    const NAME: &str = "I6 charges = cost of sent messages, per campaign";
    let r: Result<Vec<CampaignCharges>, _> = rows!(
        db,
        "WITH ch AS (SELECT campaign_id, CAST(SUM(amount) AS BIGINT) AS amount, CAST(SUM(COALESCE(messages, 0)) AS BIGINT) AS n
                     FROM transfers WHERE kind = 'charge' AND campaign_id IS NOT NULL GROUP BY campaign_id),
              ms AS (SELECT campaign_id, CAST(SUM(cost) AS BIGINT) AS cost, COUNT(*) AS n FROM messages WHERE status = 'sent' GROUP BY campaign_id)
         SELECT c.id, COALESCE(ch.amount, 0), COALESCE(ch.n, 0), COALESCE(ms.cost, 0), COALESCE(ms.n, 0)
         FROM campaigns c LEFT JOIN ch ON ch.campaign_id = c.id LEFT JOIN ms ON ms.campaign_id = c.id ORDER BY c.id"
    );
    match r {
        Ok(r) => {
            let bad: Vec<String> = r
                .iter()
                .filter(|x| x.1 != x.3 || x.2 != x.4)
                .map(|(c, charged, n, cost, sent)| format!("campaign {c}: charged {charged} for {n} messages, but {sent} sent cost {cost}"))
                .collect();
            let charged: i64 = r.iter().map(|x| x.1).sum();
            let sent: i64 = r.iter().map(|x| x.4).sum();
            check(NAME, &bad, format!("{} campaigns, {sent} sent, {charged} credits charged", r.len()))
        }
        Err(e) => failed(NAME, e),
    }
}

async fn i7(db: &Db) -> Check {
    const NAME: &str = "I7 no charge after a hold closed";
    // Charges and the final release both lock the hold's row before writing their transfer, so
    // transfer ids follow that lock order: nothing may touch a hold's account after its release.
    let r: Result<Vec<(i64, i64, i64)>, _> = rows!(
        db,
        "SELECT h.id, f.id, MAX(t.id) FROM holds h
         JOIN transfers f ON f.idem_key = 'release:' || CAST(h.id AS TEXT)
         JOIN transfers t ON t.debit_account = h.account_id OR t.credit_account = h.account_id
         GROUP BY h.id, f.id HAVING MAX(t.id) > f.id"
    );
    match r {
        Ok(r) => {
            let bad: Vec<String> = r.iter().map(|(h, f, t)| format!("hold {h}: transfer {t} after its release {f}")).collect();
            check(NAME, &bad, "finalized holds with a release".into())
        }
        Err(e) => failed(NAME, e),
    }
}

async fn i8(db: &Db) -> Check {
    const NAME: &str = "I8 reserved + spent <= bought + returned, per store";
    let r: Result<Vec<(i64, i64, i64, i64)>, _> = rows!(
        db,
        "SELECT a.store_id, a.balance,
                CAST(COALESCE(SUM(CASE WHEN t.credit_account = a.id THEN t.amount ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN t.debit_account = a.id THEN t.amount ELSE 0 END), 0) AS BIGINT)
         FROM accounts a LEFT JOIN transfers t ON t.credit_account = a.id OR t.debit_account = a.id
         WHERE a.kind = 'wallet' GROUP BY a.id, a.store_id, a.balance ORDER BY a.store_id"
    );
    match r {
        Ok(r) => {
            let bad: Vec<String> = r
                .iter()
                .filter(|(_, balance, into, out)| out > into || *balance != into - out)
                .map(|(s, balance, into, out)| format!("store {s}: out {out} > in {into} or balance {balance} != in - out"))
                .collect();
            let out: i64 = r.iter().map(|x| x.3).sum();
            check(NAME, &bad, format!("{} wallets, {out} credits reserved or spent", r.len()))
        }
        Err(e) => failed(NAME, e),
    }
}

async fn i9(db: &Db) -> Check {
    const NAME: &str = "I9 after the faults no hold left open";
    let r: Result<Vec<(i64, Option<String>)>, _> = rows!(
        db,
        "SELECT h.id, c.status FROM holds h LEFT JOIN campaigns c ON c.id = h.campaign_id
         WHERE h.state = 'active' AND (c.status IS NULL OR c.status NOT IN ('sending', 'paused'))"
    );
    match r {
        Ok(r) => {
            let bad: Vec<String> = r.iter().map(|(h, s)| format!("hold {h} open, campaign {}", s.as_deref().unwrap_or("none"))).collect();
            check(NAME, &bad, "holds of runs that cannot send".into())
        }
        Err(e) => failed(NAME, e),
    }
}

async fn i10(db: &Db) -> Check {
    const NAME: &str = "I10 delivery status never below a report applied";
    let applied: Result<Vec<(i64, String, Option<String>)>, _> = rows!(
        db,
        "SELECT r.message_id, r.status, m.delivery_status FROM delivery_reports r JOIN messages m ON m.id = r.message_id
         WHERE r.state = 'applied'"
    );
    let parked: Result<Vec<(i64, String)>, _> = rows!(
        db,
        "SELECT r.id, m.status FROM delivery_reports r JOIN messages m ON m.id = r.message_id
         WHERE r.state = 'parked' AND m.status NOT IN ('pending', 'sending')"
    );
    let (applied, parked) = match (applied, parked) {
        (Ok(a), Ok(p)) => (a, p),
        (Err(e), _) | (_, Err(e)) => return failed(NAME, e),
    };
    // The domain's order of statuses: the one rule, not a copy in SQL.
    let rank = |s: Option<&str>| s.map_or(DeliveryStatus::Other, DeliveryStatus::parse);
    let mut bad: Vec<String> = applied
        .iter()
        .filter(|(_, report, current)| rank(current.as_deref()) < rank(Some(report.as_str())))
        .map(|(m, report, current)| format!("message {m} is {current:?} after a {report} report"))
        .collect();
    bad.extend(parked.iter().map(|(r, s)| format!("report {r} still parked, its message {s}")));
    check(NAME, &bad, format!("{} applied reports", applied.len()))
}

async fn i11(db: &Db, histories: &[History]) -> Check {
    const NAME: &str = "I11 each launch held exactly its messages' cost";
    let r: Result<Vec<LaunchCost>, _> = rows!(
        db,
        "WITH mc AS (SELECT campaign_id, CAST(SUM(cost) AS BIGINT) AS cost FROM messages WHERE NOT test GROUP BY campaign_id),
              fh AS (SELECT campaign_id, MIN(id) AS id FROM holds WHERE id NOT IN (SELECT hold_id FROM messages WHERE hold_id IS NOT NULL)
                        GROUP BY campaign_id)
         SELECT mc.campaign_id, mc.cost, COALESCE(h.reserved, 0), h.id
         FROM mc LEFT JOIN fh ON fh.campaign_id = mc.campaign_id LEFT JOIN holds h ON h.id = fh.id"
    );
    let r = match r {
        Ok(r) => r,
        Err(e) => return failed(NAME, e),
    };
    let by_campaign: HashMap<i64, (i64, i64, Option<i64>)> = r.iter().map(|(c, cost, res, h)| (*c, (*cost, *res, *h))).collect();
    let mut bad: Vec<String> = r
        .iter()
        .filter(|x| x.1 != x.2)
        .map(|(c, cost, reserved, _)| format!("campaign {c}: messages cost {cost}, its first hold reserved {reserved}"))
        .collect();
    let mut launches = 0;
    for h in histories {
        for (campaign, held, hold) in &h.launches {
            launches += 1;
            match by_campaign.get(campaign) {
                Some((cost, _, first)) if cost == held && *first == Some(*hold) => {}
                other => bad.push(format!("campaign {campaign}: the API said {held} held in hold {hold}; the database has {other:?}")),
            }
        }
    }
    check(NAME, &bad, format!("{} campaigns with messages, {launches} acknowledged launches", r.len()))
}

async fn i12(db: &Db) -> Check {
    const NAME: &str = "I12 every movement within one store";
    let transfers: Result<Vec<(i64,)>, _> = rows!(
        db,
        "SELECT t.id FROM transfers t JOIN accounts d ON d.id = t.debit_account JOIN accounts c ON c.id = t.credit_account
         WHERE (d.store_id IS NULL AND d.kind <> 'funding') OR (c.store_id IS NULL AND c.kind <> 'funding')
            OR (d.store_id IS NOT NULL AND (t.store_id IS NULL OR d.store_id <> t.store_id))
            OR (c.store_id IS NOT NULL AND (t.store_id IS NULL OR c.store_id <> t.store_id))"
    );
    let others: Result<Vec<(String, i64)>, _> = rows!(
        db,
        "SELECT 'hold', h.id FROM holds h JOIN accounts a ON a.id = h.account_id LEFT JOIN campaigns c ON c.id = h.campaign_id
         WHERE a.store_id IS NULL OR a.store_id <> h.store_id OR (c.id IS NOT NULL AND c.store_id <> h.store_id)
         UNION ALL
         SELECT 'message', m.id FROM messages m JOIN campaigns c ON c.id = m.campaign_id WHERE c.store_id <> m.store_id"
    );
    let (transfers, others) = match (transfers, others) {
        (Ok(t), Ok(o)) => (t, o),
        (Err(e), _) | (_, Err(e)) => return failed(NAME, e),
    };
    let mut bad: Vec<String> = transfers.iter().map(|(t,)| format!("transfer {t} crosses stores")).collect();
    bad.extend(others.iter().map(|(what, id)| format!("{what} {id} of another store's campaign or account")));
    check(NAME, &bad, "transfers, holds, messages".into())
}

async fn i13(db: &Db, before: &TransferSnap) -> Check {
    const NAME: &str = "I13 ledger append-only (and replays to the balances, I3)";
    let now: TransferSnap = match snapshot(db).await {
        Ok(n) => n,
        Err(e) => return failed(NAME, e),
    };
    let now_by_id: HashMap<i64, _> = now.iter().map(|t| (t.0, t)).collect();
    let bad: Vec<String> = before
        .iter()
        .filter(|t| now_by_id.get(&t.0) != Some(t))
        .map(|t| format!("transfer {} ({}) changed or vanished: now {:?}", t.0, t.1, now_by_id.get(&t.0)))
        .collect();
    check(NAME, &bad, format!("{} transfers seen when the load stopped, {} at the end", before.len(), now.len()))
}

async fn finished_holds_empty(db: &Db) -> Check {
    const NAME: &str = "every finished campaign's hold at 0";
    let r: Result<Vec<OpenHold>, _> = rows!(
        db,
        "SELECT c.id, c.status, h.id, h.state, a.balance FROM campaigns c JOIN holds h ON h.campaign_id = c.id
         JOIN accounts a ON a.id = h.account_id
         WHERE c.status IN ('sent', 'failed', 'cancelled') AND (h.state = 'active' OR a.balance <> 0)"
    );
    let finished: Result<Vec<(i64,)>, _> = rows!(db, "SELECT COUNT(*) FROM campaigns WHERE status IN ('sent', 'failed', 'cancelled')");
    match (r, finished) {
        (Ok(r), Ok(f)) => {
            let bad: Vec<String> = r.iter().map(|(c, cs, h, hs, b)| format!("campaign {c} {cs}: hold {h} {hs} with {b} credits")).collect();
            check(NAME, &bad, format!("{} finished campaigns", f.first().map_or(0, |x| x.0)))
        }
        (Err(e), _) | (_, Err(e)) => failed(NAME, e),
    }
}

/// Campaign counters in this order, and the same figures counted from the rows.
const COUNTERS: [&str; 9] = ["total", "pending", "sending", "sent", "failed", "cancelled", "unknown", "delivered", "undelivered"];
type Figures = (i64, i64, i64, i64, i64, i64, i64, i64, i64, i64);

async fn counters(db: &Db) -> Check {
    const NAME: &str = "campaign counters = row counts";
    let kept: Result<Vec<Figures>, _> = rows!(
        db,
        "SELECT id, total, pending, sending, sent, failed, cancelled, unknown, delivered, undelivered FROM campaigns ORDER BY id"
    );
    let counted: Result<Vec<Figures>, _> = rows!(
        db,
        "SELECT campaign_id, COUNT(*),
                CAST(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN status = 'sending' THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN status = 'sent' THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN status = 'unknown' THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN delivery_status = 'delivered' THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN delivery_status IN ('undelivered', 'expired', 'rejected') THEN 1 ELSE 0 END) AS BIGINT)
         FROM messages WHERE NOT test GROUP BY campaign_id"
    );
    let (kept, counted) = match (kept, counted) {
        (Ok(k), Ok(c)) => (k, c),
        (Err(e), _) | (_, Err(e)) => return failed(NAME, e),
    };
    let as_array = |f: &Figures| [f.1, f.2, f.3, f.4, f.5, f.6, f.7, f.8, f.9];
    let counted: HashMap<i64, [i64; 9]> = counted.iter().map(|f| (f.0, as_array(f))).collect();
    let mut bad = Vec::new();
    for k in &kept {
        let rows = counted.get(&k.0).copied().unwrap_or([0; 9]);
        let diffs: Vec<String> = COUNTERS
            .iter()
            .zip(as_array(k).iter().zip(rows.iter()))
            .filter(|(_, (a, b))| a != b)
            .map(|(name, (a, b))| format!("{name} {a} vs {b} rows"))
            .collect();
        if !diffs.is_empty() {
            bad.push(format!("campaign {}: {}", k.0, diffs.join(", ")));
        }
    }
    check(NAME, &bad, format!("{} campaigns", kept.len()))
}

/// What `/api/queue` (each store) and `/api/admin/queue` say, against the rows.
async fn queue_figures(db: &Db, api: &Api, stores: &[Store]) -> Check {
    const NAME: &str = "queue figures = row counts";
    let r: Result<Vec<(i64, String, i64)>, _> =
        rows!(db, "SELECT store_id, status, COUNT(*) FROM messages WHERE NOT test GROUP BY store_id, status");
    let r = match r {
        Ok(r) => r,
        Err(e) => return failed(NAME, e),
    };
    let mut rows: BTreeMap<Option<i64>, BTreeMap<String, i64>> = BTreeMap::new();
    for (store, status, n) in &r {
        *rows.entry(Some(*store)).or_default().entry(status.clone()).or_default() += n;
        *rows.entry(None).or_default().entry(status.clone()).or_default() += n;
    }
    let mut bad = Vec::new();
    let asks =
        stores.iter().map(|s| (Some(s.id), "/api/queue", s.key.as_str())).chain([(None, "/api/admin/queue", api.admin_key.as_str())]);
    for (store, path, key) in asks {
        let who = store.map_or("operator".to_string(), |s| format!("store {s}"));
        let Some((200, q)) = api.get(path, key).await else {
            bad.push(format!("{who}: {path} did not answer"));
            continue;
        };
        let want = rows.get(&store).cloned().unwrap_or_default();
        let n = |s: &str| want.get(s).copied().unwrap_or(0);
        let got = |f: &str| q[f].as_i64().unwrap_or(-1);
        for (figure, have, rows) in [
            ("waiting + delayed", got("waiting") + got("delayed"), n("pending")),
            ("active", got("active"), n("sending")),
            ("completed", got("completed"), n("sent")),
            ("failed", got("failed"), n("failed")),
            ("cancelled", got("cancelled"), n("cancelled")),
            ("unknown", got("unknown"), n("unknown")),
        ] {
            if have != rows {
                bad.push(format!("{who}: {figure} {have} vs {rows} rows"));
            }
        }
    }
    check(NAME, &bad, format!("{} stores and the operator", stores.len()))
}

/// Every top-up the API acknowledged is in the ledger exactly once, with its amount; one never
/// acknowledged is there at most once; there are no others.
async fn top_ups_once(db: &Db, histories: &[History]) -> Check {
    const NAME: &str = "acknowledged top-ups in the ledger once";
    let r: Result<Vec<(String, i64)>, _> = rows!(db, "SELECT idem_key, amount FROM transfers WHERE kind = 'top_up'");
    let r = match r {
        Ok(r) => r,
        Err(e) => return failed(NAME, e),
    };
    let ledger: HashMap<&str, i64> = r.iter().map(|(k, a)| (k.as_str(), *a)).collect();
    let mut bad = Vec::new();
    let mut known = HashSet::new();
    let (mut acked, mut unsure) = (0, 0);
    for h in histories {
        for (key, amount) in &h.top_ups {
            acked += 1;
            let k = format!("topup:{}:{key}", h.store);
            if ledger.get(k.as_str()) != Some(amount) {
                bad.push(format!("{k}: acknowledged {amount}, ledger {:?}", ledger.get(k.as_str())));
            }
            known.insert(k);
        }
        for (key, amount) in &h.top_ups_unknown {
            unsure += 1;
            let k = format!("topup:{}:{key}", h.store);
            if ledger.get(k.as_str()).is_some_and(|a| a != amount) {
                bad.push(format!("{k}: asked {amount}, ledger {:?}", ledger.get(k.as_str())));
            }
            known.insert(k);
        }
    }
    bad.extend(ledger.keys().filter(|k| !known.contains(**k)).map(|k| format!("{k}: in the ledger, never asked for")));
    check(NAME, &bad, format!("{acked} acknowledged, {unsure} unanswered, {} in the ledger", ledger.len()))
}

fn replays(histories: &[History]) -> Check {
    let bad: Vec<String> = histories.iter().flat_map(|h| h.replay_mismatches.iter().cloned()).collect();
    check("Idempotency-Key replays answer the same", &bad, "sends and top-ups sent twice".into())
}

/// The summary: each check, the load's operations and the nemesis's faults.
pub fn print(report: &[Check], histories: &[History], nemesis: &NemesisLog) {
    let mut ops: BTreeMap<&str, (u32, u32, u32)> = BTreeMap::new();
    for h in histories {
        for (op, c) in &h.ops {
            let e = ops.entry(op).or_default();
            e.0 += c.ok;
            e.1 += c.refused;
            e.2 += c.faulted;
        }
    }
    println!();
    println!("load (per operation: ok / refused by state / met a fault):");
    for (op, (ok, refused, faulted)) in &ops {
        println!("  {op:<14} {ok:>6} / {refused:>6} / {faulted:>6}");
    }
    println!(
        "nemesis: {} SIGKILLs, {} SIGSTOPs past the lease, {} connection breaks ({} backends); {} worker starts",
        nemesis.kills, nemesis.pauses, nemesis.connection_breaks, nemesis.backends_terminated, nemesis.worker_starts
    );
    println!();
    let width = report.iter().map(|c| c.name.chars().count()).max().unwrap_or(10);
    println!("{:<width$}  {:<9}  numbers", "check", "result");
    println!("{}", "-".repeat(width + 40));
    for c in report {
        println!("{:<width$}  {:<9}  {}", c.name, if c.ok { "ok" } else { "VIOLATION" }, c.detail);
    }
    println!();
}
