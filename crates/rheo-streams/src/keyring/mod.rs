//! The keyring: Rheo's stand-in for KMS. Named, versioned 256-bit key-encryption keys with
//! aliases, which the storage engine wraps each segment's data key with.
//!
//! Where it comes from ([`KeyringSource`]): a JSON file the operator controls (refused if
//! group or others may read it), the `RHEO_KEYRING` environment variable (the same JSON,
//! read-only), or by default `<data_dir>/keyring.json`, made at first start with one key behind
//! `alias/aws/kinesis` so encryption works out of the box on a testbed. The default protects
//! nothing against a stolen disk: the key lies next to the data.
//!
//! KeyId forms, as Kinesis accepts them: a key id, `arn:aws:kms:<region>:<account>:key/<id>`,
//! `alias/<name>`, `arn:aws:kms:<region>:<account>:alias/<name>`. Streams store the key id
//! they resolved to; the alias is resolved once, when encryption starts.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::SystemTime;

use rheo_storage::{KeyFault, KeyMaterial, KeyProvider};

use crate::error::{Result, StreamsError};

mod doc;

pub use doc::{KeyEntry, KeyVersion, KeyringDoc, read_file, write_file};
use doc::{parse, unhex};

/// File name of the default keyring under the data directory.
pub const DEFAULT_KEYRING_FILE: &str = "keyring.json";
/// The environment variable that may hold the keyring's JSON.
pub const KEYRING_ENV: &str = "RHEO_KEYRING";
/// The alias of the server's default key.
pub const DEFAULT_ALIAS: &str = "alias/aws/kinesis";

/// Where the keyring is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyringSource {
    /// `<data_dir>/keyring.json`, created with a default key if missing.
    Default,
    /// A file the operator manages with `rheo keys`; it must exist.
    File(PathBuf),
    /// The JSON document itself (from the environment); cannot be changed while running.
    Inline(String),
}

fn disabled(id: &str, region: &str, account: &str) -> StreamsError {
    StreamsError::KmsDisabled(format!(
        "Key 'arn:aws:kms:{region}:{account}:key/{id}' is disabled"
    ))
}

/// The keyring a server runs with.
#[derive(Debug)]
pub struct Keyring {
    source: KeyringSource,
    /// The file to watch for changes, if any.
    path: Option<PathBuf>,
    doc: RwLock<KeyringDoc>,
    /// Modification time and length of the file when it was last read.
    seen: Mutex<Option<(SystemTime, u64)>>,
}

fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// A key resolved from a KeyId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedKey {
    /// The key's id.
    pub id: String,
}

impl Keyring {
    /// Opens the keyring `source` describes (`data_dir` for the default one), creating the
    /// default keyring if it does not exist yet.
    pub fn open(source: KeyringSource, data_dir: &Path) -> Result<Keyring> {
        let internal = |message: String| StreamsError::Internal(message);
        let (path, doc) = match &source {
            KeyringSource::Inline(text) => (
                None,
                parse(text).map_err(|error| internal(format!("{KEYRING_ENV}: {error}")))?,
            ),
            KeyringSource::File(path) => (Some(path.clone()), read_file(path).map_err(internal)?),
            KeyringSource::Default => {
                let path = data_dir.join(DEFAULT_KEYRING_FILE);
                if !path.exists() {
                    let mut doc = KeyringDoc {
                        format: 1,
                        ..KeyringDoc::default()
                    };
                    doc.create(
                        "the server's default key (alias/aws/kinesis)",
                        Some(DEFAULT_ALIAS),
                    )
                    .map_err(internal)?;
                    write_file(&path, &doc).map_err(internal)?;
                    tracing::info!(path = %path.display(), "created the default keyring: it protects nothing against a stolen disk (see the README)");
                }
                (Some(path.clone()), read_file(&path).map_err(internal)?)
            }
        };
        let seen = path.as_deref().and_then(file_stamp);
        Ok(Keyring {
            source,
            path,
            doc: RwLock::new(doc),
            seen: Mutex::new(seen),
        })
    }

    /// Where the keyring comes from.
    pub fn source(&self) -> &KeyringSource {
        &self.source
    }

