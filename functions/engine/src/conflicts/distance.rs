//! Rule 7, impossible travel (docs/conflicts.md §R7).
//!
//! Distance is the great-circle distance on a sphere of radius
//! [`EARTH_RADIUS_METRES`] (what Snowflake's `ST_DISTANCE` on geography
//! points computes), divided by **1609** (the legacy divisor, not 1609.344),
//! multiplied by `SETTINGS.ExtraDistancePer` and rounded to 2 decimals. The
//! speed comes from the MPH band containing that distance (half-open
//! `[From, To)`, docs/conflicts.md §D2); ETA = distance / speed × 60 minutes, rounded to
//! 2 decimals. The flag is set when a positive minute gap between the two
//! completed visits, in either direction, is shorter than the ETA.

use chrono::{NaiveDateTime, Timelike};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Mean Earth radius in metres (IUGG), the sphere Snowflake geography distances use.
pub const EARTH_RADIUS_METRES: f64 = 6_371_008.8;
/// Metres per mile as the legacy divides (sic: 1609, not 1609.344).
pub const LEGACY_METRES_PER_MILE: f64 = 1609.0;

/// A point in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    /// Latitude in degrees, −90..=90.
    pub latitude: f64,
    /// Longitude in degrees, −180..=180.
    pub longitude: f64,
}

impl GeoPoint {
    /// A point, or `None` unless both values are finite and in range.
    pub fn new(latitude: f64, longitude: f64) -> Option<GeoPoint> {
        let ok = latitude.is_finite() && longitude.is_finite() && latitude.abs() <= 90.0 && longitude.abs() <= 180.0;
        ok.then_some(GeoPoint { latitude, longitude })
    }
}

/// Parse a call GPS string `"lat,lon"` (docs/conflicts.md §D4).
///
/// Double quotes anywhere are stripped (the legacy's intended `REPLACE(…,'"')`),
/// surrounding whitespace is ignored. Returns `None` for `","`, empty text,
/// anything that is not two numbers, and out-of-range coordinates; the caller
/// then falls back to the next coordinate source.
pub fn parse_gps(text: &str) -> Option<GeoPoint> {
    let cleaned: String = text.chars().filter(|c| *c != '"').collect();
    let (lat, lon) = cleaned.trim().split_once(',')?;
    GeoPoint::new(lat.trim().parse().ok()?, lon.trim().parse().ok()?)
}

/// Great-circle distance in metres (haversine on [`EARTH_RADIUS_METRES`]).
pub fn great_circle_metres(a: GeoPoint, b: GeoPoint) -> f64 {
    let (p1, p2) = (a.latitude.to_radians(), b.latitude.to_radians());
    let dp = p2 - p1;
    let dl = (b.longitude - a.longitude).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_METRES * h.sqrt().min(1.0).asin()
}

/// Round half away from zero to 2 decimals (Snowflake `ROUND(x, 2)`).
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `DistanceMilesFromLatLng`: round(metres / 1609 × `extra_distance_per`, 2).
pub fn distance_miles(a: GeoPoint, b: GeoPoint, extra_distance_per: f64) -> f64 {
    round2(great_circle_metres(a, b) / LEGACY_METRES_PER_MILE * extra_distance_per)
}

/// One row of `conflict.mph`: distances in `[from, to)` miles are travelled at `mph`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MphBand {
    /// `"From"`, miles, inclusive.
    pub from: i64,
    /// `"To"`, miles, exclusive.
    pub to: i64,
    /// `"AverageMilesPerHour"`, > 0.
    pub mph: f64,
}

/// The validated speed table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MphBands {
    bands: Vec<MphBand>,
}

impl MphBands {
    /// Validate `bands` and sort them by `from`.
    ///
    /// Errors ([`crate::ErrorKind::ConfigInvalid`]): a band with a speed that is
    /// zero, negative or not a number (docs/conflicts.md §D7: no division by zero), or
    /// with `from >= to`. Overlapping bands and gaps between bands are not
    /// errors; they are returned as warnings (an overlap is resolved by the
    /// band with the lower `from`; a distance in a gap gets no speed, so no flag).
    pub fn new(mut bands: Vec<MphBand>) -> Result<(MphBands, Vec<String>)> {
        let mut problems = Vec::new();
        for b in &bands {
            if !(b.mph.is_finite() && b.mph > 0.0) {
                problems.push(format!("band [{}, {}) has speed {} mph; speeds must be above 0", b.from, b.to, b.mph));
            }
            if b.from >= b.to {
                problems.push(format!("band [{}, {}) is empty; \"From\" must be below \"To\"", b.from, b.to));
            }
        }
        if !problems.is_empty() {
            return Err(Error::config(format!(
                "conflict.mph is invalid: {}. Fix the rows on the application's MPH Formula page (or in conflict.mph).",
                problems.join("; ")
            )));
        }
        bands.sort_by_key(|b| (b.from, b.to));
        let mut warnings = Vec::new();
        for w in bands.windows(2) {
            let (a, b) = (w[0], w[1]);
            if b.from < a.to {
                warnings.push(format!(
                    "MPH bands [{}, {}) and [{}, {}) overlap; distances in [{}, {}) use {} mph",
                    a.from, a.to, b.from, b.to, b.from, a.to.min(b.to), a.mph
                ));
            } else if b.from > a.to {
                warnings.push(format!(
                    "MPH bands leave a gap [{}, {}); distances there get no speed and never flag rule 7",
                    a.to, b.from
                ));
            }
        }
        if bands.is_empty() {
            warnings.push("conflict.mph is empty; rule 7 (distance) can never flag".to_string());
        }
        Ok((MphBands { bands }, warnings))
    }

