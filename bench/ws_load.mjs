// Load generator for bench/run.py: WebSocket (npm `ws`) or raw TCP echo clients.
//
//   node bench/ws_load.mjs <scenario> --url ws://127.0.0.1:PORT/ --pid PID [options]
//
// Scenarios: rtt (1 connection, one message in flight), flood (--conns x --inflight
// messages in flight), big (1 connection, --size bytes, one in flight), handshake
// (--concurrency workers doing connect + close), idle (--conns idle connections,
// server RSS before/after). With --tcp the URL is tcp://host:port and the peer is a
// framing-free byte echo: a "message" is --size bytes coming back.
//
// The server's CPU time is read from /proc/PID/stat at the start and the end of the
// measured window (after --warmup seconds); one JSON object is printed on stdout.

import { readFileSync } from "node:fs";
import net from "node:net";
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";

const DEFAULTS = {
  url: "",
  pid: 0,
  tcp: false,
  deflate: false,
  text: false,
  size: 32,
  conns: 100,
  inflight: 10,
  concurrency: 1,
  warmup: 1,
  duration: 3,
  "clk-tck": 100,
};

function parseArgs(argv) {
  const [scenario, ...rest] = argv;
  const opts = { ...DEFAULTS };
  for (let i = 0; i < rest.length; i++) {
    const key = rest[i].replace(/^--/, "");
    if (!(key in DEFAULTS)) throw new Error(`unknown option --${key}`);
    if (typeof DEFAULTS[key] === "boolean") opts[key] = true;
    else if (typeof DEFAULTS[key] === "number") opts[key] = Number(rest[++i]);
    else opts[key] = rest[++i];
  }
  return { scenario, opts };
}

// -- the server process, seen through /proc --------------------------------------

function serverCpu(pid, clkTck) {
  // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: Number(fields[11]) / clkTck, sys: Number(fields[12]) / clkTck };
}

// Busy time of the whole machine, in seconds summed over CPUs (everything but idle and iowait).
function machineBusy(clkTck) {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0];
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  return (total - ticks[3] - ticks[4]) / clkTck;
}

function serverRssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)[1]);
}

// -- connections: one interface over WebSocket and raw TCP -------------------------

class Failures {
  constructor() {
    this.count = 0;
    this.first = null;
  }
  add(what) {
    this.count++;
    if (this.first === null) this.first = String(what);
  }
}

function openWebSocket(opts, failures) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(opts.url, {
      perMessageDeflate: opts.deflate,
      maxPayload: 64 * 1024 * 1024,
    });
    const conn = {
      onMessage: () => {},
      send: (payload) => ws.send(payload, { binary: !opts.text }),
      close: () =>
        new Promise((done) => {
          if (ws.readyState === WebSocket.CLOSED) return done();
          ws.once("close", done);
          ws.close(1000);
        }),
    };
    ws.on("message", (data) => {
      if (data.length !== opts.size) failures.add(`echo of ${data.length} bytes`);
      conn.onMessage();
    });
    ws.once("open", () => resolve(conn));
    ws.on("error", (err) => {
      failures.add(err.message);
      reject(err);
    });
    ws.on("close", (code) => {
      if (code !== 1000 && code !== 1005) failures.add(`closed with ${code}`);
    });
  });
}

function openTcp(opts, failures) {
  const { hostname, port } = new URL(opts.url);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: hostname, port: Number(port), noDelay: true });
    let pending = 0; // bytes received and not yet counted as a whole message
    const conn = {
      onMessage: () => {},
      send: (payload) => sock.write(payload),
      close: () =>
        new Promise((done) => {
          sock.once("close", done);
          sock.end();
        }),
    };
    sock.on("data", (chunk) => {
      pending += chunk.length;
      while (pending >= opts.size) {
        pending -= opts.size;
        conn.onMessage();
      }
    });
    sock.once("connect", () => resolve(conn));
    sock.on("error", (err) => {
      failures.add(err.message);
      reject(err);
    });
  });
}

function payload(opts) {
  if (opts.text) return "x".repeat(opts.size);
  return randomBytes(opts.size);
}

async function openMany(opts, failures, count, parallel = 50) {
  const open = opts.tcp ? openTcp : openWebSocket;
  const conns = [];
  for (let i = 0; i < count; i += parallel) {
    const batch = Array.from({ length: Math.min(parallel, count - i) }, () =>
      open(opts, failures),
    );
    conns.push(...(await Promise.all(batch)));
  }
  return conns;
}

async function closeAll(conns) {
  await Promise.race([Promise.all(conns.map((c) => c.close())), sleep(5000)]);
}

// -- the measured window -------------------------------------------------------------

async function measureWindow(opts, counter) {
  await sleep(opts.warmup * 1000);
  const cpu0 = serverCpu(opts.pid, opts["clk-tck"]);
  const busy0 = machineBusy(opts["clk-tck"]);
  const me0 = process.cpuUsage();
  const n0 = counter.n;
  const t0 = performance.now();
  await sleep(opts.duration * 1000);
  const n1 = counter.n;
  const t1 = performance.now();
  const cpu1 = serverCpu(opts.pid, opts["clk-tck"]);
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

async function echoLoad(opts, failures, conns, inflight) {
  const counter = { n: 0 };
  let running = true;
  const data = payload(opts);
  for (const conn of conns) {
    conn.onMessage = () => {
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

async function rtt(opts, failures) {
  const conns = await openMany(opts, failures, 1);
  return echoLoad(opts, failures, conns, 1);
}

async function flood(opts, failures) {
  const conns = await openMany(opts, failures, opts.conns);
  return { conns: opts.conns, inflight: opts.inflight, ...(await echoLoad(opts, failures, conns, opts.inflight)) };
}

async function handshake(opts, failures) {
  const counter = { n: 0 };
  let running = true;
  async function worker() {
    while (running) {
      try {
        const [conn] = await openMany(opts, failures, 1);
        await conn.close();
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

async function idle(opts, failures) {
  // Warm the server's code paths and allocator first, then count only the idle ones.
  await closeAll(await openMany(opts, failures, 20));
  await sleep(500);
  const before = serverRssKiB(opts.pid);
  const t0 = performance.now();
  const conns = await openMany(opts, failures, opts.conns);
  const openSeconds = (performance.now() - t0) / 1000;
  await sleep(1000);
  const after = serverRssKiB(opts.pid);
  await closeAll(conns);
  return {
    conns: opts.conns,
    rss_before_kib: before,
    rss_after_kib: after,
    kib_per_conn: (after - before) / opts.conns,
    open_seconds: openSeconds,
  };
}

const SCENARIOS = { rtt, flood, big: rtt, handshake, idle };

async function main() {
  const { scenario, opts } = parseArgs(process.argv.slice(2));
  const run = SCENARIOS[scenario];
  if (!run) throw new Error(`unknown scenario ${scenario}: ${Object.keys(SCENARIOS)}`);
  const failures = new Failures();
  const result = await run(opts, failures);
  result.failures = failures.count;
  result.first_failure = failures.first;
  process.stdout.write(`${JSON.stringify({ scenario, ...result })}\n`);
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