    /// Re-reads the file if it changed since it was last read. A file that no longer parses is
    /// refused (logged) and the keys in force stay. Returns true if new keys are in force.
    pub fn reload_if_changed(&self) -> bool {
        let Some(path) = &self.path else {
            return false;
        };
        let stamp = file_stamp(path);
        {
            let mut seen = crate::store::lock(&self.seen);
            if stamp == *seen {
                return false;
            }
            *seen = stamp;
        }
        match read_file(path) {
            Ok(doc) => {
                let mut current = self.doc.write().unwrap_or_else(|p| p.into_inner());
                let changed = *current != doc;
                *current = doc;
                if changed {
                    tracing::info!(path = %path.display(), "keyring reloaded");
                }
                changed
            }
            Err(error) => {
                tracing::error!(%error, "keyring not reloaded; the keys in force stay");
                false
            }
        }
    }

    fn doc(&self) -> std::sync::RwLockReadGuard<'_, KeyringDoc> {
        self.doc.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves a KeyId in any form Kinesis accepts to a key that can encrypt: unknown is
    /// KMSNotFoundException, disabled KMSDisabledException (unless `disabled_ok`).
    pub fn resolve(
        &self,
        key_id: &str,
        region: &str,
        account: &str,
        disabled_ok: bool,
    ) -> Result<ResolvedKey> {
        let not_found = || {
            StreamsError::KmsNotFound(format!(
                "Key '{key_id}' does not exist in the server's keyring"
            ))
        };
        let local = match key_id.strip_prefix("arn:") {
            Some(_) => {
                let prefix = format!("arn:aws:kms:{region}:{account}:");
                let resource = key_id.strip_prefix(&prefix).ok_or_else(not_found)?;
                if let Some(id) = resource.strip_prefix("key/") {
                    id.to_string()
                } else if resource.starts_with("alias/") {
                    resource.to_string()
                } else {
                    return Err(not_found());
                }
            }
            None => key_id.to_string(),
        };
        let doc = self.doc();
        let id = doc.resolve_local(&local).map_err(|_| not_found())?;
        let entry = doc.key(&id).expect("resolved ids exist");
        if !entry.enabled && !disabled_ok {
            return Err(disabled(&id, region, account));
        }
        Ok(ResolvedKey { id })
    }

    /// Whether new records may be encrypted under key `id`: the check a put makes.
    pub fn check_usable(&self, id: &str, region: &str, account: &str) -> Result<()> {
        match self.current(id) {
            Ok(_) => Ok(()),
            Err(KeyFault::Disabled(_)) => Err(disabled(id, region, account)),
            Err(KeyFault::NotFound(_)) => Err(StreamsError::KmsNotFound(format!(
                "Key 'arn:aws:kms:{region}:{account}:key/{id}' does not exist in the server's keyring"
            ))),
            Err(fault) => Err(StreamsError::from_key_fault(fault)),
        }
    }

    /// Every key with its versions and aliases, for `rheo keys list`.
    pub fn snapshot(&self) -> KeyringDoc {
        self.doc().clone()
    }
}

impl KeyProvider for Keyring {
    fn current(&self, key_id: &str) -> std::result::Result<(u32, KeyMaterial), KeyFault> {
        let doc = self.doc();
        let entry = doc
            .key(key_id)
            .ok_or_else(|| KeyFault::NotFound(key_id.to_string()))?;
        if !entry.enabled {
            return Err(KeyFault::Disabled(key_id.to_string()));
        }
        let newest = entry.versions.last().expect("validated: a version");
        let material = unhex(&newest.material).expect("validated material");
        Ok((newest.version, KeyMaterial(material)))
    }

