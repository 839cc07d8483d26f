//! Prometheus's configuration file: YAML text → validated [`Config`].
//!
//! Follows Prometheus 2.42's `config/config.go`: the same defaults (filled in
//! here, so users of [`Config`] never see a missing value), the same
//! validation and the same error wording, including yaml.v2's
//! `line N: field X not found in type T` for unknown fields. Relabeling rules
//! and the duration format live in submodules because scraping, PromQL and
//! the HTTP API reuse them. This module reads the file but knows nothing of
//! discovery, scraping or storage.

mod duration;
mod env_expand;
pub(crate) mod glob;
pub mod http_client;
mod load;
mod marshal;
mod raw;
mod relabel;
mod remote_write;
mod sections;
mod types;
pub mod unimplemented;
mod units;
mod validate;

pub use duration::{format_duration, parse_duration};
pub use http_client::{HttpClientConfig, TlsConfig, TlsVersion, UNSUPPORTED_OAUTH2};
pub(crate) use load::io_reason;
/// A config from text, for the tests (the binary reads files: [`load_file`]).
#[cfg(test)]
pub use load::{Error, parse};
pub use load::{check, load_file};
pub use relabel::{
    Action, DEFAULT_REGEX, DEFAULT_REPLACEMENT, DEFAULT_SEPARATOR, Regexp, RelabelConfig,
    RelabelError, is_valid_label_name, process, process_cow,
};
pub use remote_write::{MetadataConfig, QueueConfig};
pub use types::{
    Config, DEFAULT_EVALUATION_INTERVAL, DEFAULT_FILE_SD_REFRESH, DEFAULT_HTTP_SD_REFRESH,
    DEFAULT_REMOTE_TIMEOUT, DEFAULT_SCRAPE_INTERVAL, DEFAULT_SCRAPE_TIMEOUT, FileSdConfig,
    GlobalConfig, HttpSdConfig, RemoteWriteConfig, ScrapeConfig, StaticConfig,
};
pub use units::{format_size, parse_size};

#[cfg(test)]
mod tests;
