// Clients of the Engine.IO load test (bench/eio_load.py): one process of many sessions.
//
//   node bench/eio_load_clients.mjs --url http://127.0.0.1:PORT --name c0
//
// Driven through stdin, one JSON command per line, each answered with one JSON line:
//   {"cmd": "open", "transport": "websocket"|"polling", "count": N}
//       open N sessions (50 handshakes at a time) -> {"opened", "connect_failures", "seconds"}
//   {"cmd": "run", "seconds": S}
//       every open session echoes with one message in flight for S seconds, then waits
//       (5 s at most) for the last echoes -> per transport: sessions, echoes, fewest and
//       most echoes of one session; "outstanding" (echoes that never came back)
//   {"cmd": "close"}   close every session -> {"closed"}
// Every answer carries "failures" and "first_failure": everything unexpected so far
// (an error event, a close the client did not ask for, an echo that differs from what
// was sent). Messages alternate text and binary (32 bytes), each naming its session
// and sequence number, so a misrouted or reordered echo is a failure.

import { createInterface } from "node:readline";
import { performance } from "node:perf_hooks";
import {
  Failures,
  closeAll,
  inBatches,
  parseArgs,
  printJson,
  sleep,
} from "./_load_common.mjs";
import { openSession } from "./eio_load.mjs";

const opts = parseArgs(process.argv.slice(2), { url: "", name: "c" });
const failures = new Failures();
const sessions = []; // { session, transport, id, seq, echoes, expected }
let running = false;

function message(s) {
  const text = `${opts.name}-${s.id}:${s.seq}:`.padEnd(32, ".");
  return s.seq % 2 === 0 ? text : Buffer.from(text);
}

function sameData(a, b) {
  if (typeof b === "string") return a === b;
  if (typeof a === "string") return false;
  return Buffer.from(a).equals(b);
}

function sendNext(s) {
  s.expected = message(s);
  s.session.send(s.expected);
}

function onEcho(s, data) {
  if (s.expected === null) {
    failures.add(`${opts.name}-${s.id}: a message nobody sent`);
    return;
  }
  if (!sameData(data, s.expected)) {
    const got = typeof data === "string" ? data : `<binary ${Buffer.from(data)}>`;
    failures.add(`${opts.name}-${s.id}: echo ${got} for ${s.expected}`);
  }
  s.expected = null;
  s.echoes++;
  s.seq++;
  if (running) sendNext(s);
}

async function open({ transport, count }) {
  const t0 = performance.now();
  let connectFailures = 0;
  await inBatches(count, 50, () =>
    openSession(opts.url, transport, failures).then(
      (session) => {
        const s = { session, transport, id: sessions.length, seq: 0, echoes: 0, expected: null };
        session.onMessage = (data) => onEcho(s, data);
        sessions.push(s);
      },
      () => connectFailures++,
    ),
  );
  return { opened: count - connectFailures, connect_failures: connectFailures, seconds: (performance.now() - t0) / 1000 };
}

function summary(list) {
  const echoes = list.map((s) => s.echoes).sort((a, b) => a - b);
  return {
    sessions: list.length,
    echoes: echoes.reduce((a, b) => a + b, 0),
    fewest: echoes.length ? echoes[0] : null,
    most: echoes.length ? echoes[echoes.length - 1] : null,
  };
}

async function run({ seconds }) {
  for (const s of sessions) s.echoes = 0;
  running = true;
  const t0 = performance.now();
  for (const s of sessions) sendNext(s);
  await sleep(seconds * 1000);
  running = false;
  const elapsed = (performance.now() - t0) / 1000;
  const deadline = performance.now() + 5000;
  while (sessions.some((s) => s.expected !== null) && performance.now() < deadline) {
    await sleep(50);
  }
  const byTransport = {};
  for (const transport of ["websocket", "polling"]) {
    const list = sessions.filter((s) => s.transport === transport);
    if (list.length) byTransport[transport] = summary(list);
  }
  return {
    seconds: elapsed,
    by_transport: byTransport,
    outstanding: sessions.filter((s) => s.expected !== null).length,
  };
}

async function close() {
  const count = sessions.length;
  await closeAll(sessions.map((s) => s.session));
  sessions.length = 0;
  return { closed: count };
}

const COMMANDS = { open, run, close };

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  const answer = await COMMANDS[command.cmd](command);
  answer.failures = failures.count;
  answer.first_failure = failures.first;
  printJson(answer);
}
process.exit(0);
