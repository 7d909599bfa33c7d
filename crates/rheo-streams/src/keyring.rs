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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::SystemTime;

use rheo_storage::{KeyFault, KeyMaterial, KeyProvider};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StreamsError};

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

/// One version of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyVersion {
    /// 1, 2, ...: the newest wraps new data keys.
    pub version: u32,
    /// The 256-bit material, as 64 hexadecimal digits; empty once the version is retired
    /// (`rheo keys retire`, when no stored data needs it any more).
    pub material: String,
    /// When it was made, ms since the epoch.
    pub created_ms: i64,
}

/// A key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Its id (a UUID, as KMS key ids are).
    pub id: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// A disabled key wraps no new data keys (puts to its streams fail with
    /// KMSDisabledException); data already stored under it stays readable.
    pub enabled: bool,
    /// Versions, oldest first.
    pub versions: Vec<KeyVersion>,
}

/// The keyring file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyringDoc {
    /// Format of this document: 1.
    pub format: u32,
    /// The keys.
    pub keys: Vec<KeyEntry>,
    /// `alias/<name>` to key id.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; rheo_storage::KEY_LEN]> {
    if text.len() != 2 * rheo_storage::KEY_LEN {
        return None;
    }
    let mut out = [0u8; rheo_storage::KEY_LEN];
    for (at, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * at..2 * at + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A random version-4 UUID.
fn new_key_id() -> String {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&KeyMaterial::generate().0[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let text = hex(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &text[..8],
        &text[8..12],
        &text[12..16],
        &text[16..20],
        &text[20..]
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

impl KeyringDoc {
    /// Checks the document, naming the first problem.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.format != 1 {
            return Err(format!(
                "unsupported keyring format {} (this build reads 1)",
                self.format
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for key in &self.keys {
            if key.id.is_empty() || key.id.contains('/') || key.id.starts_with("arn:") {
                return Err(format!("key id {:?} is not a plain id", key.id));
            }
            if !ids.insert(key.id.as_str()) {
                return Err(format!("key {} appears twice", key.id));
            }
            if key.versions.is_empty() {
                return Err(format!("key {} has no versions", key.id));
            }
            for (at, version) in key.versions.iter().enumerate() {
                if version.version as usize != at + 1 {
                    return Err(format!(
                        "key {}: versions must be numbered 1, 2, ... in order",
                        key.id
                    ));
                }
                let newest = at + 1 == key.versions.len();
                if version.material.is_empty() && newest {
                    return Err(format!(
                        "key {}: the current version {} has no material",
                        key.id, version.version
                    ));
                }
                if !version.material.is_empty() && unhex(&version.material).is_none() {
                    return Err(format!(
                        "key {} version {}: material must be 64 hexadecimal digits",
                        key.id, version.version
                    ));
                }
            }
        }
        for (alias, id) in &self.aliases {
            check_alias_name(alias)?;
            if !ids.contains(id.as_str()) {
                return Err(format!("alias {alias} names unknown key {id}"));
            }
        }
        Ok(())
    }

    fn key(&self, id: &str) -> Option<&KeyEntry> {
        self.keys.iter().find(|key| key.id == id)
    }

    /// Adds a new key (and points `alias` at it); returns its id.
    pub fn create(&mut self, description: &str, alias: Option<&str>) -> Result<String, String> {
        let id = new_key_id();
        self.keys.push(KeyEntry {
            id: id.clone(),
            description: description.to_string(),
            enabled: true,
            versions: vec![KeyVersion {
                version: 1,
                material: hex(&KeyMaterial::generate().0),
                created_ms: now_ms(),
            }],
        });
        if let Some(alias) = alias {
            self.set_alias(alias, &id)?;
        }
        Ok(id)
    }

    fn entry_mut(&mut self, key: &str) -> Result<&mut KeyEntry, String> {
        let id = self.resolve_local(key)?;
        Ok(self
            .keys
            .iter_mut()
            .find(|entry| entry.id == id)
            .expect("resolved ids exist"))
    }

    /// Adds a version to `key` (an id or alias); returns the new version number.
    pub fn rotate(&mut self, key: &str) -> Result<u32, String> {
        let entry = self.entry_mut(key)?;
        let version = entry.versions.len() as u32 + 1;
        entry.versions.push(KeyVersion {
            version,
            material: hex(&KeyMaterial::generate().0),
            created_ms: now_ms(),
        });
        Ok(version)
    }

    /// Retires an old version of `key`: its material is erased. Refused for the current
    /// version; the caller checks that no stored data needs it.
    pub fn retire(&mut self, key: &str, version: u32) -> Result<(), String> {
        let entry = self.entry_mut(key)?;
        let newest = entry.versions.len() as u32;
        if version == newest {
            return Err(format!(
                "version {version} is the current one; rotate first"
            ));
        }
        let found = entry
            .versions
            .iter_mut()
            .find(|candidate| candidate.version == version)
            .ok_or_else(|| format!("{key} has no version {version}"))?;
        found.material.clear();
        Ok(())
    }

    /// Points `alias` at `key` (an id or alias).
    pub fn set_alias(&mut self, alias: &str, key: &str) -> Result<(), String> {
        check_alias_name(alias)?;
        let id = self.resolve_local(key)?;
        self.aliases.insert(alias.to_string(), id);
        Ok(())
    }

    /// Enables or disables `key`.
    pub fn set_enabled(&mut self, key: &str, enabled: bool) -> Result<(), String> {
        self.entry_mut(key)?.enabled = enabled;
        Ok(())
    }

    /// An id or alias to the key id (no ARNs: for `rheo keys`).
    pub fn resolve_local(&self, key: &str) -> Result<String, String> {
        let id = if key.starts_with("alias/") {
            self.aliases
                .get(key)
                .cloned()
                .ok_or_else(|| format!("no alias {key} in the keyring"))?
        } else {
            key.to_string()
        };
        self.key(&id)
            .map(|entry| entry.id.clone())
            .ok_or_else(|| format!("no key {key} in the keyring"))
    }
}

fn disabled(id: &str, region: &str, account: &str) -> StreamsError {
    StreamsError::KmsDisabled(format!(
        "Key 'arn:aws:kms:{region}:{account}:key/{id}' is disabled"
    ))
}

fn check_alias_name(alias: &str) -> std::result::Result<(), String> {
    let name = alias
        .strip_prefix("alias/")
        .ok_or_else(|| format!("alias {alias:?} must start with alias/"))?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/_-".contains(c);
    if name.is_empty() || alias.len() > 256 || !name.chars().all(allowed) {
        return Err(format!(
            "alias {alias:?} must be alias/ followed by 1 to 250 letters, digits, / _ -"
        ));
    }
    Ok(())
}

/// Reads a keyring file, refusing one that group or others may read.
pub fn read_file(path: &Path) -> std::result::Result<KeyringDoc, String> {
    check_private(path)?;
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("reading keyring {}: {error}", path.display()))?;
    parse(&text).map_err(|error| format!("keyring {}: {error}", path.display()))
}

fn parse(text: &str) -> std::result::Result<KeyringDoc, String> {
    let doc: KeyringDoc = serde_json::from_str(text).map_err(|error| error.to_string())?;
    doc.validate()?;
    Ok(doc)
}

#[cfg(unix)]
fn check_private(path: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|error| format!("keyring {}: {error}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "keyring {} is readable or writable by group or others (mode {:o}); run chmod 600 on it",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> std::result::Result<(), String> {
    Ok(())
}

/// Writes a keyring file atomically, readable by its owner only.
pub fn write_file(path: &Path, doc: &KeyringDoc) -> std::result::Result<(), String> {
    doc.validate()?;
    let mut json = serde_json::to_vec_pretty(doc).map_err(|error| error.to_string())?;
    json.push(b'\n');
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        std::io::Write::write_all(&mut file, &json)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|error| format!("writing keyring {}: {error}", path.display()))
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
