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
// bench/eio_load_clients.mjs imports openSession from here; the rest is
// bench/_load_common.mjs's.

import http from "node:http";
import { pathToFileURL } from "node:url";
import { Socket } from "engine.io-client";
import { echoLoad, handshakeLoad, inBatches, runScenario, sleep } from "./_load_common.mjs";

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

// -- one Engine.IO session ---------------------------------------------------------

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

function openMany(url, transport, failures, count) {
  return inBatches(count, 50, () => openSession(url, transport, failures));
}

// -- scenarios -------------------------------------------------------------------

function echoText(opts, failures, sessions, inflight) {
  const data = "x".repeat(opts.size);
  return echoLoad(opts, sessions, inflight, data, (echo) => {
    if (echo !== data) failures.add(`echo of ${typeof echo} ${String(echo).length}`);
  });
}

async function rtt(opts, failures) {
  const sessions = await openMany(opts.url, opts.transport, failures, 1);
  return echoText(opts, failures, sessions, 1);
}

async function flood(opts, failures) {
  const sessions = await openMany(opts.url, opts.transport, failures, opts.conns);
  const result = await echoText(opts, failures, sessions, opts.inflight);
  return { conns: opts.conns, inflight: opts.inflight, ...result };
}

function handshake(opts, failures) {
  return handshakeLoad(opts, async () => {
    const session = await openSession(opts.url, opts.transport, failures);
    await session.close();
  });
}

function transportOf(opts) {
  if (!["websocket", "polling"].includes(opts.transport)) {
    throw new Error(`--transport websocket or polling, not ${opts.transport}`);
  }
  return { transport: opts.transport };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  runScenario({ rtt, flood, handshake }, DEFAULTS, transportOf);
}
