#!/usr/bin/env node
// Benchmark peers for genq (SPEC §8): the same work as genq (HTTP submit,
// persist, dispatch to a simulated backend, record completion, answer status)
// done with BullMQ on Redis or graphile-worker on PostgreSQL.
//
//   node peer.js --kind bullmq|graphile --role api|worker|report|count|reset [options]
//
// See README.md for the options of each role. bench/peers.py drives it.
'use strict';

const http = require('node:http');
const crypto = require('node:crypto');
const { performance } = require('node:perf_hooks');

const MAX_BODY = 1024 * 1024;            // submit body cap, as genq's default
const BACKEND_TIMEOUT_MS = 10 * 60 * 1000; // one backend request, and a ComfyUI poll loop
const SHUTDOWN_GRACE_MS = 5000;          // then exit anyway

// ---------------------------------------------------------------- utilities

function log(msg) {
  process.stderr.write(`peer: ${msg}\n`);
}

function fail(msg) {
  log(msg);
  process.exit(2);
}

function say(line) {
  // stdout is a pipe to the driver: main() waits for it to drain before a
  // one-shot role exits.
  process.stdout.write(line + '\n');
}

// Wall-clock ms with µs resolution (Date.now() has only ms).
function nowMs() {
  return performance.timeOrigin + performance.now();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function parseArgs(argv) {
  const opts = {};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i];
    if (!key.startsWith('--') || i + 1 >= argv.length) fail(`bad argument: ${key}`);
    opts[key.slice(2)] = argv[i + 1];
  }
  return opts;
}

function intOpt(opts, name, dflt) {
  if (opts[name] === undefined) {
    if (dflt === undefined) fail(`--${name} is required`);
    return dflt;
  }
  const n = Number(opts[name]);
  if (!Number.isInteger(n) || n < 0) fail(`--${name} must be a non-negative integer`);
  return n;
}

function requireOpt(opts, name) {
  if (!opts[name]) fail(`--${name} is required`);
  return opts[name];
}

