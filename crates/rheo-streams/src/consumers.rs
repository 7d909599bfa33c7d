//! Enhanced fan-out consumers: RegisterStreamConsumer, DeregisterStreamConsumer,
//! DescribeStreamConsumer, ListStreamConsumers. Consumers are part of their stream's durable
//! metadata (`stream.json`), so they survive restarts; their push sessions live in
//! [`crate::subscribe`].

use std::sync::Arc;

use crate::control::page_size;
use crate::error::{Result, StreamsError};
use crate::meta::ConsumerMeta;
use crate::model::{ConsumerInfo, ConsumerPage, ConsumerRef, ConsumerStatus};
use crate::store::{Store, Stream, is_identifier, lock, validate_identifier};
use crate::subscribe::Ended;

/// A consumer ARN taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConsumerArn {
    pub(crate) stream: String,
    pub(crate) name: String,
    pub(crate) secs: i64,
}

/// Parses `arn:aws:kinesis:<region>:<account>:stream/<stream>/consumer/<name>:<seconds>`.
pub(crate) fn parse_consumer_arn(arn: &str) -> Result<ConsumerArn> {
    let parsed = arn
        .strip_prefix("arn:aws")
        .and_then(|rest| rest.split_once(":kinesis:"))
        .and_then(|(_, rest)| rest.split_once(":stream/"))
        .and_then(|(_, rest)| rest.split_once("/consumer/"))
        .and_then(|(stream, rest)| {
            let (name, secs) = rest.rsplit_once(':')?;
            let secs = secs.parse::<i64>().ok()?;
            Some(ConsumerArn {
                stream: stream.to_string(),
                name: name.to_string(),
                secs,
            })
        })
        .filter(|parsed| is_identifier(&parsed.stream) && is_identifier(&parsed.name));
    parsed.ok_or_else(|| {
        StreamsError::Validation(format!(
            "1 validation error detected: Value '{arn}' at 'consumerARN' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{{12}}:.*stream/[a-zA-Z0-9_.-]+/consumer/[a-zA-Z0-9_.-]+:[0-9]+"
        ))
    })
}

fn validate_consumer_name(name: &str) -> Result<()> {
    validate_identifier(name, "consumerName")
}

impl Store {
    /// The ARN of consumer `name` of `stream` registered in second `secs`.
    pub fn consumer_arn(&self, stream: &str, name: &str, secs: i64) -> String {
        format!("{}/consumer/{name}:{secs}", self.stream_arn(stream))
    }

    pub(crate) fn consumer_status(&self, consumer: &ConsumerMeta) -> ConsumerStatus {
        let delay = self.inner.config.fan_out.activation_delay.as_millis() as i64;
        if self.now_ms() < consumer.created_ms.saturating_add(delay) {
            ConsumerStatus::Creating
        } else {
            ConsumerStatus::Active
        }
    }

    fn consumer_info(&self, stream: &str, consumer: &ConsumerMeta) -> ConsumerInfo {
        ConsumerInfo {
            name: consumer.name.clone(),
            arn: self.consumer_arn(stream, &consumer.name, consumer.arn_secs),
            status: self.consumer_status(consumer),
            created_ms: consumer.created_ms,
            stream_arn: self.stream_arn(stream),
        }
    }

    fn consumer_not_found(&self, stream: &str, name: &str) -> StreamsError {
        StreamsError::ResourceNotFound(format!(
            "Consumer {name} under stream {stream} under account {} not found.",
            self.inner.config.account_id
        ))
    }

    /// RegisterStreamConsumer. The registration is durable when this returns; the answer says
    /// CREATING, as Kinesis's does, and the consumer is ACTIVE after the activation delay.
    pub async fn register_consumer(
        &self,
        stream_name: &str,
        consumer_name: &str,
    ) -> Result<ConsumerInfo> {
        validate_consumer_name(consumer_name)?;
        let stream = self.stream(stream_name)?;
        let fan_out = self.inner.config.fan_out.clone();
        let now = self.now_ms();
        let mut registered = None;
        self.update_meta(&stream, |meta| {
            if meta.consumers.iter().any(|c| c.name == consumer_name) {
                return Err(StreamsError::ResourceInUse(format!(
                    "Consumer {consumer_name} under stream {stream_name} under account {} already exists.",
                    self.inner.config.account_id
                )));
            }
            if meta.consumers.len() >= fan_out.max_consumers_per_stream as usize {
                return Err(StreamsError::LimitExceeded(format!(
                    "Stream {stream_name} already has {} consumers, the most a stream can have",
                    meta.consumers.len()
                )));
            }
            let creating = meta
                .consumers
                .iter()
                .filter(|c| self.consumer_status(c) == ConsumerStatus::Creating)
                .count();
            if creating >= fan_out.max_creating_consumers as usize {
                return Err(StreamsError::LimitExceeded(format!(
                    "Stream {stream_name} already has {creating} consumers in CREATING, the most at once"
                )));
            }
            let now_secs = now.div_euclid(1000);
            meta.retired_consumers.retain(|_, secs| *secs >= now_secs);
            let arn_secs = match meta.retired_consumers.get(consumer_name) {
                Some(&previous) => now_secs.max(previous + 1),
                None => now_secs,
            };
            let consumer = ConsumerMeta {
                name: consumer_name.to_string(),
                created_ms: now,
                arn_secs,
            };
            let at = meta
                .consumers
                .partition_point(|c| c.name.as_str() < consumer_name);
            meta.consumers.insert(at, consumer.clone());
            registered = Some(consumer);
            Ok(())
        })
        .await?;
        let consumer = registered.expect("a registration that succeeded");
        tracing::info!(stream = %stream_name, consumer = %consumer_name, "registered consumer");
        Ok(ConsumerInfo {
            status: ConsumerStatus::Creating,
            ..self.consumer_info(stream_name, &consumer)
        })
    }