    /// The speed for `miles`: the first band (by `from`) with `from <= miles < to`.
    pub fn speed_for(&self, miles: f64) -> Option<f64> {
        self.bands.iter().find(|b| (b.from as f64) <= miles && miles < (b.to as f64)).map(|b| b.mph)
    }

    /// The longest ETA any band allows, in whole minutes rounded up: a gap at
    /// least this long can never be an impossible-travel conflict, which
    /// bounds how far the sweep looks ahead.
    pub fn max_eta_minutes(&self) -> i64 {
        self.bands.iter().map(|b| (b.to as f64 / b.mph * 60.0).ceil() as i64).max().unwrap_or(0)
    }

    /// The bands, sorted by `from`.
    pub fn bands(&self) -> &[MphBand] {
        &self.bands
    }
}

/// `DistanceMilesFromLatLng`, `AverageMilesPerHour`, `ETATravelMinutes` of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TravelEstimate {
    /// Scaled distance in miles, 2 decimals.
    pub miles: f64,
    /// Speed of the matching band (None: the distance is in no band).
    pub mph: Option<f64>,
    /// round(miles / mph × 60, 2) minutes (None without a speed).
    pub eta_minutes: Option<f64>,
}

/// Distance, speed and ETA between two points.
pub fn estimate(a: GeoPoint, b: GeoPoint, extra_distance_per: f64, bands: &MphBands) -> TravelEstimate {
    let miles = distance_miles(a, b, extra_distance_per);
    let mph = bands.speed_for(miles);
    TravelEstimate { miles, mph, eta_minutes: mph.map(|s| round2(miles / s * 60.0)) }
}

/// Snowflake `DATEDIFF(minute, from, to)`: minute boundaries crossed (both
/// values truncated to the minute), not elapsed seconds / 60.
pub fn minute_boundaries(from: NaiveDateTime, to: NaiveDateTime) -> i64 {
    (truncate_to_minute(to) - truncate_to_minute(from)).num_minutes()
}

fn truncate_to_minute(t: NaiveDateTime) -> NaiveDateTime {
    t.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(t)
}

/// The two gaps of completed visits `(start1, end1)` and `(start2, end2)`:
/// `g1` after visit 1 (end1 → start2) and `g2` after visit 2 (end2 → start1).
pub fn gaps(v1: (NaiveDateTime, NaiveDateTime), v2: (NaiveDateTime, NaiveDateTime)) -> (i64, i64) {
    (minute_boundaries(v1.1, v2.0), minute_boundaries(v2.1, v1.0))
}

/// Rule 7's time test (\[SF\] docs/conflicts.md §R7.4): a strictly positive gap in either
/// direction that is shorter than the ETA. Back-to-back (gap 0) and
/// overlapping (negative gaps) visits never flag.
pub fn travel_is_impossible(g1: i64, g2: i64, eta_minutes: f64) -> bool {
    (g1 > 0 && eta_minutes > g1 as f64) || (g2 > 0 && eta_minutes > g2 as f64)
}

