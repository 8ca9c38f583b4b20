//! Agency contacts of stored pairs (docs/conflicts.md §6.6, §D15) against a
//! real PostgreSQL through `thaw_engine::conflicts::run`: a pair rewritten
//! with another agency shows that agency's contact, not the one filled for
//! the agency it had before.
//!
//! Run under tests/harness.py (`make test`), which exports THAW_PG_*.

use thaw_engine::conflicts::{run, DetectionMode};
// Providers A, B (active), C (inactive here, activated below); caregivers ca (A), cb (B), cc (C) with one SSN.
use thaw_test_support::conflicts::{database_with, planted_settings, REFERENCE};
use tokio_postgres::Client;

/// (AppVisitID>ConAppVisitID, AgencyContact, ConAgencyContact) of every stored row.
async fn contacts(client: &Client) -> Vec<(String, Option<String>, Option<String>)> {
    client
        .query(
            r#"SELECT "AppVisitID" || '>' || "ConAppVisitID", "AgencyContact", "ConAgencyContact" FROM conflict.conflictvisitmaps ORDER BY 1"#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Found by tests/conflict_detection_model.py (docs/conflicts.md §13.7): a
/// visit of a stored pair moves from agency B to agency C. The rewritten
/// pair shows agencies A and C, so its contacts are those A and C keep for
/// each other (none for C at A's side here); thaw used to keep the contacts
/// filled for A and B, because a filled contact was never replaced.
#[tokio::test]
async fn a_pair_rewritten_with_another_agency_shows_that_agencys_contacts() {
    let mut client = database_with("cf_contacts_moved", REFERENCE).await;
    let (a, b, c) = ("00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b", "00000000-0000-0000-0000-00000000000c");
    client
        .batch_execute(&format!(
            "UPDATE analytics.dimprovider SET \"Is Active\" = true;
             INSERT INTO conflict.contact_maintenance (\"ProviderID\", \"PID\", \"CONTACT_NAME\", \"PHONE\") VALUES
               ('{b}', '{a}', 'B about A', '555-0201'), ('{c}', '{a}', 'C about A', '555-0301'), ('{a}', '{b}', 'A about B', '555-0102');
             INSERT INTO analytics.factvisitcallperformance_cr (\"Visit Id\", \"Application Visit Id\", \"Visit Date\", \"Caregiver Id\", \"Provider Id\",
                 \"Scheduled Start Time\", \"Scheduled End Time\", \"Is Missed\", \"Visit Updated Timestamp\") VALUES
               ('00000000-0000-0000-0000-000000000001', 1, '2025-03-12', '00000000-0000-0000-0000-0000000000ca', '{a}', '2025-03-12 09:00-04', '2025-03-12 13:00-04', false, now()),
               ('00000000-0000-0000-0000-000000000002', 2, '2025-03-12', '00000000-0000-0000-0000-0000000000cb', '{b}', '2025-03-12 09:00-04', '2025-03-12 13:00-04', false, now());"
        ))
        .await
        .unwrap();
    run(&mut client, &planted_settings(), DetectionMode::Full).await.unwrap();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        contacts(&client).await,
        [("1>2".into(), some("B about A"), some("A about B")), ("2>1".into(), some("A about B"), some("B about A"))]
    );
    client
        .batch_execute(&format!(
            "UPDATE analytics.factvisitcallperformance_cr SET \"Provider Id\" = '{c}', \"Caregiver Id\" = '00000000-0000-0000-0000-0000000000cc',
                 \"Visit Updated Timestamp\" = now() WHERE \"Application Visit Id\" = 2"
        ))
        .await
        .unwrap();
    for mode in [DetectionMode::Incremental, DetectionMode::Full] {
        run(&mut client, &planted_settings(), mode).await.unwrap();
        assert_eq!(
            contacts(&client).await,
            [("1>2".into(), some("C about A"), None), ("2>1".into(), None, some("C about A"))],
            "{mode:?}"
        );
    }
}
