//! The `raymon` binary: parses flags and hands over to [`raymon::launcher`].

fn main() {}
