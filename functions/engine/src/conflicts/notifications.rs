//! Notifications of the nightly run (docs/conflicts.md §9.1): a
//! `New Conflict` notice for every conflict recorded today and a `Resolved`
//! notice for every conflict resolved today whose pairs are all closed, each
//! addressed to the conflict's provider (the primary visit's agency: both
//! orientations of a pair are stored, so each agency hears of its own
//! conflict, docs/conflicts.md §D14).
//!
//! Idempotent: a rerun of the same night (or a second run the same day) adds
//! nothing that is already there — one `New Conflict` per conflict and
//! provider ever, one `Resolved` per conflict, provider and day. The
//! application owns the read state (`ReadUnreadFlag`); the nightly job never
//! writes it, a new notice is unread by the column default.

use super::store::{written_columns, StatementContext, Table};
use crate::error::Result;
use crate::sink::qualified;

/// `NotificationType` of a conflict recorded today.
pub const NEW_CONFLICT: &str = "New Conflict";

/// `NotificationType` of a conflict resolved (or deleted) today.
pub const RESOLVED: &str = "Resolved";

/// Columns of `notifications` the nightly job writes (its allow-list; never
/// `ReadUnreadFlag`).
pub const WRITTEN_COLUMNS: &[&str] = &[
    "CONFLICTID",
    "ProviderID",
    "AppProviderID",
    "NotificationType",
    "CreatedDate",
    "CreatedDateTime",
    "Contract",
];

/// The notification statements, in execution order, with a name each (no
/// parameters). "Today" is the current date on the wall clock of
/// `conflicts.time_zone`, like every timestamp the run writes.
///
/// `New Conflict`: conflicts whose `RECORDEDDATETIME` is today and that have
/// no `New Conflict` notice for their provider yet. `Resolved`: conflicts in
/// `R` or `D` whose `ResolveDate` is today, all of whose pairs are `R` or
/// `D`, without a `Resolved` notice for their provider dated today. Both
/// carry the conflict's provider ids and `Contract` (the payer name of the
/// primary visit), taken from its oldest pair row; the notice already
/// written is looked up for that provider, so a rerun adds nothing even
/// when the conflict's pair rows name different providers (a pair closed
/// before its visit moved to another agency keeps the old one in its
/// snapshot; the lookup used to try every pair's provider, and a rerun of
/// the same night wrote a second notice for the newer one).
///
/// Errors: [`crate::error::ErrorKind::Internal`] when a statement would
/// write a column outside the allow-list (a bug in thaw).
pub fn statements(ctx: &StatementContext) -> Result<Vec<(&'static str, String)>> {
    let cvm = qualified(&ctx.schemas.conflict, "conflictvisitmaps");
    let conflicts = qualified(&ctx.schemas.conflict, "conflicts");
    let notifications = qualified(&ctx.schemas.conflict, "notifications");
    let now = format!("(now() AT TIME ZONE {})", ctx.zone_literal);
    let cols = written_columns(Table::Notifications, WRITTEN_COLUMNS.iter().copied())?.join(", ");
    let notify = |kind: &str, condition: &str, same_day: bool| {
        format!(
            "INSERT INTO {notifications} ({cols})\n\
             SELECT x.* FROM (\n  \
               SELECT DISTINCT ON (k.\"CONFLICTID\") k.\"CONFLICTID\", c.\"ProviderID\", c.\"AppProviderID\", '{kind}', {now}::date, {now}, c.\"Contract\"\n  \
               FROM {conflicts} k JOIN {cvm} c ON c.\"CONFLICTID\" = k.\"CONFLICTID\"\n  \
               WHERE {condition}\n  \
               ORDER BY k.\"CONFLICTID\", c.\"ID\") x\n\
             WHERE NOT EXISTS (SELECT 1 FROM {notifications} n WHERE n.\"CONFLICTID\" = x.\"CONFLICTID\" AND n.\"NotificationType\" = '{kind}'\n  \
               AND n.\"ProviderID\" IS NOT DISTINCT FROM x.\"ProviderID\"{day})",
            day = if same_day { format!(" AND n.\"CreatedDate\" = {now}::date") } else { String::new() },
        )
    };
    let new_sql = notify(
        NEW_CONFLICT,
        &format!("k.\"RECORDEDDATETIME\" >= date_trunc('day', {now})"),
        false,
    );
    let resolved_sql = notify(
        RESOLVED,
        &format!(
            "k.\"StatusFlag\" IN ('R', 'D') AND k.\"ResolveDate\" >= date_trunc('day', {now})\n  \
             AND NOT EXISTS (SELECT 1 FROM {cvm} o WHERE o.\"CONFLICTID\" = k.\"CONFLICTID\" AND (o.\"StatusFlag\" IS NULL OR o.\"StatusFlag\" NOT IN ('R', 'D')))"
        ),
        true,
    );
    Ok(vec![
        ("notify new conflicts", new_sql),
        ("notify resolved conflicts", resolved_sql),
    ])
}