// Runs cleanup once on SIGTERM/SIGINT, then exits 0 (or after a grace period).
function onShutdown(cleanup) {
  let started = false;
  const handler = () => {
    if (started) return;
    started = true;
    setTimeout(() => process.exit(0), SHUTDOWN_GRACE_MS).unref();
    Promise.resolve()
      .then(cleanup)
      .catch((err) => log(`shutdown: ${err.message}`))
      .finally(() => process.exit(0));
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

// ------------------------------------------------------- backend HTTP client

// One keep-alive agent per backend, as many sockets as job slots, so no
// request waits for a socket and none pays a TCP handshake.
function makeBackendClient(baseUrl, maxSockets) {
  const url = new URL(baseUrl);
  const prefix = url.pathname.replace(/\/+$/, '');
  const agent = new http.Agent({ keepAlive: true, maxSockets });

  function once(method, path, payload) {
    return new Promise((resolve, reject) => {
      const body = payload === undefined ? null : Buffer.from(JSON.stringify(payload));
      const headers = body ? { 'Content-Type': 'application/json', 'Content-Length': body.length } : {};
      const req = http.request(
        { host: url.hostname, port: url.port, method, path: prefix + path, headers, agent },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.setTimeout(BACKEND_TIMEOUT_MS, () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on('error', (err) => {
        err.reusedSocket = req.reusedSocket;
        reject(err);
      });
      req.end(body);
    });
  }

  // A kept-alive socket the server closed while idle fails at once with
  // ECONNRESET before the request was read: retry that case once (Node's
  // documented pattern), never anything else.
  async function request(method, path, payload) {
    try {
      return await once(method, path, payload);
    } catch (err) {
      if (err.reusedSocket && err.code === 'ECONNRESET') return once(method, path, payload);
      throw err;
    }
  }

  return { url: baseUrl, request, close: () => agent.destroy() };
}

function parseReply(reply, what) {
  if (reply.status < 200 || reply.status > 299) {
    throw new Error(`${what}: HTTP ${reply.status} ${reply.body.slice(0, 200).replace(/\s+/g, ' ')}`);
  }
  try {
    return JSON.parse(reply.body);
  } catch {
    throw new Error(`${what}: reply is not JSON`);
  }
}

// OpenAI-style backend: one chat completion; the result is the text.
async function runOpenai(client, input) {
  const reply = parseReply(await client.request('POST', '/v1/chat/completions', input), 'chat completion');
  const content = reply?.choices?.[0]?.message?.content;
  if (typeof content !== 'string') throw new Error('chat completion: no choices[0].message.content');
  return content;
}

function comfyError(entry) {
  const messages = entry?.status?.messages || [];
  const err = messages.find((m) => m[0] === 'execution_error');
  return String(err?.[1]?.exception_message || 'execution error').trim();
}

// ComfyUI backend: queue the prompt, then poll its history entry, as a
// ComfyUI client without the WebSocket does. The result is its outputs.
async function runComfy(client, input, pollMs, clientId) {
  const prompt = input.workflow ?? input;
  const queued = parseReply(await client.request('POST', '/prompt', { prompt, client_id: clientId }), 'POST /prompt');
  const id = queued.prompt_id;
  if (typeof id !== 'string') throw new Error('POST /prompt: no prompt_id');
  const deadline = Date.now() + BACKEND_TIMEOUT_MS;
  for (;;) {
    await sleep(pollMs);
    const history = parseReply(await client.request('GET', `/history/${id}`), 'GET /history');
    const status = history[id]?.status?.status_str;
    if (status === 'success') return JSON.stringify(history[id].outputs ?? {});
    if (status === 'error') throw new Error(`prompt ${id}: ${comfyError(history[id])}`);
    if (Date.now() > deadline) throw new Error(`prompt ${id}: not finished after 10 minutes`);
  }
}

// The per-backend job function both queue systems call with a job's input.
function makeJobRunner(opts, backendUrl, slots) {
  const type = requireOpt(opts, 'backend-type');
  const pollMs = intOpt(opts, 'poll-ms', 20);
  const clientId = crypto.randomUUID();
  const client = makeBackendClient(backendUrl, slots);
  let runOne;
  if (type === 'openai') runOne = (input) => runOpenai(client, input);
  else if (type === 'comfyui') runOne = (input) => runComfy(client, input, pollMs, clientId);
  else fail(`--backend-type must be openai or comfyui, not ${type}`);

  const run = async (jobId, input) => {
    try {
      if (input === null || typeof input !== 'object') throw new Error('job has no input object');
      return await runOne(input);
    } catch (err) {
      log(`job ${jobId} failed on ${backendUrl}: ${err.message}`);
      throw err;
    }
  };
  return { run, close: client.close };
}

// One consumer for every backend (--shape pooled): each job goes to the
// backend with the fewest jobs in flight. The consumer's concurrency is the
// sum of the backends' slots, so a backend with a free slot always exists
// and none ever has more than its share.
function makeBackendPool(opts, backends, slots) {
  const members = backends.map((url) => ({ runner: makeJobRunner(opts, url, slots), busy: 0 }));
  const run = async (jobId, input) => {
    const m = members.reduce((a, b) => (b.busy < a.busy ? b : a));
    m.busy++;
    try {
      return await m.runner.run(jobId, input);
    } finally {
      m.busy--;
    }
  };
  return { run, close: () => members.forEach((m) => m.runner.close()) };
}

// --shape per-backend (default): a consumer per backend with its slots;
// pooled: one consumer for all (makeBackendPool). [{runner, concurrency}].
function consumers(opts) {
  const backends = backendList(opts);
  const slots = intOpt(opts, 'per-backend');
  const shape = opts.shape || 'per-backend';
  if (shape === 'pooled') {
    return [{ runner: makeBackendPool(opts, backends, slots), concurrency: slots * backends.length }];
  }
  if (shape !== 'per-backend') fail('--shape must be per-backend or pooled');
  return backends.map((url) => ({ runner: makeJobRunner(opts, url, slots), concurrency: slots }));
}

function backendList(opts) {
  const list = requireOpt(opts, 'backends').split(',').filter(Boolean);
  if (list.length === 0) fail('--backends is empty');
  return list;
}

// --------------------------------------------------------------- API server

class HttpError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function sendJson(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function sendError(res, err) {
  const status = err.status || 500;
  if (status === 413) res.setHeader('Connection', 'close'); // the rest of the body is not read
  sendJson(res, status, { error: { code: err.code || 'internal', message: err.message } });
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length']) > MAX_BODY) {
      reject(new HttpError(413, 'payload_too_large', 'body over 1 MiB'));
      return;
    }
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        req.removeAllListeners('data');
        reject(new HttpError(413, 'payload_too_large', 'body over 1 MiB'));
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseSubmit(raw) {
  let body;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new HttpError(400, 'bad_request', 'body is not JSON');
  }
  const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!isObject(body)) throw new HttpError(400, 'bad_request', 'body must be a JSON object');
  if (typeof body.queue !== 'string' || body.queue === '') throw new HttpError(400, 'bad_request', 'queue is required');
  if (!isObject(body.input)) throw new HttpError(400, 'bad_request', 'input must be an object');
  return { queue: body.queue, input: body.input };
}

// store: { add(queue, input) -> id, get(id) -> null | {status, output, error} }
async function route(req, res, store) {
  const path = req.url.split('?')[0];
  if (path === '/v1/jobs') {
    if (req.method !== 'POST') throw new HttpError(405, 'method_not_allowed', 'use POST');
    const { queue, input } = parseSubmit(await readBody(req));
    const id = await store.add(queue, input);
    sendJson(res, 201, { id: String(id), status: 'queued' });
    return;
  }
  if (path.startsWith('/v1/jobs/')) {
    if (req.method !== 'GET') throw new HttpError(405, 'method_not_allowed', 'use GET');
    let id = '';
    try {
      id = decodeURIComponent(path.slice('/v1/jobs/'.length));
    } catch {
      // malformed %-escape: no such job
    }
    const job = id ? await store.get(id) : null;
    if (!job) throw new HttpError(404, 'not_found', 'no such job');
    sendJson(res, 200, { id, status: job.status, output: job.output ?? null, ...(job.error ? { error: job.error } : {}) });
    return;
  }
  throw new HttpError(404, 'not_found', 'no such route');
}

function startApi(opts, store) {
  const server = http.createServer((req, res) => {
    route(req, res, store).catch((err) => {
      if (!err.status) log(`${req.method} ${req.url}: ${err.message}`);
      if (!res.headersSent) sendError(res, err);
    });
  });
  // Benchmark clients keep connections open; don't close them under load.
  server.keepAliveTimeout = 65000;
  server.headersTimeout = 66000;
  server.listen(intOpt(opts, 'port', 0), '127.0.0.1', () => say(`listening port=${server.address().port}`));
  server.on('error', (err) => fail(`listen: ${err.message}`));
  onShutdown(async () => {
    await new Promise((resolve) => {
      server.close(resolve);
      server.closeIdleConnections();
    });
    await store.close();
  });
}

// ------------------------------------------------------------------- BullMQ

const BULL_QUEUE = 'bench';
const BULL_STATES = {
  waiting: 'queued', delayed: 'queued', prioritized: 'queued', 'waiting-children': 'queued',
  active: 'running', completed: 'succeeded', failed: 'failed',
};

const bullmq = {
  connection(opts) {
    return { url: requireOpt(opts, 'redis') };
  },

  queue(opts) {
    const { Queue } = require('bullmq');
    const queue = new Queue(BULL_QUEUE, {
      connection: this.connection(opts),
      // Kept after they finish: that is the recorded completion.
      defaultJobOptions: { attempts: 1, removeOnComplete: false, removeOnFail: false },
    });
    queue.on('error', (err) => log(`redis: ${err.message}`));
    return queue;
  },

  async api(opts) {
    const { Job } = require('bullmq');
    const queue = this.queue(opts);
    await queue.waitUntilReady();
    startApi(opts, {
      async add(name, input) {
        const job = await queue.add('run', { queue: name, input });
        return job.id;
      },
      async get(id) {
        const job = await Job.fromId(queue, id);
        if (!job) return null;
        const status = BULL_STATES[await job.getState()] || 'queued';
        return {
          status,
          output: status === 'succeeded' ? job.returnvalue : null,
          error: status === 'failed' ? job.failedReason : undefined,
        };
      },
      close: () => queue.close(),
    });
  },

  async worker(opts) {
    const { Worker } = require('bullmq');
    const workers = [];
    const runners = [];
    for (const { runner, concurrency } of consumers(opts)) {
      const worker = new Worker(BULL_QUEUE, (job) => runner.run(job.id, job.data.input), {
        connection: { ...this.connection(opts), maxRetriesPerRequest: null },
        concurrency,
      });
      worker.on('error', (err) => log(`worker: ${err.message}`));
      workers.push(worker);
      runners.push(runner);
    }
    await Promise.all(workers.map((w) => w.waitUntilReady()));
    say('ready');
    onShutdown(async () => {
      await Promise.all(workers.map((w) => w.close()));
      runners.forEach((r) => r.close());
    });
  },

  async report(opts) {
    const queue = this.queue(opts);
    const counts = await queue.getJobCounts('completed', 'failed');
    const runs = [];
    const page = 1000;
    for (const state of ['completed', 'failed']) {
      for (let start = 0; start < counts[state]; start += page) {
        for (const job of await queue.getJobs([state], start, start + page - 1, true)) {
          if (job && job.processedOn && job.finishedOn) runs.push([job.processedOn, job.finishedOn]);
        }
      }
    }
    runs.sort((a, b) => a[0] - b[0]);
    say(JSON.stringify({ done: counts.completed, failed: counts.failed, runs }));
    await queue.close();
  },

  async counts(queue) {
    const c = await queue.getJobCounts(
      'completed', 'failed', 'active', 'waiting', 'paused', 'delayed', 'prioritized', 'waiting-children');
    const pending = c.active + c.waiting + c.paused + c.delayed + c.prioritized + c['waiting-children'];
    return { done: c.completed, failed: c.failed, pending };
  },

  async count(opts) {
    const queue = this.queue(opts);
    await watchCounts(opts, () => this.counts(queue));
    await queue.close();
  },

  async reset(opts) {
    const queue = this.queue(opts);
    await queue.obliterate({ force: true });
    await queue.close();
  },
};

// ---------------------------------------------------------- graphile-worker

// graphile-worker deletes a job when it succeeds, so the task records every
// finished job here (the equivalent of genq marking it succeeded/failed).
const RESULTS_DDL = `CREATE TABLE IF NOT EXISTS bench_results (
  job_id bigint PRIMARY KEY, started_at timestamptz(6), finished_at timestamptz(6),
  ok boolean, output text)`;

const RECORD_SQL = `INSERT INTO bench_results (job_id, started_at, finished_at, ok, output)
  VALUES ($1::bigint, to_timestamp($2::float8 / 1000), to_timestamp($3::float8 / 1000), $4, $5)
  ON CONFLICT (job_id) DO UPDATE SET started_at = EXCLUDED.started_at,
    finished_at = EXCLUDED.finished_at, ok = EXCLUDED.ok, output = EXCLUDED.output`;

// max_attempts 1: no retry, so failures show, as with BullMQ's attempts 1.
const ADD_SQL = `SELECT id FROM graphile_worker.add_job('run', $1::json, max_attempts := 1)`;

// In this version the jobs live in graphile_worker._private_jobs (the
// graphile_worker.jobs view joins it with tasks and queues; not needed here).
// A running job is locked; a finished one is in bench_results.
const STATUS_SQL = `SELECT r.ok, r.output, j.id IS NOT NULL AS present,
    j.locked_at IS NOT NULL AS locked, j.attempts >= j.max_attempts AS exhausted, j.last_error
  FROM (SELECT $1::bigint AS id) k
  LEFT JOIN bench_results r ON r.job_id = k.id
  LEFT JOIN graphile_worker._private_jobs j ON j.id = k.id`;

const COUNT_SQL = `SELECT
    (SELECT count(*) FILTER (WHERE ok) FROM bench_results)::int AS done,
    (SELECT count(*) FILTER (WHERE NOT ok) FROM bench_results)::int AS failed,
    (SELECT count(*) FROM graphile_worker._private_jobs
      WHERE locked_at IS NOT NULL OR attempts < max_attempts)::int AS pending`;

const REPORT_SQL = `SELECT (extract(epoch FROM started_at) * 1000)::float8 AS s,
    (extract(epoch FROM finished_at) * 1000)::float8 AS e
  FROM bench_results ORDER BY started_at`;

function graphileStatus(row) {
  if (row.ok !== null) {
    return row.ok ? { status: 'succeeded', output: row.output } : { status: 'failed', error: row.output };
  }
  if (!row.present) return null;
  if (row.locked) return { status: 'running' };
  if (row.exhausted) return { status: 'failed', error: row.last_error };
  return { status: 'queued' };
}

// graphile-worker's default logger writes a line per job to stdout; keep
// warnings and errors (stderr), but not the per-job failure lines, which
// makeJobRunner already logged.
function graphileLogger() {
  const { Logger } = require('graphile-worker');
  return new Logger(() => (level, message) => {
    if (level !== 'error' && level !== 'warning') return;
    if (message.startsWith('Failed task')) return;
    log(`graphile ${level}: ${message.split('\n')[0]}`);
  });
}

const graphile = {
  pool(opts, max = 10) {
    const { Pool } = require('pg');
    const pool = new Pool({ connectionString: requireOpt(opts, 'pg'), max });
    pool.on('error', (err) => log(`postgres: ${err.message}`));
    return pool;
  },

  async createResults(db) {
    try {
      await db.query(RESULTS_DDL);
    } catch (err) {
      // api and worker may create it at the same time; the loser sees a duplicate.
      if (err.code !== '23505' && err.code !== '42P07') throw err;
    }
  },

  async api(opts) {
    const { runMigrations } = require('graphile-worker');
    await runMigrations({ connectionString: requireOpt(opts, 'pg'), logger: graphileLogger() });
    const pool = this.pool(opts, intOpt(opts, 'pool-size', 10));
    await this.createResults(pool);
    startApi(opts, {
      async add(queue, input) {
        const { rows } = await pool.query({ name: 'add', text: ADD_SQL, values: [JSON.stringify({ queue, input })] });
        return rows[0].id;
      },
      async get(id) {
        if (!/^[0-9]{1,18}$/.test(id)) return null;
        const { rows } = await pool.query({ name: 'status', text: STATUS_SQL, values: [id] });
        return graphileStatus(rows[0]);
      },
      close: () => pool.end(),
    });
  },

  makeTask(runner) {
    return async (payload, helpers) => {
      const jobId = helpers.job.id;
      const started = nowMs();
      let ok = true;
      let output;
      let error;
      try {
        output = await runner.run(jobId, payload && payload.input);
      } catch (err) {
        ok = false;
        error = err;
        output = err.message;
      }
      const values = [jobId, started, nowMs(), ok, output];
      await helpers.withPgClient((client) => client.query({ name: 'record', text: RECORD_SQL, values }));
      if (!ok) throw error;
    };
  },

  async worker(opts) {
    const { run } = require('graphile-worker');
    const connectionString = requireOpt(opts, 'pg');
    const logger = graphileLogger();
    const runners = [];
    const pools = [];
    // --batch N: graphile-worker's own batching (its docs' "Performance"):
    // N jobs fetched and locked at once into a local queue, completions
    // written together. Faster, but a crashed worker's batch runs again
    // once its locks expire, which is why it is not the default.
    const batch = intOpt(opts, 'batch', 0);
    const preset = batch > 1 ? {
      worker: { localQueue: { size: batch }, completeJobBatchDelay: 0, failJobBatchDelay: 0 },
    } : undefined;
    for (const { runner, concurrency } of consumers(opts)) {
      runners.push(runner);
      pools.push(await run({
        preset,
        connectionString,
        // A connection per job slot, plus one for LISTEN and one spare (its
        // default of 10 would throttle more than 8 slots).
        maxPoolSize: concurrency + 2,
        concurrency,
        noHandleSignals: true,
        pollInterval: 1000, // new jobs arrive by LISTEN/NOTIFY; polling is the fallback
        logger,
        taskList: { run: this.makeTask(runner) },
      }));
    }
    // After run(), so the schema exists (run() migrates it).
    const pool = this.pool(opts, 1);
    await this.createResults(pool);
    await pool.end();
    say('ready');
    onShutdown(async () => {
      await Promise.all(pools.map((p) => p.stop()));
      runners.forEach((r) => r.close());
    });
  },

  async report(opts) {
    const pool = this.pool(opts, 1);
    await this.createResults(pool);
    const counts = (await pool.query(COUNT_SQL)).rows[0];
    const { rows } = await pool.query({ text: REPORT_SQL, rowMode: 'array' });
    say(JSON.stringify({ done: counts.done, failed: counts.failed, runs: rows }));
    await pool.end();
  },

  async count(opts) {
    const pool = this.pool(opts, 1);
    await watchCounts(opts, async () => {
      try {
        const { done, failed, pending } = (await pool.query({ name: 'count', text: COUNT_SQL })).rows[0];
        return { done, failed, pending };
      } catch (err) {
        if (err.code === '42P01') return { done: 0, failed: 0, pending: 0 }; // no tables yet
        throw err;
      }
    });
    await pool.end();
  },

  async reset(opts) {
    const pool = this.pool(opts, 1);
    await this.createResults(pool);
    await pool.query('TRUNCATE bench_results');
    await pool.query('DELETE FROM graphile_worker._private_jobs').catch((err) => {
      if (err.code !== '42P01') throw err; // no schema yet: nothing to delete
    });
    await pool.end();
  },
};

// ----------------------------------------------------------------- counting

// One line by default. With --watch MS: a line every MS ms until SIGTERM,
// which costs far less than starting Node (and a driver) for every poll.
async function watchCounts(opts, countOnce) {
  const every = intOpt(opts, 'watch', 0);
  if (!every) {
    say(JSON.stringify(await countOnce()));
    return;
  }
  let stop = false;
  const halt = () => { stop = true; };
  process.on('SIGTERM', halt);
  process.on('SIGINT', halt);
  while (!stop) {
    const started = Date.now();
    say(JSON.stringify(await countOnce()));
    await sleep(Math.max(0, every - (Date.now() - started)));
  }
}

// ---------------------------------------------------------------------- main

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const kinds = { bullmq, graphile };
  const kind = kinds[opts.kind];
  if (!kind) fail('--kind must be bullmq or graphile');
  const roles = ['api', 'worker', 'report', 'count', 'reset'];
  if (!roles.includes(opts.role)) fail(`--role must be one of ${roles.join(', ')}`);
  await kind[opts.role](opts);
  return opts.role;
}

main().then(
  (role) => {
    // One-shot roles end here, once stdout has taken everything (a pipe
    // takes 64 KiB at a time, and a report is larger); api and worker keep
    // serving until SIGTERM.
    if (role !== 'api' && role !== 'worker') process.stdout.write('', () => process.exit(0));
  },
  (err) => fail(err.stack || err.message),
);
