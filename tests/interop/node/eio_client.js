// The official `engine.io-client` (npm) against an Engine.IO server, for anywire's interop tests.
//
// Usage: node eio_client.js URL TRANSPORTS SCENARIO [ARG]
//   TRANSPORTS  "default" (polling then upgrade), "websocket", "polling" or a comma list
//   SCENARIO    echo        send "hello", <01 02 03>, ARG "x" characters (default 1000);
//                           wait for each echo (and the upgrade with "default"), then close
//               server-close  send "disconnect me" and wait for the server to close the session
//               hold        stay connected until the server ends the session (no timeout)
//
// Prints one JSON event per line:
//   {"event": "open", "sid", "transport", "handshake"}
//   {"event": "upgrade", "transport"}
//   {"event": "message", "data" | "base64"}
//   {"event": "close", "reason"}
//   {"event": "error", "message"}
// and exits 0 after "close" (1 on a timeout of 10 s).
"use strict";

const { Socket } = require("engine.io-client");

const [url, transportsArg, scenario, arg] = process.argv.slice(2);
const options = {};
if (transportsArg && transportsArg !== "default") options.transports = transportsArg.split(",");

function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

const socket = new Socket(url, options);
const expected = [];
let upgraded = options.transports === undefined ? false : true;
let echoes = 0;

function maybeDone() {
  if (scenario === "echo" && echoes === expected.length && upgraded) socket.close();
}

socket.on("open", () => {
  emit({
    event: "open",
    sid: socket.id,
    transport: socket.transport.name,
    handshake: {
      upgrades: socket._upgrades || socket.upgrades,
      pingInterval: socket._pingInterval,
      pingTimeout: socket._pingTimeout,
      maxPayload: socket._maxPayload,
    },
  });
  if (scenario === "echo") {
    const big = "x".repeat(Number(arg || 1000));
    expected.push("hello", Buffer.from([1, 2, 3]), big);
    for (const data of expected) socket.send(data);
  } else if (scenario === "server-close") {
    socket.send("disconnect me");
  }
});

socket.on("upgrade", (transport) => {
  emit({ event: "upgrade", transport: transport.name });
  upgraded = true;
  maybeDone();
});

socket.on("message", (data) => {
  if (typeof data === "string") emit({ event: "message", data });
  else emit({ event: "message", base64: Buffer.from(data).toString("base64") });
  echoes += 1;
  maybeDone();
});

socket.on("error", (err) => emit({ event: "error", message: String(err && err.message) }));

socket.on("close", (reason) => {
  emit({ event: "close", reason });
  // Give a polling transport time to POST its CLOSE packet before exiting.
  setTimeout(() => process.exit(0), 300);
});

if (scenario !== "hold") {
  setTimeout(() => {
    emit({ event: "timeout" });
    process.exit(1);
  }, 10000);
}
