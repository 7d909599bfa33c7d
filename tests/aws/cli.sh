#!/usr/bin/env bash
# The AWS CLI (v1, `aws` from PyPI) against a Kinesis endpoint: create, wait, put, read, describe,
# list, delete. Needs KINESIS_ENDPOINT (run.sh starts a Rheo server and sets it) and `aws` on
# PATH (run.sh puts the venv's first). Exits non-zero with a message on the first mismatch.
set -euo pipefail

: "${KINESIS_ENDPOINT:?KINESIS_ENDPOINT must name the endpoint, e.g. http://127.0.0.1:4567}"

# Dummy credentials, no user configuration, no retries, bounded waits.
export AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=secret AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent
export AWS_MAX_ATTEMPTS=1 AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""

fail() { echo "cli.sh: FAIL: $*" >&2; exit 1; }
kin() { timeout 60 aws --endpoint-url "$KINESIS_ENDPOINT" --cli-read-timeout 20 kinesis "$@"; }
expect() { # expect WHAT EXPECTED ACTUAL
  [[ "$2" == "$3" ]] || fail "$1: expected '$2', got '$3'"
  echo "ok - $1"
}

aws --version 2>&1 | grep -q '^aws-cli/1\.' || fail "this script is written for AWS CLI v1: $(aws --version 2>&1)"

STREAM="cli-$$-$RANDOM"
WORK=$(mktemp -d)
cleanup() { kin delete-stream --stream-name "$STREAM" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

kin create-stream --stream-name "$STREAM" --shard-count 2
# The waiter polls DescribeStream every 10 s; Rheo is ACTIVE at once, so the first poll succeeds.
timeout 60 aws --endpoint-url "$KINESIS_ENDPOINT" kinesis wait stream-exists --stream-name "$STREAM"
echo "ok - create-stream, wait stream-exists"

status=$(kin describe-stream-summary --stream-name "$STREAM" \
  --query 'StreamDescriptionSummary.[StreamStatus,OpenShardCount,RetentionPeriodHours]' --output text)
expect "describe-stream-summary" $'ACTIVE\t2\t24' "$status"

arn=$(kin describe-stream-summary --stream-name "$STREAM" --query 'StreamDescriptionSummary.StreamARN' --output text)
expect "stream ARN" "arn:aws:kinesis:us-east-1:000000000000:stream/$STREAM" "$arn"

kin list-streams --query 'StreamNames' --output text | tr '\t' '\n' | grep -qx "$STREAM" \
  || fail "list-streams does not list $STREAM"
echo "ok - list-streams"

# CLI v1 sends --data as the raw text given (CLI v2 would expect base64); output blobs are base64.
text="hello from the aws cli"
shard=$(kin put-record --stream-name "$STREAM" --partition-key a --data "$text" --query ShardId --output text)
expect "put-record routes key 'a' by MD5 to the lower half" "shardId-000000000000" "$shard"
# Binary data from a file (fileb:// is read as bytes).
printf '\x00\xff\xfe\x80binary' > "$WORK/blob"
seq2=$(kin put-record --stream-name "$STREAM" --partition-key a --data "fileb://$WORK/blob" \
  --query SequenceNumber --output text)
[[ "$seq2" =~ ^[0-9]+$ ]] || fail "sequence number '$seq2' is not a decimal string"
echo "ok - put-record (text and fileb://)"

iterator=$(kin get-shard-iterator --stream-name "$STREAM" --shard-id shardId-000000000000 \
  --shard-iterator-type TRIM_HORIZON --query ShardIterator --output text)
[[ -n "$iterator" && "$iterator" != "None" ]] || fail "no shard iterator"
data=$(kin get-records --shard-iterator "$iterator" --query 'Records[].Data' --output text)
expect "get-records data (base64)" "$(printf '%s' "$text" | base64 -w0)"$'\t'"$(base64 -w0 < "$WORK/blob")" "$data"
keys=$(kin get-records --shard-iterator "$iterator" --query 'Records[].[PartitionKey,SequenceNumber]' --output text | tr '\t\n' ' ')
[[ "$keys" == "a "*" a $seq2 " ]] || fail "get-records keys and sequence numbers: '$keys'"
echo "ok - get-records keys and sequence numbers"
behind=$(kin get-records --shard-iterator "$iterator" --query MillisBehindLatest --output text)
expect "MillisBehindLatest when caught up" "0" "$behind"

err=$(kin describe-stream-summary --stream-name "no-such-$STREAM" 2>&1 >/dev/null && echo "no error" || true)
[[ "$err" == *"ResourceNotFoundException"* && "$err" == *"Stream no-such-$STREAM under account 000000000000 not found."* ]] \
  || fail "unknown stream: $err"
echo "ok - unknown stream gives ResourceNotFoundException"

kin delete-stream --stream-name "$STREAM"
timeout 60 aws --endpoint-url "$KINESIS_ENDPOINT" kinesis wait stream-not-exists --stream-name "$STREAM"
if kin list-streams --query 'StreamNames' --output text | tr '\t' '\n' | grep -qx "$STREAM"; then
  fail "$STREAM still listed after delete-stream"
fi
echo "ok - delete-stream, wait stream-not-exists"
echo "cli.sh: all AWS CLI checks passed"
