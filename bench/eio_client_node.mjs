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

import { execSync } from "node:child_process";
import { Socket } from "engine.io-client";
import { inBatches, parseArgs, printJson, processCpu, sleep } from "./_load_common.mjs";

const options = parseArgs(process.argv.slice(2), {
  url: "",
  transport: "websocket",
  clients: 1,
  inflight: 1,
  warmup: 1,
  duration: 3,
  size: 32,
});

const clkTck = Number(execSync("getconf CLK_TCK").toString().trim());
function cpuSeconds() {
  const { user, sys } = processCpu("self", clkTck);
  return user + sys;
}

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

await inBatches(options.clients, 20, connect);
await sleep(options.warmup * 1000);
const start = snapshot();
process.stdout.write("START\n");
await sleep(options.duration * 1000);
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
printJson(result, () => process.exit(0));
for (const socket of sockets) socket.close();
