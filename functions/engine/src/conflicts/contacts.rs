//! Agency contacts of the stored pairs from `contact_maintenance`
//! (docs/conflicts.md §6.6, \[SF\] TASK_07).
//!
//! `contact_maintenance` holds, per agency (`ProviderID`, the agency that
//! keeps the entry), a contact name and phone for another agency (`PID`,
//! that agency's provider id as text). A pair shows its primary agency
//! (`ProviderID`) the contact of the conflicting agency: `ConAgencyContact`
//! / `ConAgencyPhone` come from the entry kept by `ProviderID` for
//! `ConProviderID`, and `AgencyContact` / `AgencyPhone` from the entry kept
//! by `ConProviderID` for `ProviderID` (docs/conflicts.md §D15). As in \[SF\],
//! a value is filled only where the pair's column is NULL or empty, so
//! nothing a user or an earlier night wrote is replaced; when an agency keeps
//! several entries for the same agency, the one updated last wins.

use super::store::{written_columns, StatementContext, Table};
use crate::error::Result;
use crate::sink::qualified;

/// The two contact statements (primary side, conflicting side), no parameters.
///
/// Errors: [`crate::error::ErrorKind::Internal`] when a statement would
/// write a column outside the allow-list (a bug in thaw).
pub fn statements(ctx: &StatementContext) -> Result<Vec<(&'static str, String)>> {
    let cvm = qualified(&ctx.schemas.conflict, "conflictvisitmaps");
    let contacts = qualified(&ctx.schemas.conflict, "contact_maintenance");
    let latest = format!(
        "(SELECT DISTINCT ON (m.\"ProviderID\", lower(btrim(m.\"PID\"))) m.\"ProviderID\", lower(btrim(m.\"PID\")) AS pid, \
         nullif(m.\"CONTACT_NAME\", '') AS name, nullif(m.\"PHONE\", '') AS phone\n   \
         FROM {contacts} m WHERE m.\"ProviderID\" IS NOT NULL AND m.\"PID\" IS NOT NULL\n   \
         ORDER BY m.\"ProviderID\", lower(btrim(m.\"PID\")), m.\"UPDATED_AT\" DESC NULLS LAST, m.\"ID\" DESC)"
    );
    let fill = |contact: &str, phone: &str, keeper: &str, other: &str| -> Result<String> {
        let cols = written_columns(Table::ConflictVisitMaps, [contact, phone])?;
        let (qc, qp) = (&cols[0], &cols[1]);
        Ok(format!(
            "UPDATE {cvm} c SET {qc} = CASE WHEN coalesce(c.{qc}, '') = '' THEN coalesce(m.name, c.{qc}) ELSE c.{qc} END,\n    \
             {qp} = CASE WHEN coalesce(c.{qp}, '') = '' THEN coalesce(m.phone, c.{qp}) ELSE c.{qp} END\n\
             FROM {latest} m\n\
             WHERE m.\"ProviderID\" = c.\"{keeper}\" AND m.pid = c.\"{other}\"::text\n  \
             AND ((coalesce(c.{qc}, '') = '' AND m.name IS NOT NULL) OR (coalesce(c.{qp}, '') = '' AND m.phone IS NOT NULL))"
        ))
    };
    Ok(vec![
        (
            "agency contacts",
            fill(
                "AgencyContact",
                "AgencyPhone",
                "ConProviderID",
                "ProviderID",
            )?,
        ),
        (
            "conflicting agency contacts",
            fill(
                "ConAgencyContact",
                "ConAgencyPhone",
                "ProviderID",
                "ConProviderID",
            )?,
        ),
    ])
}
