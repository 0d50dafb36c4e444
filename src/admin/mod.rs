//! Admin endpoints (being written).
