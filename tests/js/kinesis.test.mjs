// The AWS SDK for JavaScript v3 (@aws-sdk/client-kinesis), unmodified, against a real
// `rheo serve`, with every call over HTTP/2 (cleartext, prior knowledge: h2c).
//
// Run with `node --test tests/js/kinesis.test.mjs` (tests/js/run.sh installs the SDK first).
// The binary is $RHEO_BIN (a relative path is taken from the current directory if it exists
// there, else from the repo root), by default <repo>/target/debug/rheo. Reference: shared/reference/kinesis-api.md, sections 5.3 (JS v3
// uses an HTTP/2 handler for every Kinesis operation) and 5.4 (SubscribeToShard event stream).
//
// How HTTP/2 is verified, on the wire and not only by configuration:
//   * the client's request handler is the NodeHttp2Handler instance passed in (it can only
//     speak HTTP/2: it opens sessions with node:http2 `connect`, which has no HTTP/1 fallback);
//   * the client talks to Rheo through a byte-for-byte loopback TCP relay (the "wire tap") that
//     reads what the client sends: every connection must open with the HTTP/2 connection preface
//     `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, and the HEADERS frames (one per HTTP/2 request) are
//     counted; the last tests require that no connection was anything but HTTP/2 and that the
//     number of HTTP/2 requests seen equals the number of requests the SDK sent (counted by a
//     middleware on the client, once per attempt);
//   * a control check shows the tap tells an HTTP/1.1 connection apart, and one test talks to
//     Rheo's port directly (no tap) to show the relay changes nothing.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { accessSync, constants as fsConstants, existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import {
  KinesisClient,
  CreateStreamCommand,
  DeleteStreamCommand,
  DescribeStreamConsumerCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
  ListStreamsCommand,
  PutRecordCommand,
  PutRecordsCommand,
  RegisterStreamConsumerCommand,
  ResourceNotFoundException,
  SubscribeToShardCommand,
  waitUntilStreamExists,
  waitUntilStreamNotExists,
} from "@aws-sdk/client-kinesis";
import { NodeHttp2Handler } from "@smithy/node-http-handler";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, "..", "..");
// RHEO_BIN: absolute, or relative to the current directory, or else relative to the repo root.
const RHEO_BIN = (() => {
  const given = process.env.RHEO_BIN;
  if (!given) return path.join(REPO_ROOT, "target", "debug", "rheo");
  const fromCwd = path.resolve(process.cwd(), given);
  return existsSync(fromCwd) ? fromCwd : path.resolve(REPO_ROOT, given);
})();

const STREAM = "js-sdk-h2";
const CONSUMER = "js-sdk-h2-consumer";
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const FRAME_HEADERS = 0x1;

// The whole file must finish well under 60 s; this watchdog makes a hang a failure, not a stall.
const WATCHDOG_MS = 55_000;

// ---------------------------------------------------------------------------------------------
// Helpers

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Rejects after `ms` with a message, so that no await in these tests is unbounded. */
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The shard whose hash key range holds MD5(partitionKey), as Kinesis routes it. */
function shardFor(partitionKey, shards) {
  const hash = BigInt("0x" + createHash("md5").update(partitionKey, "utf8").digest("hex"));
  const shard = shards.find(
    (s) => BigInt(s.HashKeyRange.StartingHashKey) <= hash && hash <= BigInt(s.HashKeyRange.EndingHashKey),
  );
  assert.ok(shard, `no shard holds the hash of ${partitionKey}`);
  return shard.ShardId;
}

/** Deterministic binary payloads: every byte value, NULs, invalid UTF-8, varied lengths. */
function payload(i) {
  const length = [0, 1, 7, 256, 1000, 4096][i % 6] + i;
  const bytes = new Uint8Array(length);
  for (let j = 0; j < length; j++) bytes[j] = (j * 31 + i * 17 + (j >> 3)) & 0xff;
  return bytes;
}

