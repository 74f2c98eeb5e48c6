// Load generator of bench/eio_server_run.py: the official npm `engine.io-client`.
//
//   node bench/eio_load.mjs <scenario> --url http://127.0.0.1:PORT --pid PID
//                           --transport websocket|polling [options]
//
// The client is forced onto one transport: transports ["websocket"], or ["polling"]
// with upgrade false. Polling clients get a keep-alive http.Agent each (as a browser
// keeps its connections; engine.io-client's default in node opens a TCP connection per
// request). Scenarios:
//   rtt        1 client, one message in flight: round trips/s
//   flood      --conns clients x --inflight messages in flight (a new one sent per echo)
//   handshake  --concurrency workers, each opening a session and closing it, in a loop
// Messages are --size characters of text. The server's CPU time is read from
// /proc/PID/stat at the start and the end of the measured window (after --warmup s);
// one JSON object is printed on stdout, with the fields of bench/ws_load.mjs.
//
// bench/eio_load_clients.mjs imports the helpers exported here.

import { readFileSync } from "node:fs";
import http from "node:http";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import { Socket } from "engine.io-client";

const DEFAULTS = {
  url: "",
  pid: 0,
  transport: "websocket",
  size: 32,
  conns: 100,
  inflight: 10,
  concurrency: 1,
  warmup: 1,
  duration: 3,
  "clk-tck": 100,
};

export function parseArgs(argv, defaults) {
  const opts = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in defaults)) throw new Error(`unknown option --${key}`);
    if (typeof defaults[key] === "number") opts[key] = Number(argv[++i]);
    else opts[key] = argv[++i];
  }
  return opts;
}

// -- the server process, seen through /proc --------------------------------------

export function serverCpu(pid, clkTck) {
  // Fields after the ")" that ends the command name: utime is field 14, stime 15.
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

// -- one Engine.IO session ---------------------------------------------------------

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

// Open a session on `transport`; resolves to
// { socket, send(data), close(), onMessage } once the handshake is done.
// Anything unexpected (an error, a close we did not ask for) is added to `failures`.
export function openSession(url, transport, failures) {
  const agent = transport === "polling" ? new http.Agent({ keepAlive: true }) : false;
  const socket = new Socket(url, { transports: [transport], upgrade: false, agent });
  const session = {
    socket,
    closing: false,
    onMessage: () => {},
    send: (data) => socket.send(data),
    close: () => closeSession(session, agent),
  };
  return new Promise((resolve, reject) => {
    socket.once("open", () => resolve(session));
    socket.on("message", (data) => session.onMessage(data));
    socket.on("error", (err) => {
      failures.add(`error: ${err && err.message}`);
      reject(err);
    });
    socket.on("close", (reason, details) => {
      if (session.closing) return;
      const why = details && details.description ? `: ${details.description}` : "";
      failures.add(`closed: ${reason}${why}`);
      reject(new Error(`closed: ${reason}`));
      if (agent) agent.destroy();
    });
  });
}

// Close the session and wait (2 s at most) for the transport's own end: the WebSocket
// closing handshake, or the answer to the POST that carries the CLOSE packet (then the
// keep-alive connections are closed, the long poll if still pending with them).
async function closeSession(session, agent) {
  session.closing = true;
  const transport = session.socket.transport;
  const raw = transport && transport.ws;
  let done = Promise.resolve();
  if (raw && raw.readyState !== 3) done = new Promise((resolve) => raw.once("close", resolve));
  session.socket.close(); // removes the socket's listeners from the transport
  if (agent && transport) done = new Promise((resolve) => transport.once("drain", resolve));
  await Promise.race([done, sleep(2000)]);
  if (agent) agent.destroy();
}

export async function openMany(url, transport, failures, count, parallel = 50) {
  const sessions = [];
  for (let i = 0; i < count; i += parallel) {
    const batch = Array.from({ length: Math.min(parallel, count - i) }, () =>
      openSession(url, transport, failures),
    );
    sessions.push(...(await Promise.all(batch)));
  }
  return sessions;
}

export async function closeAll(sessions) {
  await Promise.race([Promise.all(sessions.map((s) => s.close())), sleep(5000)]);
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
    // CPUs kept busy by anything but the server and this process.
    other_cpu: machine - (user + sys) / seconds - client,
    cpu_us_per_op: ops ? ((user + sys) * 1e6) / ops : null,
  };
}

// -- scenarios -------------------------------------------------------------------

async function echoLoad(opts, failures, sessions, inflight) {
  const counter = { n: 0 };
  let running = true;
  const data = "x".repeat(opts.size);
  for (const session of sessions) {
    session.onMessage = (echo) => {
      if (echo !== data) failures.add(`echo of ${typeof echo} ${String(echo).length}`);
      counter.n++;
      if (running) session.send(data);
    };
    for (let i = 0; i < inflight; i++) session.send(data);
  }
  const result = await measureWindow(opts, counter);
  running = false;
  await sleep(200); // let the last messages in flight come back before closing
  await closeAll(sessions);
  return result;
}

async function rtt(opts, failures) {
  const sessions = await openMany(opts.url, opts.transport, failures, 1);
  return echoLoad(opts, failures, sessions, 1);
}

async function flood(opts, failures) {
  const sessions = await openMany(opts.url, opts.transport, failures, opts.conns);
  const result = await echoLoad(opts, failures, sessions, opts.inflight);
  return { conns: opts.conns, inflight: opts.inflight, ...result };
}

async function handshake(opts, failures) {
  const counter = { n: 0 };
  let running = true;
  async function worker() {
    while (running) {
      try {
        const session = await openSession(opts.url, opts.transport, failures);
        await session.close();
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

const SCENARIOS = { rtt, flood, handshake };

async function main() {
  const [scenario, ...rest] = process.argv.slice(2);
  const opts = parseArgs(rest, DEFAULTS);
  const run = SCENARIOS[scenario];
  if (!run) throw new Error(`unknown scenario ${scenario}: ${Object.keys(SCENARIOS)}`);
  if (!["websocket", "polling"].includes(opts.transport)) {
    throw new Error(`--transport websocket or polling, not ${opts.transport}`);
  }
  const failures = new Failures();
  const result = await run(opts, failures);
  result.failures = failures.count;
  result.first_failure = failures.first;
  process.stdout.write(`${JSON.stringify({ scenario, transport: opts.transport, ...result })}\n`);
  process.exit(0);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    process.stderr.write(`${err.stack || err}\n`);
    process.exit(1);
  });
}
