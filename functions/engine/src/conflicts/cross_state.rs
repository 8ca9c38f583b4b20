//! Cross-state exclusion (docs/conflicts.md §D6; docs/conflicts.md §4.5).
//!
//! A caregiver may legitimately work in two states on the same day (e.g. New
//! York and Pennsylvania), so a pair whose two visits are in different
//! states is not a conflict. The rule is the one of the legacy
//! `SP_CLEANUP_CROSS_STATE_CONFLICTS` (any-to-any, four name mappings), not
//! the stricter one-to-one Scripts10 "V5_CORRECTED" variant ([DIFF 12]):
//!
//! 1. per visit, normalise the provider-patient state (`P_PAddressState`) and
//!    the payer-patient state (`PA_PAddressState`) with [`normalize_state`];
//! 2. if *both* are missing, the visit's provider `Address State`
//!    (normalised the same way) stands for both;
//! 3. a pair is kept when either visit has no state at all, or when **any**
//!    of the 2×2 combinations of the two visits' states match; otherwise it
//!    is cross-state ([`is_cross_state`]).
//!
//! Where \[SF\] inserts such pairs and then hard-deletes them, thaw never emits
//! them (the sweep drops them), so they are neither inserted nor refreshed;
//! a stored pair that has become cross-state is not re-detected and is
//! resolved (`StatusFlag` 'R', never deleted) by the store's resolve step.

use std::borrow::Cow;

/// Full state names the legacy maps to their codes (after upper-casing).
pub const STATE_NAME_CODES: [(&str, &str); 4] =
    [("MISSISSIPPI", "MS"), ("NEW YORK", "NY"), ("PENNSYLVANIA", "PA"), ("LONG ISLAND", "LI")];

/// Normalise one stored state value: Snowflake `UPPER(TRIM(value))` (TRIM
/// with no argument removes blank spaces only), an empty result is `None`,
/// and the full names of [`STATE_NAME_CODES`] become their codes.
///
/// `" new york "` → `Some("NY")`, `"pa"` → `Some("PA")`, `"  "` → `None`.
/// Any other value is kept as upper-cased text (e.g. `"NJ"`, `"OHIO"`).
pub fn normalize_state(raw: Option<&str>) -> Option<Cow<'_, str>> {
    let trimmed = raw?.trim_matches(' ');
    if trimmed.is_empty() {
        return None;
    }
    let upper: Cow<'_, str> =
        if trimmed.chars().any(char::is_lowercase) { Cow::Owned(trimmed.to_uppercase()) } else { Cow::Borrowed(trimmed) };
    match STATE_NAME_CODES.iter().find(|(name, _)| *name == upper) {
        Some((_, code)) => Some(Cow::Borrowed(code)),
        None => Some(upper),
    }
}

/// The states one visit brings to the cross-state test: up to two
/// normalised codes (provider patient, payer patient), or the provider's
/// state in both places when the visit has no patient state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisitStates<'a>([Option<Cow<'a, str>>; 2]);

impl<'a> VisitStates<'a> {
    /// The states of a visit from its raw stored values: the provider
    /// patient's primary GPS address `Address State`, the payer patient's,
    /// and the provider's (`DIMPROVIDER."Address State"`, used only when
    /// both patient states are missing after normalisation).
    pub fn of(
        provider_patient_state: Option<&'a str>,
        payer_patient_state: Option<&'a str>,
        provider_state: Option<&'a str>,
    ) -> VisitStates<'a> {
        let patient = [normalize_state(provider_patient_state), normalize_state(payer_patient_state)];
        if patient.iter().any(Option::is_some) {
            VisitStates(patient)
        } else {
            let provider = normalize_state(provider_state);
            VisitStates([provider.clone(), provider])
        }
    }

    /// Whether the visit has no state at all (such a visit is never cross-state).
    pub fn is_unknown(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    /// The known states (zero to two, possibly equal).
    pub fn known(&self) -> impl Iterator<Item = &str> {
        self.0.iter().flatten().map(|s| s.as_ref())
    }
}

