// The node `engine.io-client` load of bench/eio_client_run.py: one run, one JSON result.
//
//   node bench/eio_client_node.mjs --url URL --transport websocket|polling --clients N
//        --inflight K --warmup S --duration S [--size BYTES]
//
// Every client keeps `inflight` text messages of `size` bytes in flight against an echo
// server (a new one for each echo). Once all are connected and the warm-up is over,
// prints START, measures for `duration` seconds, prints END, then one JSON line:
// messages echoed in the window, its length and this process's CPU time over it
// (user + system, from /proc/self/stat), as bench/eio_client_py.py does.

import { readFileSync } from "node:fs";
import { execSync } from "node:child_process";
import { Socket } from "engine.io-client";

const options = { url: "", transport: "websocket", clients: 1, inflight: 1, warmup: 1, duration: 3, size: 32 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, "");
  if (!(key in options)) throw new Error(`unknown option --${key}`);
  options[key] = typeof options[key] === "number" ? Number(argv[i + 1]) : argv[i + 1];
}

const clkTck = Number(execSync("getconf CLK_TCK").toString().trim());
function cpuSeconds() {
  const fields = readFileSync("/proc/self/stat", "utf8").split(")").pop().trim().split(/\s+/);
  return (Number(fields[11]) + Number(fields[12])) / clkTck;
}

const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));
const payload = "x".repeat(options.size);
const stats = { count: 0, connected: 0, errors: [] };
const sockets = [];

function connect() {
  return new Promise((resolve) => {
    const socket = new Socket(options.url, {
      transports: [options.transport],
      upgrade: false,
      perMessageDeflate: false,
    });
    socket.on("open", () => {
      stats.connected += 1;
      for (let i = 0; i < options.inflight; i++) socket.send(payload);
      resolve();
    });
    socket.on("message", () => {
      stats.count += 1;
      socket.send(payload);
    });
    socket.on("error", (error) => {
      stats.errors.push(String(error));
      resolve();
    });
    sockets.push(socket);
  });
}

const snapshot = () => [stats.count, performance.now() / 1000, cpuSeconds()];

for (let i = 0; i < options.clients; i += 20) {
  const batch = Math.min(20, options.clients - i);
  await Promise.all(Array.from({ length: batch }, connect));
}
await sleep(options.warmup);
const start = snapshot();
process.stdout.write("START\n");
await sleep(options.duration);
const end = snapshot();
process.stdout.write("END\n");
const [messages, seconds, cpu] = end.map((value, i) => value - start[i]);
const result = {
  messages,
  seconds,
  cpu_seconds: cpu,
  connected: stats.connected,
  errors: stats.errors.slice(0, 5),
};
process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
for (const socket of sockets) socket.close();
