//! `--web.config.file` in the Prometheus exporter-toolkit format:
//! `basic_auth_users` (bcrypt hashes), `tls_server_config` (served with
//! rustls) and `http_server_config.headers`.
//!
//! Owns parsing, the TLS server configuration and password checks. Knows
//! nothing of routes; `web::server` puts the checks in front of them.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use axum::http::{HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse web config: {0}")]
    Parse(String),
    #[error("missing cert_file")]
    MissingCert,
    #[error("missing key_file")]
    MissingKey,
    #[error("cannot load {}: {message}", path.display())]
    Pem { path: PathBuf, message: String },
    #[error("invalid client_auth_type: {0}")]
    ClientAuthType(String),
    #[error("client CA file given but client_auth_type does not verify certificates")]
    ClientCaUnused,
    #[error("unsupported TLS version {0}: rustls speaks TLS12 and TLS13")]
    TlsVersion(String),
    #[error("tls: {0}")]
    Tls(String),
    #[error("invalid header {name}: {message}")]
    Header { name: String, message: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    #[serde(default)]
    cert_file: String,
    #[serde(default)]
    key_file: String,
    #[serde(default)]
    client_auth_type: String,
    #[serde(default)]
    client_ca_file: String,
    #[serde(default)]
    min_version: String,
    #[serde(default)]
    max_version: String,
    // Accepted for compatibility; rustls picks its own safe suites and curves.
    #[allow(dead_code)]
    #[serde(default)]
    cipher_suites: Option<Vec<String>>,
    #[allow(dead_code)]
    #[serde(default)]
    curve_preferences: Option<Vec<String>>,
    #[allow(dead_code)]
    #[serde(default)]
    prefer_server_cipher_suites: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    // Accepted for compatibility; only HTTP/1.1 is served.
    #[allow(dead_code)]
    #[serde(default)]
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// A parsed web config, ready to serve with.
#[derive(Clone, Default)]
pub struct WebConfig {
    /// `None` serves plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `None` when no `basic_auth_users` are configured.
    pub users: Option<Arc<Users>>,
    /// Added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.as_ref().map(|u| u.hashes.len()))
            .field("headers", &self.headers)
            .finish()
    }
}

impl WebConfig {
    /// Reads `path`; relative certificate paths are relative to its folder.
    pub fn load(path: &Path) -> Result<WebConfig, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        WebConfig::parse(&text, path.parent().unwrap_or(Path::new(".")))
    }

    /// Parses YAML text, resolving relative paths against `dir`.
    pub fn parse(yaml: &str, dir: &Path) -> Result<WebConfig, Error> {
        let raw: Raw = if yaml.trim().is_empty() {
            Raw::default()
        } else {
            serde_norway::from_str(yaml).map_err(|e| Error::Parse(e.to_string()))?
        };
        let tls = match raw.tls_server_config {
            Some(t) if !(t.cert_file.is_empty() && t.key_file.is_empty()) => {
                Some(Arc::new(tls_config(&t, dir)?))
            }
            _ => None,
        };
        let users = raw
            .basic_auth_users
            .filter(|u| !u.is_empty())
            .map(|hashes| Arc::new(Users::new(hashes)));
        let mut headers = Vec::new();
        for (name, value) in raw
            .http_server_config
            .map(|h| h.headers)
            .unwrap_or_default()
        {
            let bad = |message: String| Error::Header {
                name: name.clone(),
                message,
            };
            let n = HeaderName::try_from(name.as_str()).map_err(|e| bad(e.to_string()))?;
            let v = HeaderValue::try_from(value.as_str()).map_err(|e| bad(e.to_string()))?;
            headers.push((n, v));
        }
        Ok(WebConfig {
            tls,
            users,
            headers,
        })
    }
}

/// A web config that follows its file: Prometheus reads the file on every
/// request, so new passwords and certificates apply without a restart. Here
/// the file is re-read when its modification time changes; a file that no
/// longer parses is logged and the last good config kept.
pub struct Watched {
    path: Option<PathBuf>,
    current: RwLock<(Option<SystemTime>, Arc<WebConfig>)>,
}

impl Watched {
    /// A config that never changes.
    pub fn fixed(cfg: WebConfig) -> Watched {
        Watched {
            path: None,
            current: RwLock::new((None, Arc::new(cfg))),
        }
    }