/// `MinuteDiffBetweenSch` as [SF-UPD] computes it: the smaller gap when both
/// are positive, else the positive one, else 0.
pub fn minute_diff(g1: i64, g2: i64) -> i64 {
    match (g1 > 0, g2 > 0) {
        (true, true) => g1.min(g2),
        (true, false) => g1,
        (false, true) => g2,
        (false, false) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn legacy_bands() -> MphBands {
        // docs/conflicts.md §13.3 fixture, made half-open.
        let b = |from, to, mph| MphBand { from, to, mph };
        MphBands::new(vec![b(0, 2, 2.0), b(2, 5, 6.0), b(5, 10, 15.0), b(10, 25, 25.0)]).unwrap().0
    }
    fn brooklyn() -> (GeoPoint, GeoPoint) {
        (GeoPoint::new(40.597095, -73.998993).unwrap(), GeoPoint::new(40.654140, -73.935455).unwrap())
    }
    fn at(h: u32, m: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2025, 3, 10).unwrap().and_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn worked_example_6_5_distance_speed_and_eta() {
        let (a, b) = brooklyn();
        let raw = great_circle_metres(a, b);
        assert!((raw - 8306.0).abs() < 5.0, "raw distance {raw}");
        let e = estimate(a, b, 1.0, &legacy_bands());
        assert_eq!(e, TravelEstimate { miles: 5.16, mph: Some(15.0), eta_minutes: Some(20.64) });
        let e = estimate(a, b, 1.2, &legacy_bands());
        assert_eq!(e, TravelEstimate { miles: 6.19, mph: Some(15.0), eta_minutes: Some(24.76) });
    }

    #[test]
    fn worked_example_6_5_gaps_15_25_and_0() {
        let eta = 20.64;
        let v1 = (at(9, 0), at(10, 0));
        let (g1, g2) = gaps(v1, (at(10, 15), at(11, 0)));
        assert_eq!(g1, 15);
        assert!(travel_is_impossible(g1, g2, eta));
        let (g1, g2) = gaps(v1, (at(10, 25), at(11, 0)));
        assert_eq!(g1, 25);
        assert!(!travel_is_impossible(g1, g2, eta));
        let (g1, g2) = gaps(v1, (at(10, 0), at(11, 0)));
        assert_eq!(g1, 0);
        assert!(!travel_is_impossible(g1, g2, eta));
        // Reverse orientation: the gap is g2.
        let (g1, g2) = gaps((at(10, 15), at(11, 0)), v1);
        assert_eq!(g2, 15);
        assert!(travel_is_impossible(g1, g2, eta));
        // ExtraDistancePer 1.2: ETA 24.76, gap 20 flags, gap 25 does not.
        assert!(travel_is_impossible(20, -100, 24.76));
        assert!(!travel_is_impossible(25, -100, 24.76));
    }

    #[test]
    fn minute_gaps_count_boundaries_not_elapsed_seconds() {
        let d = NaiveDate::from_ymd_opt(2025, 3, 10).unwrap();
        let end = d.and_hms_opt(10, 0, 59).unwrap();
        let start = d.and_hms_opt(10, 1, 0).unwrap();
        assert_eq!(minute_boundaries(end, start), 1); // 1 second elapsed, one boundary
        assert_eq!(minute_boundaries(d.and_hms_opt(10, 0, 0).unwrap(), d.and_hms_opt(10, 0, 59).unwrap()), 0);
    }

    #[test]
    fn mph_bands_are_half_open() {
        let bands = legacy_bands();
        assert_eq!(bands.speed_for(4.99), Some(6.0));
        assert_eq!(bands.speed_for(5.0), Some(15.0));
        assert_eq!(bands.speed_for(0.0), Some(2.0));
        assert_eq!(bands.speed_for(25.0), None);
        assert_eq!(bands.max_eta_minutes(), 60); // max(2/2, 5/6, 10/15, 25/25) hours
    }

    #[test]
    fn a_zero_speed_band_is_a_config_error() {
        let err = MphBands::new(vec![MphBand { from: 0, to: 5, mph: 0.0 }]).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::ConfigInvalid);
        assert!(err.message.contains("speed 0 mph"), "{}", err.message);
        let err = MphBands::new(vec![MphBand { from: 5, to: 5, mph: 10.0 }]).unwrap_err();
        assert!(err.message.contains("\"From\" must be below \"To\""), "{}", err.message);
    }

    #[test]
    fn gaps_and_overlaps_between_bands_are_reported_and_gaps_give_no_speed() {
        let b = |from, to, mph| MphBand { from, to, mph };
        let (bands, warnings) = MphBands::new(vec![b(6, 10, 15.0), b(0, 5, 6.0), b(9, 20, 25.0)]).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("gap [5, 6)"), "{warnings:?}");
        assert!(warnings[1].contains("overlap"), "{warnings:?}");
        assert_eq!(bands.speed_for(5.16), None);
        assert_eq!(bands.speed_for(9.5), Some(15.0));
    }

    #[test]
    fn gps_strings_parse_with_quotes_and_reject_the_empty_comma() {
        let p = parse_gps("\"40.597095,-73.998993\"").unwrap();
        assert_eq!((p.latitude, p.longitude), (40.597095, -73.998993));
        assert_eq!(parse_gps(" 40.5 , -73.9 "), GeoPoint::new(40.5, -73.9));
        assert_eq!(parse_gps("\"40.5\",\"-73.9\""), GeoPoint::new(40.5, -73.9));
        assert_eq!(parse_gps(","), None);
        assert_eq!(parse_gps(""), None);
        assert_eq!(parse_gps("40.5"), None);
        assert_eq!(parse_gps("abc,def"), None);
        assert_eq!(parse_gps("140.5,-73.9"), None);
    }

    #[test]
    fn minute_diff_prefers_the_smaller_positive_gap() {
        assert_eq!(minute_diff(15, 30), 15);
        assert_eq!(minute_diff(-90, 30), 30);
        assert_eq!(minute_diff(-10, -20), 0);
    }
}