/// Whether the pair of visits with states `a` and `b` is cross-state, i.e.
/// not a conflict: both visits have a state and no state of one equals a
/// state of the other. Symmetric in `a` and `b`.
pub fn is_cross_state(a: &VisitStates<'_>, b: &VisitStates<'_>) -> bool {
    if a.is_unknown() || b.is_unknown() {
        return false;
    }
    !a.known().any(|x| b.known().any(|y| x == y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states<'a>(provider_patient: Option<&'a str>, payer_patient: Option<&'a str>, provider: Option<&'a str>) -> VisitStates<'a> {
        VisitStates::of(provider_patient, payer_patient, provider)
    }

    #[test]
    fn normalisation_trims_blanks_upper_cases_and_maps_the_four_full_names() {
        let n = |raw| normalize_state(raw).map(Cow::into_owned);
        assert_eq!(n(Some(" ny ")), Some("NY".to_string()));
        assert_eq!(n(Some("pa")), Some("PA".to_string()));
        assert_eq!(n(Some("New York")), Some("NY".to_string()));
        assert_eq!(n(Some(" pennsylvania")), Some("PA".to_string()));
        assert_eq!(n(Some("Mississippi ")), Some("MS".to_string()));
        assert_eq!(n(Some("long island")), Some("LI".to_string()));
        assert_eq!(n(Some("New Jersey")), Some("NEW JERSEY".to_string()), "only the four legacy names are mapped");
        assert_eq!(n(Some("   ")), None);
        assert_eq!(n(Some("")), None);
        assert_eq!(n(None), None);
        // Snowflake TRIM without characters removes blanks only.
        assert_eq!(n(Some("\tNY")), Some("\tNY".to_string()));
    }

    #[test]
    fn same_state_pairs_are_kept_and_different_states_are_cross_state() {
        let ny = states(Some("NY"), Some("NY"), Some("NY"));
        let pa = states(Some("PA"), Some("PA"), Some("PA"));
        assert!(!is_cross_state(&ny, &ny));
        assert!(is_cross_state(&ny, &pa));
        assert!(is_cross_state(&pa, &ny));
    }

    #[test]
    fn any_of_the_four_state_combinations_matching_keeps_the_pair() {
        // docs/conflicts.md §13.4 (legacy case 20): NY/NULL vs "new york"/PA is kept.
        let a = states(Some("NY"), None, Some("NJ"));
        let b = states(Some("new york"), Some("PA"), Some("PA"));
        assert!(!is_cross_state(&a, &b));
        // Provider patient of one side against payer patient of the other.
        let a = states(Some("NJ"), Some("Pennsylvania "), None);
        let b = states(Some("pa"), Some("NY"), None);
        assert!(!is_cross_state(&a, &b));
        // No combination matches.
        let a = states(Some("NJ"), Some("CT"), None);
        let b = states(Some("NY"), Some("PA"), None);
        assert!(is_cross_state(&a, &b));
    }

    #[test]
    fn provider_state_stands_in_only_when_both_patient_states_are_missing() {
        // Both patient states blank: the provider's state is used (upper/trim, mapped).
        let fallback = states(Some("  "), None, Some(" pennsylvania "));
        assert_eq!(fallback.known().collect::<Vec<_>>(), vec!["PA", "PA"]);
        assert!(is_cross_state(&fallback, &states(Some("NY"), None, Some("NY"))));
        assert!(!is_cross_state(&fallback, &states(Some("PA"), None, Some("NY"))));
        // One patient state present: the provider's state is ignored.
        let patient = states(None, Some("NY"), Some("PA"));
        assert_eq!(patient.known().collect::<Vec<_>>(), vec!["NY"]);
        assert!(is_cross_state(&patient, &states(Some("PA"), None, None)));
    }

    #[test]
    fn a_visit_without_any_state_never_makes_a_pair_cross_state() {
        let nowhere = states(None, Some(" "), None);
        assert!(nowhere.is_unknown());
        assert!(!is_cross_state(&nowhere, &states(Some("PA"), Some("PA"), Some("PA"))));
        assert!(!is_cross_state(&states(Some("NY"), None, None), &nowhere));
        assert!(!is_cross_state(&nowhere, &nowhere));
    }
}