    /// Follows `path`, starting from `initial` (loaded from it).
    pub fn follow(path: PathBuf, initial: WebConfig) -> Watched {
        let mtime = modified(&path);
        Watched {
            path: Some(path),
            current: RwLock::new((mtime, Arc::new(initial))),
        }
    }

    /// The config to use now.
    pub fn get(&self) -> Arc<WebConfig> {
        let (seen, cfg) = match self.current.read() {
            Ok(g) => (g.0, g.1.clone()),
            Err(e) => (e.get_ref().0, e.get_ref().1.clone()),
        };
        let Some(path) = &self.path else {
            return cfg;
        };
        let now = modified(path);
        if now == seen {
            return cfg;
        }
        let next = match WebConfig::load(path) {
            Ok(c) => {
                tracing::info!(file = %path.display(), "web config reloaded");
                Arc::new(c)
            }
            Err(e) => {
                tracing::error!(error = %e, "web config changed but cannot be used; keeping the last one");
                cfg
            }
        };
        let mut g = self.current.write().unwrap_or_else(|e| e.into_inner());
        *g = (now, next.clone());
        next
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn resolve(dir: &Path, file: &str) -> PathBuf {
    let p = Path::new(file);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

fn versions(min: &str, max: &str) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, Error> {
    let rank = |v: &str, default: u8| match v {
        "" => Ok(default),
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        other => Err(Error::TlsVersion(other.to_string())),
    };
    // The exporter toolkit's default minimum is TLS 1.2.
    let (lo, hi) = (rank(min, 12)?, rank(max, 13)?);
    let mut out = Vec::new();
    if lo <= 12 && 12 <= hi {
        out.push(&rustls::version::TLS12);
    }
    if lo <= 13 && 13 <= hi {
        out.push(&rustls::version::TLS13);
    }
    if out.is_empty() {
        return Err(Error::Tls("min_version is above max_version".to_string()));
    }
    Ok(out)
}

fn tls_config(t: &RawTls, dir: &Path) -> Result<rustls::ServerConfig, Error> {
    if t.cert_file.is_empty() {
        return Err(Error::MissingCert);
    }
    if t.key_file.is_empty() {
        return Err(Error::MissingKey);
    }
    let pem_err = |path: &Path, e: rustls::pki_types::pem::Error| Error::Pem {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let cert_path = resolve(dir, &t.cert_file);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| pem_err(&cert_path, e))?;
    if certs.is_empty() {
        return Err(Error::Pem {
            path: cert_path,
            message: "no certificate found".to_string(),
        });
    }
    let key_path = resolve(dir, &t.key_file);
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| pem_err(&key_path, e))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(&t.min_version, &t.max_version)?)
        .map_err(|e| Error::Tls(e.to_string()))?;
    let verify = match t.client_auth_type.as_str() {
        "" | "NoClientCert" => None,
        "RequireAndVerifyClientCert" => Some(false),
        "VerifyClientCertIfGiven" => Some(true),
        other => return Err(Error::ClientAuthType(other.to_string())),
    };
    let builder = match verify {
        None if !t.client_ca_file.is_empty() => return Err(Error::ClientCaUnused),
        None => builder.with_no_client_auth(),
        Some(optional) => {
            let ca_path = resolve(dir, &t.client_ca_file);
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(&ca_path).map_err(|e| pem_err(&ca_path, e))? {
                roots
                    .add(c.map_err(|e| pem_err(&ca_path, e))?)
                    .map_err(|e| Error::Tls(e.to_string()))?;
            }
            let mut v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            if optional {
                v = v.allow_unauthenticated();
            }
            let v = v.build().map_err(|e| Error::Tls(e.to_string()))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// `basic_auth_users` and a cache of recent successful checks, since each
/// bcrypt comparison costs tens of milliseconds by design.
///
/// A name that is not a user is checked against a hash too, so that it
/// takes as long as a wrong password and names cannot be told apart by
/// timing (exporter-toolkit's `web/handler.go`). Only successes are cached:
/// a cached failure would answer a repeated guess fast, and a flood of
/// failures would push the real users out of the cache.
pub struct Users {
    hashes: BTreeMap<String, String>,
    /// What a name that is not a user is checked against: the costliest
    /// user hash, so that no user's check takes longer.
    dummy: String,
    cache: Mutex<HashSet<(String, String)>>,
    /// One bcrypt comparison at a time, as exporter-toolkit: a flood of
    /// guesses then costs one core, not all of them.
    bcrypt: Mutex<()>,
}

/// bcrypt of "fakepassword", the dummy when no user hash has a readable
/// cost (exporter-toolkit's).
const FAKE_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

const CACHE_CAP: usize = 128;

impl Users {
    pub fn new(hashes: BTreeMap<String, String>) -> Users {
        let dummy = hashes
            .values()
            .filter_map(|h| Some((bcrypt_cost(h)?, h)))
            .max_by_key(|(cost, _)| *cost)
            .map_or_else(|| FAKE_HASH.to_string(), |(_, h)| h.clone());
        Users {
            hashes,
            dummy,
            cache: Mutex::new(HashSet::new()),
            bcrypt: Mutex::new(()),
        }
    }

    /// Whether `user` exists and `pass` matches its hash. Blocking: call
    /// from a blocking thread.
    pub fn verify(&self, user: &str, pass: &str) -> bool {
        let key = (user.to_string(), pass.to_string());
        if self.cache.lock().is_ok_and(|c| c.contains(&key)) {
            return true;
        }
        let (hash, known) = match self.hashes.get(user) {
            Some(h) => (h.as_str(), true),
            None => (self.dummy.as_str(), false),
        };
        // The comparison runs whether or not the user is known.
        let matched = {
            let _one = self.bcrypt.lock();
            bcrypt::verify(pass, hash).unwrap_or(false)
        };
        let ok = known && matched;
        if ok && let Ok(mut c) = self.cache.lock() {
            if c.len() >= CACHE_CAP {
                c.clear();
            }
            c.insert(key);
        }
        ok
    }
}

/// The cost of a bcrypt hash (`$2y$10$...` is 10), if it has one.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.split('$').nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_headers() {
        let hash = bcrypt::hash_with_salt("secret", 4, [7; 16])
            .unwrap()
            .to_string();
        let yaml = format!(
            "basic_auth_users:\n  alice: '{hash}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        );
        let c = WebConfig::parse(&yaml, Path::new(".")).unwrap();
        assert!(c.tls.is_none());
        let users = c.users.unwrap();
        assert!(users.verify("alice", "secret"));
        assert!(users.verify("alice", "secret"), "cached answer");
        assert!(!users.verify("alice", "wrong"));
        assert!(!users.verify("bob", "secret"));
        assert_eq!(c.headers[0].0.as_str(), "x-frame-options");
    }

    #[test]
    fn errors() {
        let p = Path::new(".");
        assert!(matches!(
            WebConfig::parse("tls_server_config:\n  key_file: k\n", p),
            Err(Error::MissingCert)
        ));
        assert!(matches!(
            WebConfig::parse("tls_server_config:\n  cert_file: c\n", p),
            Err(Error::MissingKey)
        ));
        assert!(matches!(
            WebConfig::parse("nope: 1\n", p),
            Err(Error::Parse(_))
        ));
        assert!(WebConfig::parse("", p).unwrap().users.is_none());
        // Empty TLS section: plain HTTP, as the toolkit's errNoTLSConfig.
        assert!(
            WebConfig::parse("tls_server_config: {}\n", p)
                .unwrap()
                .tls
                .is_none()
        );
        assert!(matches!(versions("TLS11", ""), Err(Error::TlsVersion(_))));
        assert_eq!(versions("TLS13", "").unwrap().len(), 1);
    }

    /// An unknown name used to be refused without a bcrypt comparison, in
    /// well under a millisecond against tens for a wrong password, which
    /// told an attacker which names are users.
    #[test]
    fn issue_16_unknown_user_takes_as_long_as_a_wrong_password() {
        let hash = bcrypt::hash_with_salt("secret", 6, [7; 16])
            .unwrap()
            .to_string();
        let users = Users::new(BTreeMap::from([("alice".to_string(), hash)]));
        let median = |user: &str| {
            let mut times: Vec<f64> = (0..5)
                .map(|i| {
                    let started = std::time::Instant::now();
                    assert!(!users.verify(user, &format!("guess{i}")));
                    started.elapsed().as_secs_f64()
                })
                .collect();
            times.sort_by(f64::total_cmp);
            times[2]
        };
        let wrong_password = median("alice");
        let unknown_user = median("bob");
        assert!(
            unknown_user >= 0.3 * wrong_password,
            "unknown user {unknown_user:.6} s, wrong password {wrong_password:.6} s"
        );
        // Failures are not cached: a repeated guess costs as much again.
        assert!(!users.verify("bob", "guess0"));
        assert!(users.verify("alice", "secret"));
        assert!(users.verify("alice", "secret"), "cached answer");
    }
}
