//! Server-side encryption of streams: StartStreamEncryption and StopStreamEncryption. The
//! keys are the keyring's (`keyring.rs`); the storage engine encrypts each shard's new
//! segments under the key its stream names.

use std::time::Duration;

use crate::error::{Result, StreamsError};
use crate::meta::EncryptionMeta;
use crate::reshard::DAY_MS;
use crate::store::{Store, lock};

/// Encryption changes of each kind allowed per stream in a rolling 24 hours, as in Kinesis.
const CHANGES_PER_DAY: usize = 25;

/// A stream's server-side encryption, as DescribeStream reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Encryption {
    /// Records are stored as written.
    #[default]
    None,
    /// New records are encrypted under this key.
    Kms {
        /// The KeyId as StartStreamEncryption was given it.
        key_id: String,
    },
}

impl Encryption {
    /// `NONE` or `KMS`, Kinesis's EncryptionType.
    pub fn type_name(&self) -> &'static str {
        match self {
            Encryption::None => "NONE",
            Encryption::Kms { .. } => "KMS",
        }
    }

    /// A stream's, from its metadata.
    pub(crate) fn of(meta: &crate::meta::StreamMeta) -> Encryption {
        match &meta.encryption {
            None => Encryption::None,
            Some(on) => Encryption::Kms {
                key_id: on.key_id.clone(),
            },
        }
    }

    /// The KeyId, when encrypted.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Encryption::None => None,
            Encryption::Kms { key_id } => Some(key_id),
        }
    }
}

/// Checks the EncryptionType and KeyId members both operations require.
fn check_input(encryption_type: &str, key_id: &str) -> Result<()> {
    match encryption_type {
        "KMS" => {}
        "NONE" => {
            return Err(StreamsError::InvalidArgument(
                "EncryptionType must be KMS: NONE is not a server-side encryption type".into(),
            ));
        }
        other => {
            return Err(StreamsError::Validation(format!(
                "1 validation error detected: Value '{other}' at 'encryptionType' failed to satisfy constraint: Member must satisfy enum value set: [KMS, NONE]"
            )));
        }
    }
    if key_id.is_empty() || key_id.chars().count() > 2048 {
        return Err(StreamsError::Validation(format!(
            "1 validation error detected: Value at 'keyId' failed to satisfy constraint: Member must have length between 1 and 2048, got {}",
            key_id.chars().count()
        )));
    }
    Ok(())
}

impl Store {
    /// StartStreamEncryption: from now on every record written to the stream is encrypted
    /// under `key_id` (records already stored stay as they were written). The stream is
    /// UPDATING while the change is made.
    pub async fn start_stream_encryption(
        &self,
        name: &str,
        encryption_type: &str,
        key_id: &str,
    ) -> Result<()> {
        check_input(encryption_type, key_id)?;
        self.stream(name)?;
        let config = &self.inner.config;
        let key = self
            .inner
            .keyring
            .resolve(key_id, &config.region, &config.account_id, false)?;
        let on = EncryptionMeta {
            key_id: key_id.to_string(),
            key: key.id,
        };
        self.change_encryption(name, Some(on)).await
    }

    /// StopStreamEncryption: records written from now on are stored unencrypted; records
    /// already stored stay encrypted and readable. `key_id` must name a key of the keyring
    /// (disabled ones too) and, if the stream is encrypted, the key it is encrypted under; on a
    /// stream that is not encrypted the call changes nothing and succeeds.
    pub async fn stop_stream_encryption(
        &self,
        name: &str,
        encryption_type: &str,
        key_id: &str,
    ) -> Result<()> {
        check_input(encryption_type, key_id)?;
        let stream = self.stream(name)?;
        let config = &self.inner.config;
        let key = self
            .inner
            .keyring
            .resolve(key_id, &config.region, &config.account_id, true)?;
        let current = lock(&stream.meta).encryption.clone();
        if let Some(on) = current
            && on.key != key.id
        {
            return Err(StreamsError::InvalidArgument(format!(
                "Stream {name} under account {} is encrypted with key '{}', not with '{key_id}'",
                config.account_id, on.key_id
            )));
        }
        self.change_encryption(name, None).await
    }

    async fn change_encryption(&self, name: &str, target: Option<EncryptionMeta>) -> Result<()> {
        let stream = self.stream(name)?;
        let _updating = self.start_updating(&stream)?;
        let delay = self.inner.config.reshard_delay;
        if delay > Duration::ZERO {
            tokio::time::sleep(delay).await;
        }
        let now = self.now_ms();
        let starting = target.is_some();
        let key = target.as_ref().map(|on| on.key.clone());
        self.update_meta(&stream, |meta| {
            let changes = if starting {
                &mut meta.encryption_starts_ms
            } else {
                &mut meta.encryption_stops_ms
            };
            changes.retain(|at| now - at < DAY_MS);
            if changes.len() >= CHANGES_PER_DAY {
                return Err(StreamsError::LimitExceeded(format!(
                    "Encryption of stream {name} was already {} {CHANGES_PER_DAY} times in the last 24 hours",
                    if starting { "started" } else { "stopped" }
                )));
            }
            changes.push(now);
            meta.encryption = target;
            Ok(())
        })
        .await?;
        for shard in &stream.topology().shards {
            shard.log.set_encryption_key(key.clone())?;
        }
        tracing::info!(stream = %name, key = ?key, "changed stream encryption");
        Ok(())
    }

    /// The stream's server-side encryption. Every put answer asks: it reads the one field,
    /// not the whole description.
    pub fn encryption(&self, name: &str) -> Result<Encryption> {
        Ok(Encryption::of(&lock(&self.stream(name)?.meta)))
    }

    /// Refuses a put to an encrypted stream whose key cannot encrypt now (disabled, or gone
    /// from the keyring): KMSDisabledException or KMSNotFoundException, as Kinesis answers.
    pub(crate) fn check_put_key(&self, stream: &crate::store::Stream) -> Result<()> {
        let key = lock(&stream.meta)
            .encryption
            .as_ref()
            .map(|on| on.key.clone());
        let config = &self.inner.config;
        match key {
            Some(key) => self
                .inner
                .keyring
                .check_usable(&key, &config.region, &config.account_id),
            None => Ok(()),
        }
    }

    /// Picks up a changed keyring file and, then and once after the store opens (a rotation
    /// may have happened while the server was down, or in a keyring from the environment),
    /// rewraps every key file under the newest key versions. Blocks on I/O; the maintenance
    /// task calls it.
    pub(crate) fn refresh_keyring(&self) {
        use std::sync::atomic::Ordering;
        if self.inner.keyring.reload_if_changed() {
            self.inner.rewrap_due.store(true, Ordering::SeqCst);
        }
        if !self.inner.rewrap_due.swap(false, Ordering::SeqCst) {
            return;
        }
        let streams: Vec<_> = self.registry().values().cloned().collect();
        let mut rewrapped = 0;
        for stream in streams {
            for shard in &stream.topology().shards {
                match shard.log.rewrap_keys() {
                    Ok(count) => rewrapped += count,
                    Err(error) => {
                        tracing::error!(stream = %stream.name, shard = %shard.id, %error, "rewrap failed")
                    }
                }
            }
        }
        if rewrapped > 0 {
            tracing::info!(
                key_files = rewrapped,
                "rewrapped data keys under the newest key versions"
            );
        }
    }
}

#[cfg(test)]
#[path = "encryption_tests.rs"]
mod tests;
