//! The credentials `raymon up` makes by default: a password for raymon's
//! HTTP API (basic auth through the same web config as `--web.config.file`)
//! and one for Grafana's admin, kept under the data dir readable by the user
//! alone, and the forms each client takes them in (a bcrypt web config for
//! raymon, `RAY_PROMETHEUS_HEADERS` for Ray). On a shared login node every
//! user can reach every loopback port; a password is what keeps another
//! user's process out. Knows nothing of processes.

use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The credentials file's name under the data dir.
pub const CREDENTIALS_FILE: &str = "credentials.json";
/// raymon's web config (`--web.config.file`) under the data dir.
pub const WEB_CONFIG_FILE: &str = "web.yml";

/// bcrypt's cost for the hash raymon checks: the web server caches recent
/// checks, so the cost is paid about once per client.
const BCRYPT_COST: u32 = 10;
/// Characters of a generated password (62 symbols: ~143 bits).
const PASSWORD_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read random bytes from /dev/urandom")]
    Random(#[source] std::io::Error),
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a credentials file of raymon up ({why}); remove it to make new ones")]
    Read { path: PathBuf, why: String },
    #[error("{0} belongs to another user; choose another --ray-temp-dir")]
    NotOurs(PathBuf),
    #[error("cannot hash the password")]
    Hash(#[source] bcrypt::BcryptError),
}

/// A user name and its password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub user: String,
    pub password: String,
}

/// What the credentials file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// For raymon's HTTP API (Grafana's datasource, Ray's backend, you).
    pub raymon: Login,
    /// Grafana's admin.
    pub grafana_admin: Login,
}

/// The credentials file of a data dir.
pub fn credentials_path(data: &Path) -> PathBuf {
    data.join(CREDENTIALS_FILE)
}

/// The data dir's credentials, if it has a file.
pub fn load(data: &Path) -> Result<Option<Credentials>, Error> {
    let path = credentials_path(data);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Read {
                path,
                why: e.to_string(),
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Read {
            path,
            why: e.to_string(),
        })
}

/// The data dir's credentials, made (and written, mode 0600) on first use;
/// `true` when they were made now. They stay for later runs: Grafana keeps
/// the admin password of its first start in its database.
pub fn load_or_create(data: &Path) -> Result<(Credentials, bool), Error> {
    if let Some(c) = load(data)? {
        return Ok((c, false));
    }
    let c = Credentials {
        raymon: Login {
            user: "raymon".to_string(),
            password: password()?,
        },
        grafana_admin: Login {
            user: "admin".to_string(),
            password: password()?,
        },
    };
    let text = serde_json::to_vec_pretty(&c).unwrap_or_default();
    write_private(&credentials_path(data), &text)?;
    Ok((c, true))
}

/// Writes `bytes` to `path` readable and writable by the user alone, also
/// when the file existed with wider permissions.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)
    };
    write().map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Makes `dir` (and its parents) and closes it to other users (mode 0700).
/// Refuses a `dir` that belongs to another user: on a shared `/tmp` anyone
/// could have made it first, and could read what is put in it.
pub fn private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let make = || -> std::io::Result<bool> {
        std::fs::create_dir_all(dir)?;
        let me = std::fs::metadata("/proc/self")?.uid();
        if std::fs::metadata(dir)?.uid() != me {
            return Ok(false);
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(true)
    };
    match make() {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::NotOurs(dir.to_path_buf())),
        Err(source) => Err(Error::Write {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

fn random_bytes(n: usize) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(Error::Random)?;
    Ok(buf)
}

/// [`PASSWORD_LEN`] letters and digits, uniformly drawn.
fn password() -> Result<String, Error> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // Bytes at or above 248 (4 × 62) would favour the first symbols.
    let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let mut out = String::with_capacity(PASSWORD_LEN);
    while out.len() < PASSWORD_LEN {
        for b in random_bytes(2 * PASSWORD_LEN)? {
            if b < limit && out.len() < PASSWORD_LEN {
                out.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

/// raymon's web config with `login` as its one basic-auth user.
pub fn web_config(login: &Login) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&random_bytes(16)?);
    let hash = bcrypt::hash_with_salt(&login.password, BCRYPT_COST, salt)
        .map_err(Error::Hash)?
        .to_string();
    Ok(format!(
        "# Written by raymon up: the API's basic-auth user (password in {CREDENTIALS_FILE}).\n\
         basic_auth_users:\n  {}: '{hash}'\n",
        login.user
    ))
}

/// The `Authorization` header value for `login`.
pub fn authorization(login: &Login) -> String {
    // reqwest encodes basic auth as clients send it; the request is never sent.
    reqwest::Client::new()
        .get("http://localhost/")
        .basic_auth(&login.user, Some(&login.password))
        .build()
        .ok()
        .and_then(|r| {
            r.headers()
                .get(reqwest::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok().map(str::to_string))
        })
        .unwrap_or_default()
}

/// `RAY_PROMETHEUS_HEADERS` for `login`: Ray's JSON object of header names
/// and values (`dashboard/modules/metrics/metrics_head.py`,
/// `parse_prom_headers`),
/// sent with every query of Ray's backend and written into the datasource
/// Ray provisions.
pub fn ray_prometheus_headers(login: &Login) -> String {
    serde_json::json!({ "Authorization": authorization(login) }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_and_differ() {
        let (a, b) = (password().unwrap(), password().unwrap());
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn authorization_is_basic() {
        let l = Login {
            user: "a".into(),
            password: "b".into(),
        };
        assert_eq!(authorization(&l), "Basic YTpi");
    }
}
