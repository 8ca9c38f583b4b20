//! CloudWatch metrics as Embedded Metric Format (EMF) lines on stdout: the
//! Lambda log pipeline turns them into metrics, no SDK call needed.
//! Namespace from `THAW_METRICS_NAMESPACE` (default `Thaw`), dimension
//! `Environment` from `THAW_ENV` (default `local`).

use serde_json::json;

/// The EMF line for one metric value (unit `None`), as printed by [`emit`].
pub fn emf_line(name: &str, value: f64, timestamp_ms: i64) -> String {
    let namespace = std::env::var("THAW_METRICS_NAMESPACE").unwrap_or_else(|_| "Thaw".into());
    let environment = std::env::var("THAW_ENV").unwrap_or_else(|_| "local".into());
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["Environment"]],
                "Metrics": [{"Name": name, "Unit": "None"}],
            }],
        },
        "Environment": environment,
        name: value,
    })
    .to_string()
}

/// Print one metric value as an EMF line.
pub fn emit(name: &str, value: f64) {
    println!("{}", emf_line(name, value, chrono_now_ms()));
}

/// `HoursSinceLastVerifiedSync` (freshness alarm, runbook
/// `ops/runbooks/data-freshness.md`): `0` right after a reconcile that matched.
pub fn emit_verified_sync(hours_since: f64) {
    emit("HoursSinceLastVerifiedSync", hours_since);
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_line_declares_the_metric_with_the_environment_dimension() {
        let line: serde_json::Value = serde_json::from_str(&emf_line("HoursSinceLastVerifiedSync", 0.0, 1_700_000_000_000)).unwrap();
        let declared = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(declared["Dimensions"], json!([["Environment"]]));
        assert_eq!(declared["Metrics"][0]["Name"], "HoursSinceLastVerifiedSync");
        assert_eq!(line["HoursSinceLastVerifiedSync"], 0.0);
        assert!(line["Environment"].is_string());
    }
}
