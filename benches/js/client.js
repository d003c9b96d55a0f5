// The JavaScript side of `cargo bench --bench load`: Kill Bill's official JavaScript client
// (the npm package `killbill`, axios underneath) making the same calls as the Rust client, at
// the given concurrency, over keep-alive connections (at most 16 idle kept, as the Rust pool).
//
// Enable it once with `cd benches/js && npm install`; the harness runs it only when
// `node_modules/killbill` is there, and never installs anything itself.
//
// Usage: node client.js '<json>' where the JSON gives
//   { url, op: "get" | "post", concurrency, secs, warmup_secs,
//     subscription_id, unit_type, start_date, end_date, record }
// Prints one line of JSON: calls, errors, elapsed_s, p50_us, p99_us, cpu_s (process.cpuUsage,
// user + system, over the measured period only), first_error.
'use strict';

const http = require('http');
const crypto = require('crypto');

let killbill;
let axios;
try {
  killbill = require('killbill');
  axios = require('axios');
} catch (e) {
  console.log(JSON.stringify({ skipped: `the npm package killbill is not installed (${e.code || e.message})` }));
  process.exit(0);
}

const args = JSON.parse(process.argv[2]);
const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 16 });
const instance = axios.create({ httpAgent: agent });
const configuration = new killbill.Configuration({
  basePath: args.url,
  username: 'admin',
  password: 'password',
  apiKey: (name) => (name === 'X-Killbill-ApiKey' ? 'bob' : 'lazar'),
});
const usage = new killbill.UsageApi(configuration, args.url, instance);

const call =
  args.op === 'get'
    ? () => usage.getUsage(args.subscription_id, args.unit_type, args.start_date, args.end_date)
    : // A tracking id per call, as the Rust client generates one.
      () => usage.recordUsage({ ...args.record, trackingId: crypto.randomUUID() }, 'killbill-usage');

async function drive(secs, latencies) {
  const end = performance.now() + secs * 1000;
  const state = { calls: 0, errors: 0, firstError: null };
  const worker = async () => {
    while (performance.now() < end) {
      const started = process.hrtime.bigint();
      try {
        await call();
        if (latencies) latencies.push(Number(process.hrtime.bigint() - started));
        state.calls += 1;
      } catch (e) {
        state.errors += 1;
        if (state.firstError === null) state.firstError = String(e);
      }
    }
  };
  await Promise.all(Array.from({ length: args.concurrency }, worker));
  return state;
}

async function main() {
  await drive(args.warmup_secs, null);
  const latencies = [];
  const cpu = process.cpuUsage();
  const started = performance.now();
  const state = await drive(args.secs, latencies);
  const elapsed = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  latencies.sort((a, b) => a - b);
  const at = (q) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] / 1000 : 0);
  console.log(
    JSON.stringify({
      calls: state.calls,
      errors: state.errors,
      elapsed_s: elapsed,
      p50_us: at(0.5),
      p99_us: at(0.99),
      cpu_s: (used.user + used.system) / 1e6,
      first_error: state.firstError,
    }),
  );
  agent.destroy();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