    fn version(&self, key_id: &str, version: u32) -> std::result::Result<KeyMaterial, KeyFault> {
        let doc = self.doc();
        let entry = doc
            .key(key_id)
            .ok_or_else(|| KeyFault::NotFound(key_id.to_string()))?;
        entry
            .versions
            .iter()
            .find(|candidate| candidate.version == version)
            .and_then(|found| unhex(&found.material))
            .map(KeyMaterial)
            .ok_or_else(|| KeyFault::VersionMissing {
                key_id: key_id.to_string(),
                version,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(dir: &Path) -> Keyring {
        Keyring::open(KeyringSource::Default, dir).unwrap()
    }

    #[test]
    fn the_default_keyring_is_private_and_resolves_every_key_id_form() {
        let dir = tempfile::tempdir().unwrap();
        let ring = keyring(dir.path());
        let path = dir.path().join(DEFAULT_KEYRING_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let default = ring
            .resolve(DEFAULT_ALIAS, "us-east-1", "1", false)
            .unwrap();
        let forms = [
            default.id.clone(),
            format!("arn:aws:kms:us-east-1:1:key/{}", default.id),
            format!("arn:aws:kms:us-east-1:1:{DEFAULT_ALIAS}"),
        ];
        for form in forms {
            assert_eq!(
                ring.resolve(&form, "us-east-1", "1", false).unwrap(),
                default,
                "{form}"
            );
        }
        for unknown in [
            "alias/none".to_string(),
            "not-a-key".to_string(),
            format!("arn:aws:kms:eu-west-1:1:key/{}", default.id),
            format!("arn:aws:kms:us-east-1:2:key/{}", default.id),
        ] {
            let error = ring.resolve(&unknown, "us-east-1", "1", false).unwrap_err();
            assert_eq!(error.kinesis_name(), "KMSNotFoundException", "{unknown}");
        }
        // Reopening reads the same keys.
        assert_eq!(
            keyring(dir.path())
                .resolve(DEFAULT_ALIAS, "us-east-1", "1", false)
                .unwrap(),
            default
        );
    }

    #[test]
    fn a_readable_keyring_or_a_bad_document_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring.json");
        let mut doc = KeyringDoc {
            format: 1,
            ..KeyringDoc::default()
        };
        doc.create("", Some("alias/a")).unwrap();
        write_file(&path, &doc).unwrap();
        assert!(Keyring::open(KeyringSource::File(path.clone()), dir.path()).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let error = Keyring::open(KeyringSource::File(path.clone()), dir.path())
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("chmod 600") && error.contains("644"),
                "{error}"
            );
        }
        let bad = r#"{"format":1,"keys":[],"aliases":{},"extra":true}"#;
        let error = Keyring::open(KeyringSource::Inline(bad.into()), dir.path())
            .unwrap_err()
            .to_string();
        assert!(error.contains("extra"), "{error}");
        let mut dangling = doc.clone();
        dangling.aliases.insert("alias/b".into(), "gone".into());
        assert!(dangling.validate().unwrap_err().contains("unknown key"));
    }

    #[test]
    fn rotation_adds_versions_and_disabled_keys_refuse_new_data_keys_only() {
        let dir = tempfile::tempdir().unwrap();
        let ring = keyring(dir.path());
        let id = ring.resolve(DEFAULT_ALIAS, "r", "a", false).unwrap().id;
        let (v1, m1) = ring.current(&id).unwrap();
        assert_eq!(v1, 1);
        let path = dir.path().join(DEFAULT_KEYRING_FILE);
        let mut doc = read_file(&path).unwrap();
        assert_eq!(doc.rotate(DEFAULT_ALIAS).unwrap(), 2);
        doc.set_enabled(&id, false).unwrap();
        write_file(&path, &doc).unwrap();
        // A rewrite within the same second may keep the mtime: the length differs anyway.
        assert!(ring.reload_if_changed());
        assert_eq!(
            ring.version(&id, 1).unwrap(),
            m1,
            "old versions still unwrap"
        );
        assert!(matches!(ring.current(&id), Err(KeyFault::Disabled(_))));
        assert!(
            ring.resolve(DEFAULT_ALIAS, "r", "a", true).is_ok(),
            "stopping encryption may name a disabled key"
        );
        assert_eq!(
            ring.resolve(DEFAULT_ALIAS, "r", "a", false)
                .unwrap_err()
                .kinesis_name(),
            "KMSDisabledException"
        );
        std::fs::write(&path, "not json").unwrap();
        assert!(!ring.reload_if_changed(), "a broken file is not taken");
        assert!(ring.version(&id, 2).is_ok(), "the keys in force stay");
    }
}