function assertBytes(got, expected, what) {
  assert.ok(got instanceof Uint8Array, `${what}: Data is a ${got?.constructor?.name}, not a Uint8Array`);
  assert.equal(got.length, expected.length, `${what}: length`);
  assert.ok(Buffer.from(got.buffer, got.byteOffset, got.length).equals(Buffer.from(expected)), `${what}: bytes differ`);
}

// ---------------------------------------------------------------------------------------------
// The wire tap: a loopback TCP relay that parses the client→server half of each connection.

class WireTap {
  constructor(upstreamPort) {
    this.upstreamPort = upstreamPort;
    this.connections = []; // { protocol: "pending" | "h2" | "other", firstBytes, headersFrames, streamIds }
    this.sockets = new Set();
    this.server = net.createServer((client) => this.#relay(client));
  }

  listen() {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", () => {
        this.port = this.server.address().port;
        resolve();
      });
    });
  }

  #relay(client) {
    const record = { protocol: "pending", firstBytes: Buffer.alloc(0), headersFrames: 0, streamIds: new Set() };
    this.connections.push(record);
    const upstream = net.connect(this.upstreamPort, "127.0.0.1");
    this.sockets.add(client);
    this.sockets.add(upstream);
    let pending = Buffer.alloc(0);
    client.on("data", (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      if (record.protocol === "pending") {
        if (pending.length < H2_PREFACE.length && H2_PREFACE.subarray(0, pending.length).equals(pending)) return;
        record.firstBytes = pending.subarray(0, 32);
        if (pending.subarray(0, H2_PREFACE.length).equals(H2_PREFACE)) {
          record.protocol = "h2";
          pending = pending.subarray(H2_PREFACE.length);
        } else {
          record.protocol = "other";
        }
      }
      if (record.protocol !== "h2") {
        pending = Buffer.alloc(0);
        return;
      }
      // HTTP/2 frames: 24-bit length, 8-bit type, 8-bit flags, 31-bit stream id, payload.
      while (pending.length >= 9) {
        const length = pending.readUIntBE(0, 3);
        if (pending.length < 9 + length) break;
        const type = pending[3];
        const streamId = pending.readUInt32BE(5) & 0x7fffffff;
        if (type === FRAME_HEADERS) {
          record.headersFrames += 1;
          record.streamIds.add(streamId);
        }
        pending = pending.subarray(9 + length);
      }
    });
    client.pipe(upstream);
    upstream.pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on("error", close);
    upstream.on("error", close);
    client.on("close", close);
    upstream.on("close", close);
  }

  summary() {
    const h2 = this.connections.filter((c) => c.protocol === "h2");
    return {
      connections: this.connections.length,
      h2Connections: h2.length,
      otherConnections: this.connections.filter((c) => c.protocol === "other"),
      h2Requests: h2.reduce((n, c) => n + c.headersFrames, 0),
    };
  }

  close() {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

// ---------------------------------------------------------------------------------------------
// The server

const server = { process: null, exit: null, workdir: null, logPath: null, port: 0, metricsPort: 0 };

function logTail(lines = 40) {
  try {
    return readFileSync(server.logPath, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

async function startServer() {
  try {
    accessSync(RHEO_BIN, fsConstants.X_OK);
  } catch {
    throw new Error(`rheo binary not found or not executable at ${RHEO_BIN}: run \`cargo build -p rheo\` or set RHEO_BIN`);
  }
  server.workdir = mkdtempSync(path.join(tmpdir(), "rheo-js-"));
  server.logPath = path.join(server.workdir, "server.log");
  server.port = await freePort();
  server.metricsPort = await freePort();
  const log = openSync(server.logPath, "w");
  // The server reads RHEO_* settings from the environment: keep ours (RHEO_BIN) away from it.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("RHEO_")));
  const child = spawn(
    RHEO_BIN,
    [
      "serve",
      "--data-dir", path.join(server.workdir, "data"),
      "--listen", `127.0.0.1:${server.port}`,
      "--metrics-listen", `127.0.0.1:${server.metricsPort}`,
      "--no-limits",
    ],
    { stdio: ["ignore", log, log], env },
  );
  closeSync(log);
  server.process = child;
  // If this process is ended early (Ctrl-C, a closed pipe, the watchdog), take the server down
  // with it instead of leaving it running.
  process.once("exit", () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    rmSync(server.workdir, { recursive: true, force: true });
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE"]) {
    process.once(signal, () => process.exit(130));
  }
  // A broken stdout means the test runner that reads it is gone: stop (an unhandled EPIPE
  // would end this process without running the exit handler above).
  process.stdout.on("error", () => process.exit(130));
  server.exit = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  let exited = null;
  server.exit.then((status) => (exited = status));

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`rheo serve exited early (${JSON.stringify(exited)}):\n${logTail()}`);
    try {
      const answer = await fetch(`http://127.0.0.1:${server.metricsPort}/readyz`, { signal: AbortSignal.timeout(1000) });
      await answer.arrayBuffer();
      if (answer.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`rheo serve not ready after 30 s:\n${logTail()}`);
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------------
// Shared state (the tests below run in order and build on each other)

let tap;
let handler;
let client;
let sentRequests = 0; // requests handed to the HTTP handler by `client` (once per attempt)
const sentTargets = new Set();
let shards = [];
let streamArn;
const written = new Map(); // shardId -> [{ PartitionKey, Data, SequenceNumber }] in write order

function makeClient(endpoint, requestHandler) {
  return new KinesisClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" },
    maxAttempts: 1, // a failure shows as it is, not hidden by a retry
    requestHandler,
  });
}

/** Counts each request as it goes to the HTTP handler (the deserialize step wraps the handler). */
function countRequests(kinesis, onRequest) {
  kinesis.middlewareStack.add(
    (next) => async (args) => {
      onRequest(args.request);
      return next(args);
    },
    { step: "deserialize", name: "rheoCountRequests", priority: "low" },
  );
}

function record(shardId, entry) {
  if (!written.has(shardId)) written.set(shardId, []);
  written.get(shardId).push(entry);
}

let watchdog;

before(async () => {
  watchdog = setTimeout(() => {
    console.error(`watchdog: the suite ran longer than ${WATCHDOG_MS} ms; server log:\n${logTail()}`);
    server.process?.kill("SIGKILL");
    process.exit(1);
  }, WATCHDOG_MS);
  watchdog.unref();
  await startServer();
  tap = new WireTap(server.port);
  await tap.listen();
  // Kinesis's own default is an HTTP/2 handler with one session per request
  // (disableConcurrentStreams: true); the same, explicitly.
  handler = new NodeHttp2Handler({ disableConcurrentStreams: true, requestTimeout: 15_000 });
  client = makeClient(`http://127.0.0.1:${tap.port}`, handler);
  countRequests(client, (request) => {
    sentRequests += 1;
    sentTargets.add(request.headers["x-amz-target"]);
  });
});

after(async () => {
  client?.destroy();
  await tap?.close();
  if (server.process && server.process.exitCode === null && server.process.signalCode === null) {
    server.process.kill("SIGKILL");
    await withTimeout(server.exit, 10_000, "killing rheo serve").catch(() => {});
  }
  if (server.workdir) rmSync(server.workdir, { recursive: true, force: true });
  clearTimeout(watchdog);
});

// ---------------------------------------------------------------------------------------------
// Tests

test("the client's request handler is the NodeHttp2Handler given to it", async () => {
  assert.equal(client.config.requestHandler, handler);
  assert.ok(client.config.requestHandler instanceof NodeHttp2Handler);
  assert.equal(client.config.requestHandler.metadata.handlerProtocol, "h2");
});

test("the wire tap tells an HTTP/1.1 connection from HTTP/2 (control)", async () => {
  const before = tap.connections.length;
  const status = await withTimeout(
    new Promise((resolve, reject) => {
      const request = http.request(
        { host: "127.0.0.1", port: tap.port, method: "POST", path: "/", agent: false, headers: { "content-type": "application/x-amz-json-1.1" } },
        (response) => {
          response.resume();
          response.on("end", () => resolve(response.statusCode));
        },
      );
      request.on("error", reject);
      request.end("{}");
    }),
    10_000,
    "HTTP/1.1 control request",
  );
  assert.ok(status >= 400, `an unsigned request without a target is refused (got ${status})`);
  const added = tap.connections.slice(before);
  assert.equal(added.length, 1);
  assert.equal(added[0].protocol, "other");
  assert.match(added[0].firstBytes.toString("latin1"), /^POST \/ HTTP\/1\.1\r\n/);
  // Leave it out of the HTTP/2 accounting below.
  tap.connections.splice(before, 1);
});

test("CreateStream (2 shards) and the StreamExists waiter", async () => {
  const created = await client.send(new CreateStreamCommand({ StreamName: STREAM, ShardCount: 2 }));
  assert.equal(created.$metadata.httpStatusCode, 200);
  const waited = await waitUntilStreamExists(
    { client, maxWaitTime: 20, minDelay: 1, maxDelay: 2 },
    { StreamName: STREAM },
  );
  assert.equal(waited.state, "SUCCESS");
});

test("DescribeStreamSummary", async () => {
  const { StreamDescriptionSummary: summary } = await client.send(
    new DescribeStreamSummaryCommand({ StreamName: STREAM }),
  );
  assert.equal(summary.StreamName, STREAM);
  assert.equal(summary.StreamStatus, "ACTIVE");
  assert.equal(summary.OpenShardCount, 2);
  assert.equal(summary.RetentionPeriodHours, 24);
  assert.equal(summary.StreamModeDetails?.StreamMode, "PROVISIONED");
  assert.ok(summary.StreamCreationTimestamp instanceof Date, "StreamCreationTimestamp is a Date");
  assert.ok(Math.abs(summary.StreamCreationTimestamp.getTime() - Date.now()) < 60_000, "creation time is now");
  assert.match(summary.StreamARN, new RegExp(`^arn:aws:kinesis:us-east-1:\\d{12}:stream/${STREAM}$`));
  streamArn = summary.StreamARN;
});

test("ListShards", async () => {
  const listed = await client.send(new ListShardsCommand({ StreamName: STREAM }));
  shards = listed.Shards;
  assert.equal(shards.length, 2);
  assert.equal(listed.NextToken, undefined);
  // Two shards split the 128-bit hash key space evenly (reference: CreateStream).
  const half = 1n << 127n;
  assert.deepEqual(
    shards.map((s) => [s.HashKeyRange.StartingHashKey, s.HashKeyRange.EndingHashKey]),
    [["0", String(half - 1n)], [String(half), String((1n << 128n) - 1n)]],
  );
  for (const shard of shards) {
    assert.match(shard.ShardId, /^shardId-\d{12}$/);
    assert.match(shard.SequenceNumberRange.StartingSequenceNumber, /^\d+$/);
    assert.equal(shard.SequenceNumberRange.EndingSequenceNumber, undefined, "open shard");
  }
});

test("PutRecord", async () => {
  const data = payload(3);
  const put = await client.send(new PutRecordCommand({ StreamName: STREAM, PartitionKey: "alpha", Data: data }));
  assert.equal(put.ShardId, shardFor("alpha", shards));
  assert.match(put.SequenceNumber, /^\d+$/);
  record(put.ShardId, { PartitionKey: "alpha", Data: data, SequenceNumber: put.SequenceNumber });
});

test("PutRecords: binary data, per-record results in request order", async () => {
  const entries = Array.from({ length: 24 }, (_, i) => ({ PartitionKey: `key-${i}`, Data: payload(i) }));
  const put = await client.send(new PutRecordsCommand({ StreamName: STREAM, Records: entries }));
  assert.equal(put.FailedRecordCount ?? 0, 0);
  assert.equal(put.Records.length, entries.length);
  const used = new Set();
  put.Records.forEach((result, i) => {
    assert.equal(result.ErrorCode, undefined, `record ${i}: ${result.ErrorMessage}`);
    assert.equal(result.ShardId, shardFor(entries[i].PartitionKey, shards), `record ${i} routed by MD5`);
    assert.match(result.SequenceNumber, /^\d+$/);
    used.add(result.ShardId);
    record(result.ShardId, { ...entries[i], SequenceNumber: result.SequenceNumber });
  });
  assert.equal(used.size, 2, "the keys cover both shards");
  for (const [shardId, list] of written) {
    for (let i = 1; i < list.length; i++) {
      assert.ok(
        BigInt(list[i].SequenceNumber) > BigInt(list[i - 1].SequenceNumber),
        `${shardId}: sequence numbers grow in write order`,
      );
    }
  }
});

async function readAll(iterator) {
  const records = [];
  for (let calls = 0; iterator && calls < 20; calls++) {
    const got = await client.send(new GetRecordsCommand({ ShardIterator: iterator }));
    assert.equal(typeof got.MillisBehindLatest, "number");
    records.push(...got.Records);
    iterator = got.NextShardIterator;
    if (got.Records.length === 0) break;
  }
  return records;
}

function assertSameRecords(got, expected, what) {
  assert.equal(got.length, expected.length, `${what}: record count`);
  got.forEach((r, i) => {
    assert.equal(r.SequenceNumber, expected[i].SequenceNumber, `${what} #${i}: SequenceNumber (order)`);
    assert.equal(r.PartitionKey, expected[i].PartitionKey, `${what} #${i}: PartitionKey`);
    assertBytes(r.Data, expected[i].Data, `${what} #${i}`);
    assert.ok(r.ApproximateArrivalTimestamp instanceof Date, `${what} #${i}: ApproximateArrivalTimestamp is a Date`);
  });
}

test("GetShardIterator TRIM_HORIZON + GetRecords: data, keys and order per shard", async () => {
  for (const { ShardId } of shards) {
    const { ShardIterator } = await client.send(
      new GetShardIteratorCommand({ StreamName: STREAM, ShardId, ShardIteratorType: "TRIM_HORIZON" }),
    );
    assert.equal(typeof ShardIterator, "string");
    assert.ok(ShardIterator.length > 0 && ShardIterator.length <= 512, "iterator is 1..512 characters");
    const got = await readAll(ShardIterator);
    assertSameRecords(got, written.get(ShardId) ?? [], ShardId);
  }
});

test("GetShardIterator AFTER_SEQUENCE_NUMBER + GetRecords", async () => {
  const [shardId, list] = [...written.entries()].sort((a, b) => b[1].length - a[1].length)[0];
  assert.ok(list.length >= 3);
  const { ShardIterator } = await client.send(
    new GetShardIteratorCommand({
      StreamName: STREAM,
      ShardId: shardId,
      ShardIteratorType: "AFTER_SEQUENCE_NUMBER",
      StartingSequenceNumber: list[1].SequenceNumber,
    }),
  );
  const got = await readAll(ShardIterator);
  assertSameRecords(got, list.slice(2), `${shardId} after #1`);
});

test("an unknown stream is ResourceNotFoundException, HTTP 400", async () => {
  await assert.rejects(
    client.send(new DescribeStreamSummaryCommand({ StreamName: "no-such-stream" })),
    (err) => {
      assert.equal(err.name, "ResourceNotFoundException");
      assert.ok(err instanceof ResourceNotFoundException, "the modelled exception class");
      assert.equal(err.$metadata.httpStatusCode, 400);
      assert.equal(err.$fault, "client");
      assert.match(err.message, /no-such-stream/);
      return true;
    },
  );
});

test("RegisterStreamConsumer, ACTIVE, then SubscribeToShard over HTTP/2", async () => {
  const registered = await client.send(
    new RegisterStreamConsumerCommand({ StreamARN: streamArn, ConsumerName: CONSUMER }),
  );
  const consumerArn = registered.Consumer.ConsumerARN;
  assert.equal(registered.Consumer.ConsumerName, CONSUMER);
  assert.ok(consumerArn.startsWith(`${streamArn}/consumer/${CONSUMER}:`), consumerArn);

  // Bounded wait for ACTIVE.
  const deadline = Date.now() + 15_000;
  for (;;) {
    const { ConsumerDescription: d } = await client.send(
      new DescribeStreamConsumerCommand({ ConsumerARN: consumerArn }),
    );
    assert.equal(d.ConsumerARN, consumerArn);
    if (d.ConsumerStatus === "ACTIVE") break;
    assert.equal(d.ConsumerStatus, "CREATING");
    assert.ok(Date.now() < deadline, "consumer ACTIVE within 15 s");
    await sleep(200);
  }

  const shardId = shards[0].ShardId;
  const abort = new AbortController();
  const overall = setTimeout(() => abort.abort(), 20_000);
  try {
    const subscribed = await withTimeout(
      client.send(
        new SubscribeToShardCommand({ ConsumerARN: consumerArn, ShardId: shardId, StartingPosition: { Type: "LATEST" } }),
        { abortSignal: abort.signal },
      ),
      15_000,
      "SubscribeToShard response",
    );
    assert.equal(subscribed.$metadata.httpStatusCode, 200);
    assert.ok(subscribed.EventStream, "the response has an EventStream");

    // Records written after subscribing, all to shard 0 (hash key 0 is in its range).
    const entries = Array.from({ length: 6 }, (_, i) => ({
      PartitionKey: `push-${i}`,
      ExplicitHashKey: String(i),
      Data: payload(100 + i),
    }));
    const first = await client.send(
      new PutRecordCommand({ StreamName: STREAM, ...entries[0] }),
    );
    assert.equal(first.ShardId, shardId);
    const rest = await client.send(new PutRecordsCommand({ StreamName: STREAM, Records: entries.slice(1) }));
    assert.equal(rest.FailedRecordCount ?? 0, 0);
    const sequenceNumbers = [first.SequenceNumber, ...rest.Records.map((r) => r.SequenceNumber)];
    rest.Records.forEach((r) => assert.equal(r.ShardId, shardId));

    const received = [];
    let events = 0;
    let lastContinuation;
    const reading = (async () => {
      for await (const event of subscribed.EventStream) {
        const e = event.SubscribeToShardEvent;
        assert.ok(e, `only SubscribeToShardEvent events are expected, got ${Object.keys(event).join(",")}`);
        events += 1;
        assert.match(e.ContinuationSequenceNumber ?? "", /^\d+$/, "every event has a ContinuationSequenceNumber");
        assert.equal(typeof e.MillisBehindLatest, "number");
        received.push(...e.Records);
        lastContinuation = e.ContinuationSequenceNumber;
        if (received.length >= entries.length) break; // leaves the stream (the SDK cancels it)
      }
    })();
    await withTimeout(reading, 15_000, "records over SubscribeToShard");

    assert.equal(received.length, entries.length, "exactly the records written after subscribing");
    received.forEach((r, i) => {
      assert.equal(r.SequenceNumber, sequenceNumbers[i], `pushed #${i}: order`);
      assert.equal(r.PartitionKey, entries[i].PartitionKey, `pushed #${i}: PartitionKey`);
      assertBytes(r.Data, entries[i].Data, `pushed #${i}`);
      assert.ok(r.ApproximateArrivalTimestamp instanceof Date);
    });
    assert.ok(events >= 1);
    assert.ok(
      BigInt(lastContinuation) >= BigInt(sequenceNumbers.at(-1)),
      `the continuation (${lastContinuation}) is at or past the last record (${sequenceNumbers.at(-1)})`,
    );
  } finally {
    clearTimeout(overall);
  }
});

test("a shared HTTP/2 session multiplexes concurrent calls on one connection", async () => {
  const before = tap.connections.length;
  const shared = new NodeHttp2Handler({ disableConcurrentStreams: false, requestTimeout: 15_000 });
  const multiplexing = makeClient(`http://127.0.0.1:${tap.port}`, shared);
  try {
    await multiplexing.send(new DescribeStreamSummaryCommand({ StreamName: STREAM }));
    const puts = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        multiplexing.send(new PutRecordCommand({ StreamName: STREAM, PartitionKey: `mux-${i}`, Data: payload(200 + i) })),
      ),
    );
    puts.forEach((p, i) => assert.equal(p.ShardId, shardFor(`mux-${i}`, shards)));
    const added = tap.connections.slice(before);
    assert.equal(added.length, 1, "one TCP connection for all 11 calls");
    assert.equal(added[0].protocol, "h2");
    assert.equal(added[0].headersFrames, 11);
    assert.equal(added[0].streamIds.size, 11, "11 distinct HTTP/2 streams");
  } finally {
    multiplexing.destroy();
    // Not part of the main client's accounting.
    tap.connections.splice(before);
  }
});

test("Rheo's port directly, without the tap: HTTP/2 calls work the same", async () => {
  const direct = makeClient(
    `http://127.0.0.1:${server.port}`,
    new NodeHttp2Handler({ disableConcurrentStreams: true, requestTimeout: 15_000 }),
  );
  try {
    const listed = await direct.send(new ListStreamsCommand({}));
    assert.ok(listed.StreamNames.includes(STREAM));
    const { StreamDescriptionSummary: s } = await direct.send(new DescribeStreamSummaryCommand({ StreamName: STREAM }));
    assert.equal(s.StreamARN, streamArn);
  } finally {
    direct.destroy();
  }
});

test("DeleteStream with EnforceConsumerDeletion and the StreamNotExists waiter", async () => {
  const deleted = await client.send(new DeleteStreamCommand({ StreamName: STREAM, EnforceConsumerDeletion: true }));
  assert.equal(deleted.$metadata.httpStatusCode, 200);
  const waited = await waitUntilStreamNotExists(
    { client, maxWaitTime: 20, minDelay: 1, maxDelay: 2 },
    { StreamName: STREAM },
  );
  assert.equal(waited.state, "SUCCESS");
});

test("every request of the client went over HTTP/2 (wire tap)", async () => {
  const seen = tap.summary();
  assert.deepEqual(
    seen.otherConnections.map((c) => c.firstBytes.toString("latin1")),
    [],
    "no connection that does not start with the HTTP/2 preface",
  );
  assert.ok(seen.h2Connections >= 1);
  assert.equal(seen.h2Requests, sentRequests, "HTTP/2 requests on the wire = requests the SDK sent");
  for (const op of [
    "CreateStream", "DescribeStreamSummary", "ListShards", "PutRecord", "PutRecords", "GetShardIterator",
    "GetRecords", "RegisterStreamConsumer", "DescribeStreamConsumer", "SubscribeToShard", "DeleteStream",
  ]) {
    assert.ok(sentTargets.has(`Kinesis_20131202.${op}`), `${op} was sent`);
  }
  console.log(
    `wire tap: ${seen.h2Requests} HTTP/2 requests on ${seen.h2Connections} h2c connections, ` +
      `${seen.otherConnections.length} other connections; SDK sent ${sentRequests} requests`,
  );
});

test("rheo serve stops on SIGTERM with exit status 0", async () => {
  client.destroy();
  server.process.kill("SIGTERM");
  const status = await withTimeout(server.exit, 20_000, "rheo serve exit after SIGTERM");
  assert.deepEqual(status, { code: 0, signal: null }, `server log:\n${logTail()}`);
});
