//! The one integration-test binary: every module's end-to-end tests live here.
mod promql_parser;
