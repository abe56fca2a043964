//! Sigma detection engine.
