//! The payer/provider reminder list (docs/conflicts.md §9.3, [SF] TASK_06):
//! `payer_provider_reminders` receives every (payer, provider) pair of the
//! payer-provider dimension (`analytics.dimpayerprovider` joined to its
//! provider and payer) that it does not hold yet, and the payer name
//! (`Contract`) and provider name of the pairs it holds are refreshed.
//! `NumberOfDays` belongs to the users and is never written.
//!
//! Ids are read through their text form, so a mirror that keeps them as
//! `text` works like one with `uuid` (docs/conflicts.md §2.4); blank ids are
//! skipped. The "From Payer" reminder notices and comments built on the list
//! are not built yet (docs/conflicts.md §9.3).

use super::store::{written_columns, StatementContext, Table};
use crate::error::Result;
use crate::sink::qualified;

/// Columns of `payer_provider_reminders` the nightly job writes (its
/// allow-list; never `NumberOfDays`).
pub const WRITTEN_COLUMNS: &[&str] = &[
    "PayerID",
    "AppPayerID",
    "Contract",
    "ProviderID",
    "AppProviderID",
    "ProviderName",
    "CreatedDateTime",
];

/// The two reminder statements (insert missing pairs, refresh names), no parameters.
///
/// Errors: [`crate::error::ErrorKind::Internal`] when a statement would
/// write a column outside the allow-list (a bug in thaw).
pub fn statements(ctx: &StatementContext) -> Result<Vec<(&'static str, String)>> {
    let a = |t: &str| qualified(&ctx.schemas.analytics, t);
    let reminders = qualified(&ctx.schemas.conflict, "payer_provider_reminders");
    let now = format!("(now() AT TIME ZONE {})", ctx.zone_literal);
    let id = |e: &str| format!("nullif(btrim({e}::text), '')::uuid");
    let app_id = |e: &str| format!("nullif(btrim({e}::text), '')::numeric::int8");
    let pairs = format!(
        "SELECT DISTINCT ON (pp.payer_id, pp.provider_id) pp.payer_id, pp.app_payer_id, py.\"Payer Name\" AS payer_name,\n           \
                pp.provider_id, pp.app_provider_id, pr.\"Provider Name\" AS provider_name\n    \
         FROM (SELECT {payer} AS payer_id, {app_payer} AS app_payer_id, {provider} AS provider_id, {app_provider} AS app_provider_id\n          \
               FROM {dim} x) pp\n    \
         JOIN {providers} pr ON {pr_id} = pp.provider_id\n    \
         JOIN {payers} py ON {py_id} = pp.payer_id\n    \
         WHERE pp.payer_id IS NOT NULL AND pp.provider_id IS NOT NULL\n    \
         ORDER BY pp.payer_id, pp.provider_id",
        payer = id("x.\"Payer Id\""),
        app_payer = app_id("x.\"Application Payer Id\""),
        provider = id("x.\"Provider Id\""),
        app_provider = app_id("x.\"Application Provider Id\""),
        dim = a("dimpayerprovider"),
        providers = a("dimprovider"),
        payers = a("dimpayer"),
        pr_id = id("pr.\"Provider Id\""),
        py_id = id("py.\"Payer Id\""),
    );
    let cols = written_columns(
        Table::PayerProviderReminders,
        WRITTEN_COLUMNS.iter().copied(),
    )?;
    let insert_sql = format!(
        "INSERT INTO {reminders} ({cols})\n\
         SELECT p.payer_id, p.app_payer_id, p.payer_name, p.provider_id, p.app_provider_id, p.provider_name, {now}\n\
         FROM ({pairs}) p\n\
         WHERE NOT EXISTS (SELECT 1 FROM {reminders} r WHERE r.\"PayerID\" = p.payer_id AND r.\"ProviderID\" = p.provider_id)",
        cols = cols.join(", "),
    );
    let names = written_columns(Table::PayerProviderReminders, ["Contract", "ProviderName"])?;
    let (contract, provider_name) = (&names[0], &names[1]);
    let refresh_sql = format!(
        "UPDATE {reminders} r SET {contract} = p.payer_name, {provider_name} = p.provider_name\n\
         FROM ({pairs}) p\n\
         WHERE r.\"PayerID\" = p.payer_id AND r.\"ProviderID\" = p.provider_id\n  \
         AND (r.\"Contract\" IS DISTINCT FROM p.payer_name OR r.\"ProviderName\" IS DISTINCT FROM p.provider_name)"
    );
    Ok(vec![
        ("payer provider reminders", insert_sql),
        ("payer provider reminder names", refresh_sql),
    ])
}
