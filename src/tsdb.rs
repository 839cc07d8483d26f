//! Placeholder until the head lands: an in-memory store for wiring `serve`.
