//! Conflict detection (being written).
