//! Canonical forms for checksums (being written).
