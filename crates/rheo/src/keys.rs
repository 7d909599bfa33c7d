//! `rheo keys`: manage the keyring that encrypted streams use (Rheo's stand-in for KMS).
//! Works on the file directly; a running server takes up changes at its next maintenance pass
//! (about a second) and rewraps stored data keys after a rotation.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use rheo_streams::keyring::{self, DEFAULT_KEYRING_FILE, KeyringDoc};

#[derive(Debug, clap::Args)]
pub(crate) struct KeysArgs {
    /// The keyring file (the server's `[encryption] keyring`).
    #[arg(long, env = "RHEO_KEYRING_FILE", global = true)]
    keyring: Option<PathBuf>,
    /// The data directory: its default keyring (`keyring.json`) unless `--keyring` is given,
    /// and for `list`, the key files that say which versions stored data still needs.
    #[arg(long, env = "RHEO_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    action: KeysAction,
}

#[derive(Debug, clap::Subcommand)]
enum KeysAction {
    /// Create a new key (a new keyring file if there is none yet).
    Create {
        /// Point this alias (`alias/<name>`) at the new key.
        #[arg(long)]
        alias: Option<String>,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List keys, their versions and aliases, and which versions stored data still needs.
    List,
    /// Add a new version to a key: new data keys are wrapped with it, and a running server
    /// rewraps the stored ones (records are not rewritten).
    Rotate {
        /// Key id or alias.
        key: String,
    },
    /// Point an alias at a key (creating or moving the alias).
    Alias {
        /// `alias/<name>`.
        alias: String,
        /// Key id or alias.
        key: String,
    },
    /// Disable a key: puts to its streams fail with KMSDisabledException; stored data stays
    /// readable.
    Disable {
        /// Key id or alias.
        key: String,
    },
    /// Enable a disabled key.
    Enable {
        /// Key id or alias.
        key: String,
    },
    /// Erase an old version's material once no stored data needs it (needs --data-dir, and
    /// refuses while any key file of that directory is wrapped with it).
    Retire {
        /// Key id or alias.
        key: String,
        /// The version to erase.
        version: u32,
    },
}

impl KeysArgs {
    fn path(&self) -> anyhow::Result<PathBuf> {
        if std::env::var_os(keyring::KEYRING_ENV).is_some() && self.keyring.is_none() {
            bail!(
                "the keyring comes from {} (read-only); edit its source, or pass --keyring",
                keyring::KEYRING_ENV
            );
        }
        match (&self.keyring, &self.data_dir) {
            (Some(path), _) => Ok(path.clone()),
            (None, Some(dir)) => Ok(dir.join(DEFAULT_KEYRING_FILE)),
            (None, None) => bail!("say which keyring: --keyring FILE or --data-dir DIR"),
        }
    }
}

fn change(
    path: &std::path::Path,
    create: bool,
    edit: impl FnOnce(&mut KeyringDoc) -> Result<String, String>,
) -> anyhow::Result<ExitCode> {
    let mut doc = if create && !path.exists() {
        KeyringDoc {
            format: 1,
            ..KeyringDoc::default()
        }
    } else {
        keyring::read_file(path).map_err(anyhow::Error::msg)?
    };
    let message = edit(&mut doc).map_err(anyhow::Error::msg)?;
    keyring::write_file(path, &doc).map_err(anyhow::Error::msg)?;
    println!("{message}");
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn keys(args: KeysArgs) -> anyhow::Result<ExitCode> {
    let path = args.path()?;
    match &args.action {
        KeysAction::Create { alias, description } => change(&path, true, |doc| {
            let id = doc.create(description, alias.as_deref())?;
            Ok(match alias {
                Some(alias) => format!("created key {id} ({alias})"),
                None => format!("created key {id}"),
            })
        }),
        KeysAction::Rotate { key } => change(&path, false, |doc| {
            let version = doc.rotate(key)?;
            Ok(format!("{key} is now at version {version}"))
        }),
        KeysAction::Alias { alias, key } => change(&path, false, |doc| {
            doc.set_alias(alias, key)?;
            Ok(format!("{alias} -> {}", doc.resolve_local(alias)?))
        }),
        KeysAction::Disable { key } => change(&path, false, |doc| {
            doc.set_enabled(key, false)?;
            Ok(format!("disabled {key}"))
        }),
        KeysAction::Enable { key } => change(&path, false, |doc| {
            doc.set_enabled(key, true)?;
            Ok(format!("enabled {key}"))
        }),
        KeysAction::Retire { key, version } => {
            let Some(dir) = &args.data_dir else {
                bail!("retire needs --data-dir, to check that no stored data needs the version");
            };
            let doc = keyring::read_file(&path).map_err(anyhow::Error::msg)?;
            let id = doc.resolve_local(key).map_err(anyhow::Error::msg)?;
            let needed = rheo_storage::key_files(&rheo_storage::io::StdFs, dir)?
                .into_iter()
                .filter(|file| {
                    file.key
                        .as_ref()
                        .is_none_or(|(k, v)| *k == id && v == version)
                })
                .count();
            if needed > 0 {
                bail!(
                    "{needed} key file(s) under {} are wrapped with version {version} of {key} (or cannot be read): start the server so it rewraps them, or wait for retention",
                    dir.display()
                );
            }
            change(&path, false, |doc| {
                doc.retire(key, *version)?;
                Ok(format!("retired version {version} of {key}"))
            })
        }
        KeysAction::List => list(&path, args.data_dir.as_deref()),
    }
}

fn list(path: &std::path::Path, data_dir: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let doc = keyring::read_file(path).map_err(anyhow::Error::msg)?;
    let usage = match data_dir {
        Some(dir) => Some(
            rheo_storage::key_files(&rheo_storage::io::StdFs, dir)
                .with_context(|| format!("reading key files under {}", dir.display()))?,
        ),
        None => None,
    };
    for key in &doc.keys {
        let aliases: Vec<&str> = doc
            .aliases
            .iter()
            .filter(|(_, id)| **id == key.id)
            .map(|(alias, _)| alias.as_str())
            .collect();
        println!(
            "{}  {}{}{}",
            key.id,
            if key.enabled { "enabled" } else { "DISABLED" },
            if aliases.is_empty() {
                String::new()
            } else {
                format!("  {}", aliases.join(", "))
            },
            if key.description.is_empty() {
                String::new()
            } else {
                format!("  \"{}\"", key.description)
            }
        );
        let newest = key.versions.len() as u32;
        for version in &key.versions {
            let needed = usage.as_ref().map(|files| {
                files
                    .iter()
                    .filter(|file| {
                        file.key
                            .as_ref()
                            .is_some_and(|(id, v)| *id == key.id && *v == version.version)
                    })
                    .count()
            });
            let state = match needed {
                _ if version.material.is_empty() => "retired".to_string(),
                _ if version.version == newest => "current: wraps new data keys".to_string(),
                Some(0) => "no stored data needs it: it can be removed".to_string(),
                Some(count) => {
                    format!("{count} segment(s) still need it (a running server rewraps them)")
                }
                None => "pass --data-dir to see whether stored data needs it".to_string(),
            };
            match needed {
                Some(count) if version.version == newest => println!(
                    "  version {}  {}, {count} segment(s)",
                    version.version, state
                ),
                _ => println!("  version {}  {}", version.version, state),
            }
        }
    }
    if let Some(files) = &usage {
        let damaged = files.iter().filter(|file| file.key.is_none()).count();
        if damaged > 0 {
            println!("{damaged} key file(s) could not be read: run `rheo verify`");
        }
    }
    Ok(ExitCode::SUCCESS)
}
