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
import WebSocket from "ws";
import {
  closeAll,
  echoLoad,
  handshakeLoad,
  inBatches,
  runScenario,
  sleep,
} from "./_load_common.mjs";

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

function serverRssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)[1]);
}

// -- connections: one interface over WebSocket and raw TCP -------------------------

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

function openMany(opts, failures, count) {
  const open = opts.tcp ? openTcp : openWebSocket;
  return inBatches(count, 50, () => open(opts, failures));
}

// -- scenarios -------------------------------------------------------------------

async function rtt(opts, failures) {
  const conns = await openMany(opts, failures, 1);
  return echoLoad(opts, conns, 1, payload(opts));
}

async function flood(opts, failures) {
  const conns = await openMany(opts, failures, opts.conns);
  const result = await echoLoad(opts, conns, opts.inflight, payload(opts));
  return { conns: opts.conns, inflight: opts.inflight, ...result };
}

function handshake(opts, failures) {
  return handshakeLoad(opts, async () => {
    const [conn] = await openMany(opts, failures, 1);
    await conn.close();
  });
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

runScenario({ rtt, flood, big: rtt, handshake, idle }, DEFAULTS);
