//! Nemeses.