    /// Finds the consumer a request names: by ARN, or by stream and name, or both if they agree.
    pub(crate) fn find_consumer(
        &self,
        reference: &ConsumerRef,
    ) -> Result<(Arc<Stream>, ConsumerMeta)> {
        let by_stream = if reference.stream_name.is_empty() && reference.stream_arn.is_empty() {
            None
        } else {
            Some(self.resolve_name(&reference.stream_name, &reference.stream_arn)?)
        };
        let (stream_name, name, secs) = if reference.consumer_arn.is_empty() {
            let Some(stream_name) = by_stream else {
                return Err(StreamsError::InvalidArgument(
                    "Either ConsumerARN or StreamARN and ConsumerName must be provided".into(),
                ));
            };
            if reference.consumer_name.is_empty() {
                return Err(StreamsError::InvalidArgument(
                    "ConsumerName must be provided with StreamARN".into(),
                ));
            }
            validate_consumer_name(&reference.consumer_name)?;
            (stream_name, reference.consumer_name.clone(), None)
        } else {
            let arn = parse_consumer_arn(&reference.consumer_arn)?;
            let disagrees = by_stream.as_ref().is_some_and(|s| *s != arn.stream)
                || (!reference.consumer_name.is_empty() && reference.consumer_name != arn.name);
            if disagrees {
                return Err(StreamsError::InvalidArgument(format!(
                    "ConsumerARN {} does not name the same consumer as the stream and consumer name given",
                    reference.consumer_arn
                )));
            }
            (arn.stream, arn.name, Some(arn.secs))
        };
        let stream = self.stream(&stream_name)?;
        let found = lock(&stream.meta)
            .consumers
            .iter()
            .find(|c| c.name == name && secs.is_none_or(|secs| secs == c.arn_secs))
            .cloned();
        match found {
            Some(consumer) => Ok((stream, consumer)),
            None => Err(self.consumer_not_found(&stream_name, &name)),
        }
    }

    /// DescribeStreamConsumer.
    pub fn describe_consumer(&self, reference: &ConsumerRef) -> Result<ConsumerInfo> {
        let (stream, consumer) = self.find_consumer(reference)?;
        Ok(self.consumer_info(&stream.name, &consumer))
    }

    /// DeregisterStreamConsumer: removes the consumer durably, then ends its subscriptions.
    pub async fn deregister_consumer(&self, reference: &ConsumerRef) -> Result<()> {
        let (stream, consumer) = self.find_consumer(reference)?;
        let mut removed = false;
        self.update_meta(&stream, |meta| {
            let before = meta.consumers.len();
            meta.consumers
                .retain(|c| !(c.name == consumer.name && c.arn_secs == consumer.arn_secs));
            removed = meta.consumers.len() < before;
            if removed {
                meta.retired_consumers
                    .insert(consumer.name.clone(), consumer.arn_secs);
            }
            Ok(())
        })
        .await?;
        if !removed {
            // Deregistered by a concurrent call.
            return Err(self.consumer_not_found(&stream.name, &consumer.name));
        }
        stream.end_sessions(Some(&consumer), Ended::ConsumerDeregistered);
        tracing::info!(stream = %stream.name, consumer = %consumer.name, "deregistered consumer");
        Ok(())
    }

    /// ListStreamConsumers: consumers in name order after the token's, at most `max_results`
    /// (1 to 10000, default 100). `stream_created_ms`, if given, must be the stream's creation
    /// time, which tells a re-created stream from an earlier one of the same name.
    pub fn list_consumers(
        &self,
        stream_name: &str,
        next_token: &str,
        max_results: Option<i64>,
        stream_created_ms: Option<i64>,
    ) -> Result<ConsumerPage> {
        let max = page_size(max_results, "maxResults", 10_000, 100, 10_000)?;
        let stream = self.stream(stream_name)?;
        let scope = format!("consumers/{stream_name}");
        let after = if next_token.is_empty() {
            String::new()
        } else {
            self.open_next_token(next_token, &scope)?
        };
        self.check_created(&stream, stream_created_ms)?;
        let meta = lock(&stream.meta);
        let mut consumers: Vec<ConsumerInfo> = meta
            .consumers
            .iter()
            .filter(|c| after.is_empty() || c.name > after)
            .take(max + 1)
            .map(|c| self.consumer_info(stream_name, c))
            .collect();
        drop(meta);
        let more = consumers.len() > max;
        consumers.truncate(max);
        let next_token = more.then(|| {
            let last = &consumers.last().expect("a full page").name;
            self.inner
                .key
                .encode_next_token(&scope, last, self.now_ms())
        });
        Ok(ConsumerPage {
            consumers,
            next_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_arns_parse_into_stream_name_and_seconds() {
        let arn = "arn:aws:kinesis:us-east-1:123456789123:stream/foobar/consumer/test-consumer:1525898737";
        assert_eq!(
            parse_consumer_arn(arn).unwrap(),
            ConsumerArn {
                stream: "foobar".into(),
                name: "test-consumer".into(),
                secs: 1_525_898_737
            }
        );
        for bad in [
            "",
            "arn:aws:kinesis:us-east-1:1:stream/foobar",
            "arn:aws:kinesis:us-east-1:1:stream/foobar/consumer/c",
            "arn:aws:kinesis:us-east-1:1:stream/foobar/consumer/c:soon",
            "arn:aws:kinesis:us-east-1:1:stream/foo bar/consumer/c:1",
            "arn:aws:s3:us-east-1:1:stream/foobar/consumer/c:1",
        ] {
            assert!(parse_consumer_arn(bad).is_err(), "{bad} is refused");
        }
    }
}
