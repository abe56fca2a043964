//! Sigma correlation engine.
