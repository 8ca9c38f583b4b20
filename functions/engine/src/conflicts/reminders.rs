//! The payer/provider reminder list (docs/conflicts.md §9.3, \[SF\] TASK_06):
//! `payer_provider_reminders` receives every (payer, provider) pair of the
//! payer-provider dimension (`analytics.dimpayerprovider` joined to its
//! provider and payer) that it does not hold yet, and the payer name
//! (`Contract`) and provider name of the pairs it holds are refreshed.
//! `NumberOfDays` belongs to the users and is never written.
//!
//! Ids are read through their text form, so a mirror that keeps them as
//! `text` works like one with `uuid` (docs/conflicts.md §2.4); blank ids are
//! skipped.
//!
//! Then the reminders themselves (\[SF\] TASK_06, docs/conflicts.md §9.3,
//! §D23): every open (`U`) conflict recorded exactly `NumberOfDays` days ago
//! whose primary visit has the payer and provider of a list entry gets a
//! "From Payer" notice for that provider and an automatic comment by the
//! system user 99999 in `conflict_commu_inters`, once per conflict and day.

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

/// `NotificationType` of a payer's reminder about a conflict still open.
pub const FROM_PAYER: &str = "From Payer";

/// `created_by` (and `updated_by`) of the automatic reminder comment: \[SF\]'s system user.
pub const SYSTEM_USER: i64 = 99999;

/// Columns of `conflict_commu_inters` the nightly job writes when it adds a
/// reminder comment (its allow-list: it never updates a comment, and never
/// writes the comment type, attachments or files of the application's
/// comments).
pub const COMMENT_COLUMNS: &[&str] = &[
    "CONFLICTID",
    "GroupID",
    "ReverseUUID",
    "Description",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "created_by_name",
    "updated_by_name",
];

/// The reminder statements, no parameters: insert missing pairs, refresh
/// names, then the "From Payer" notices and comments of the conflicts
/// whose reminder is due today (docs/conflicts.md §9.3, §D23). "Today" is
/// the current date on the wall clock of `conflicts.time_zone`, like the
/// other notifications (§9.1): a conflict whose `RECORDEDDATETIME` has the
/// date today − `NumberOfDays`, whose status is `U` and whose primary visit's
/// `PayerID` and `ProviderID` are a list entry's. The notice goes to that
/// provider with the payer's name (`Contract` of the entry); the comment's
/// `ReverseUUID` holds the `CONFLICTID` as text, as \[SF\] writes it. A
/// conflict with a notice (comment) of this kind dated today gets no second
/// one, so a rerun of the night adds nothing.
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
    let cvm = qualified(&ctx.schemas.conflict, "conflictvisitmaps");
    let conflicts = qualified(&ctx.schemas.conflict, "conflicts");
    let notifications = qualified(&ctx.schemas.conflict, "notifications");
    let comments = qualified(&ctx.schemas.conflict, "conflict_commu_inters");
    let due = format!(
        "FROM {conflicts} k JOIN {cvm} c ON c.\"CONFLICTID\" = k.\"CONFLICTID\"\n\
         JOIN {reminders} r ON r.\"PayerID\" = c.\"PayerID\" AND r.\"ProviderID\" = c.\"ProviderID\"\n\
         WHERE k.\"StatusFlag\" = 'U' AND r.\"NumberOfDays\" IS NOT NULL\n  \
         AND k.\"RECORDEDDATETIME\" >= date_trunc('day', {now}) - make_interval(days => r.\"NumberOfDays\")\n  \
         AND k.\"RECORDEDDATETIME\" < date_trunc('day', {now}) - make_interval(days => r.\"NumberOfDays\" - 1)"
    );
    let notice_cols = written_columns(Table::Notifications, super::notifications::WRITTEN_COLUMNS.iter().copied())?.join(", ");
    let notice_sql = format!(
        "INSERT INTO {notifications} ({notice_cols})\n\
         SELECT DISTINCT ON (k.\"CONFLICTID\") k.\"CONFLICTID\", c.\"ProviderID\", c.\"AppProviderID\", '{FROM_PAYER}', {now}::date, {now}, r.\"Contract\"\n\
         {due}\n  \
         AND NOT EXISTS (SELECT 1 FROM {notifications} n WHERE n.\"CONFLICTID\" = k.\"CONFLICTID\" AND n.\"NotificationType\" = '{FROM_PAYER}'\n    \
         AND n.\"ProviderID\" IS NOT DISTINCT FROM c.\"ProviderID\" AND n.\"CreatedDate\" = {now}::date)\n\
         ORDER BY k.\"CONFLICTID\", c.\"ID\""
    );
    let comment_cols = written_columns(Table::ConflictComments, COMMENT_COLUMNS.iter().copied())?.join(", ");
    let comment_sql = format!(
        "INSERT INTO {comments} ({comment_cols})\n\
         SELECT DISTINCT ON (k.\"CONFLICTID\") k.\"CONFLICTID\", c.\"GroupID\", k.\"CONFLICTID\"::text,\n       \
                'Reminder from payer ' || coalesce(r.\"Contract\", '(unnamed)') || ': this conflict is still open after ' || r.\"NumberOfDays\" || ' days.',\n       \
                {now}, {now}, {SYSTEM_USER}, {SYSTEM_USER}, 'System', 'System'\n\
         {due}\n  \
         AND NOT EXISTS (SELECT 1 FROM {comments} m WHERE m.\"CONFLICTID\" = k.\"CONFLICTID\" AND m.created_by = {SYSTEM_USER}\n    \
         AND m.created_at >= date_trunc('day', {now}))\n\
         ORDER BY k.\"CONFLICTID\", c.\"ID\""
    );
    Ok(vec![
        ("payer provider reminders", insert_sql),
        ("payer provider reminder names", refresh_sql),
        ("from payer notices", notice_sql),
        ("from payer comments", comment_sql),
    ])
}
