//! The keyring document: its JSON shape, its checks, the changes `rheo keys` makes, and
//! reading and writing the file (private to its owner).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use rheo_storage::KeyMaterial;
use serde::{Deserialize, Serialize};

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

pub(super) fn unhex(text: &str) -> Option<[u8; rheo_storage::KEY_LEN]> {
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

    pub(super) fn key(&self, id: &str) -> Option<&KeyEntry> {
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

pub(super) fn parse(text: &str) -> std::result::Result<KeyringDoc, String> {
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
