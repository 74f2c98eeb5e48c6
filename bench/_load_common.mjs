// What the node load generators of bench/ share: options, /proc readings, failures,
// batches of connections, the measured window and the scenarios built on it, and
// the one JSON line a load generator prints.
//
// Imported by ws_load.mjs (npm `ws`), eio_load.mjs and eio_load_clients.mjs (npm
// `engine.io-client`), eio_client_node.mjs and eio_node_server.mjs. A "connection"
// here is any object with send(data), close() (a promise) and an onMessage(data)
// callback that the scenarios set.

import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";

// `--key value` options; a key must be in `defaults`, whose value's type decides the
// option's: a number, a string, or a boolean (a flag, no value).
export function parseArgs(argv, defaults) {
  const opts = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in defaults)) throw new Error(`unknown option --${key}`);
    if (typeof defaults[key] === "boolean") opts[key] = true;
    else if (typeof defaults[key] === "number") opts[key] = Number(argv[++i]);
    else opts[key] = argv[++i];
  }
  return opts;
}

// -- processes, seen through /proc -----------------------------------------------------

// User and system CPU seconds of process `pid` (or "self") so far.
export function processCpu(pid, clkTck) {
  // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: Number(fields[11]) / clkTck, sys: Number(fields[12]) / clkTck };
}

// Busy time of the whole machine, in seconds summed over CPUs (everything but idle and iowait).
export function machineBusy(clkTck) {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0];
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  return (total - ticks[3] - ticks[4]) / clkTck;
}

// -- connections -----------------------------------------------------------------------

// Everything unexpected (errors, closes nobody asked for, wrong echoes): a count and the first.
export class Failures {
  constructor() {
    this.count = 0;
    this.first = null;
  }
  add(what) {
    this.count++;
    if (this.first === null) this.first = String(what);
  }
}

// `count` calls of `start()`, `size` at a time; the results of all, in order.
export async function inBatches(count, size, start) {
  const results = [];
  for (let i = 0; i < count; i += size) {
    const batch = Array.from({ length: Math.min(size, count - i) }, () => start());
    results.push(...(await Promise.all(batch)));
  }
  return results;
}

// Close every connection; give up waiting after 5 s.
export async function closeAll(conns) {
  await Promise.race([Promise.all(conns.map((c) => c.close())), sleep(5000)]);
}

// -- the measured window -------------------------------------------------------------

// After --warmup s, --duration s during which `counter.n` counts operations: their rate,
// and the CPU of the server (--pid), of this process and of everything else.
export async function measureWindow(opts, counter) {
  await sleep(opts.warmup * 1000);
  const cpu0 = processCpu(opts.pid, opts["clk-tck"]);
  const busy0 = machineBusy(opts["clk-tck"]);
  const me0 = process.cpuUsage();
  const n0 = counter.n;
  const t0 = performance.now();
  await sleep(opts.duration * 1000);
  const n1 = counter.n;
  const t1 = performance.now();
  const cpu1 = processCpu(opts.pid, opts["clk-tck"]);
  const busy1 = machineBusy(opts["clk-tck"]);
  const me = process.cpuUsage(me0);
  const seconds = (t1 - t0) / 1000;
  const ops = n1 - n0;
  const user = cpu1.user - cpu0.user;
  const sys = cpu1.sys - cpu0.sys;
  const client = (me.user + me.system) / 1e6 / seconds;
  const machine = (busy1 - busy0) / seconds;
  return {
    ops,
    seconds,
    rate: ops / seconds,
    server_cpu_s: user + sys,
    server_user_s: user,
    server_sys_s: sys,
    server_cpu_util: (user + sys) / seconds,
    client_cpu_util: client,
    // CPUs kept busy by anything but the server and this process: other programs, and
    // kernel work (interrupts, softirqs) that the two were not charged for.
    other_cpu: machine - (user + sys) / seconds - client,
    cpu_us_per_op: ops ? ((user + sys) * 1e6) / ops : null,
  };
}

// -- scenarios -------------------------------------------------------------------

// Every connection keeps `inflight` copies of `data` in flight (a new one sent for each
// echo, after `check(echo)`) through the measured window; then all close.
export async function echoLoad(opts, conns, inflight, data, check = () => {}) {
  const counter = { n: 0 };
  let running = true;
  for (const conn of conns) {
    conn.onMessage = (echo) => {
      check(echo);
      counter.n++;
      if (running) conn.send(data);
    };
    for (let i = 0; i < inflight; i++) conn.send(data);
  }
  const result = await measureWindow(opts, counter);
  running = false;
  await sleep(200); // let the last messages in flight come back before closing
  await closeAll(conns);
  return result;
}

// --concurrency workers, each calling `openAndClose()` in a loop: handshakes per second.
export async function handshakeLoad(opts, openAndClose) {
  const counter = { n: 0 };
  let running = true;
  async function worker() {
    while (running) {
      try {
        await openAndClose();
        counter.n++;
      } catch {
        await sleep(10); // counted in failures; do not spin on a refusing server
      }
    }
  }
  const workers = Array.from({ length: opts.concurrency }, worker);
  const result = await measureWindow(opts, counter);
  running = false;
  await Promise.race([Promise.all(workers), sleep(5000)]);
  return { concurrency: opts.concurrency, ...result };
}

// -- the command line ------------------------------------------------------------------

// Print `value` as one JSON line on stdout; then `done()` once it is written.
export function printJson(value, done = () => {}) {
  process.stdout.write(`${JSON.stringify(value)}\n`, done);
}

// `node script.mjs <scenario> [--options]`: run `scenarios[scenario](opts, failures)` and
// print its result as one JSON line, led by the scenario and `head(opts)` (which may
// also reject the options by throwing); exit 1 with the stack on stderr on an error.
export function runScenario(scenarios, defaults, head = () => ({})) {
  async function main() {
    const [scenario, ...rest] = process.argv.slice(2);
    const opts = parseArgs(rest, defaults);
    const run = scenarios[scenario];
    if (!run) throw new Error(`unknown scenario ${scenario}: ${Object.keys(scenarios)}`);
    const lead = { scenario, ...head(opts) };
    const failures = new Failures();
    const result = await run(opts, failures);
    result.failures = failures.count;
    result.first_failure = failures.first;
    printJson({ ...lead, ...result });
    process.exit(0);
  }
  main().catch((err) => {
    process.stderr.write(`${err.stack || err}\n`);
    process.exit(1);
  });
}

export { sleep };
