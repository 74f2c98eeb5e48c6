// A `ws` WebSocket client for anywire's interop tests.
//
// Usage: node ws_client.js URL SCENARIO [--no-deflate | --deflate=JSON] [--protocols=a,b]
//
// --deflate=JSON gives ws's perMessageDeflate options ({"clientMaxWindowBits": 10}).
//
// Connects to URL, runs SCENARIO and prints what happens on stdout, one JSON object
// per line: {"event": "open", "protocol", "extensions"}, {"event": "message",
// "binary", "length", "sha256", "text"} ("text" only for text messages of at most 200
// bytes), {"event": "pong", "data"}, {"event": "close", "code", "reason"},
// {"event": "error", "message"} (a refused handshake is an error "Unexpected server
// response: <status>", then a close with 1006).
// Exits 0 once the connection is closed; 3 if it is still open after 20 seconds.
//
// Scenarios (the test module holds the matching server handlers and expectations):
//   echo          send text, binary, 64 KiB compressible text, 1 MiB text and 1 MiB
//                 binary; wait for the five echoes; close with 1000
//   fragmented    send the same messages as fragments (fin: false); wait; close
//   ping          ping "abc"; wait for the pong; close
//   wait-close    send "close me" and wait for the server to close
//   client-close  close with 4003 "client bye" at once
//   close-no-code close without a status code (an empty close frame, as browsers send)
//   terminate     drop the TCP connection at once, without a close frame
//   bad-utf8      send invalid UTF-8 as a text message and wait for the server to close
//   too-big       send a 2000-byte binary message and wait for the server to close
//   too-big-fragmented  send two 600-byte fragments of one message; wait for the close
//   too-big-compressed  send 100 KB of "a" (deflated to ~100 bytes); wait for the close
//   handshake     close with 1000 right after the opening handshake
"use strict";

const crypto = require("crypto");
const WebSocket = require("ws");

const [url, scenario, ...flags] = process.argv.slice(2);
const deflateArg = flags.find((a) => a.startsWith("--deflate="));
const deflate = flags.includes("--no-deflate")
  ? false
  : deflateArg
    ? JSON.parse(deflateArg.slice("--deflate=".length))
    : true;
const protocolsArg = flags.find((a) => a.startsWith("--protocols="));
const protocols = protocolsArg ? protocolsArg.split("=")[1].split(",") : [];

function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

// Same bytes as the Python side: sha256("anywire-<i>") for i in 0..32767, 1 MiB.
function incompressible() {
  const blocks = [];
  for (let i = 0; i < 32768; i++) {
    blocks.push(crypto.createHash("sha256").update("anywire-" + i).digest());
  }
  return Buffer.concat(blocks);
}

const MIB = 1 << 20;
const messages = () => [
  ["hello ✓", false],
  [Buffer.from([0, 1, 2, 255]), true],
  ["anywire ".repeat(8192), false],
  ["x".repeat(MIB), false],
  [incompressible(), true],
];

function sendFragments(ws, data, isBinary, pieces) {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data, "utf8");
  const step = Math.ceil(buf.length / pieces);
  for (let start = 0; start < buf.length; start += step) {
    const fin = start + step >= buf.length;
    ws.send(buf.subarray(start, start + step), { binary: isBinary, fin });
  }
}

const scenarios = {
  echo: { expect: 5, start: (ws) => messages().forEach(([d, b]) => ws.send(d, { binary: b })) },
  fragmented: {
    expect: 5,
    // 3 pieces: "hello ✓" (9 bytes) is split inside the "✓".
    start: (ws) => messages().forEach(([d, b]) => sendFragments(ws, d, b, 3)),
  },
  ping: { expect: 0, start: (ws) => ws.ping("abc"), onPong: (ws) => ws.close(1000) },
  "wait-close": { expect: Infinity, start: (ws) => ws.send("close me") },
  "client-close": { expect: 0, start: (ws) => ws.close(4003, "client bye") },
  "close-no-code": { expect: 0, start: (ws) => ws.close() },
  terminate: { expect: 0, start: (ws) => ws.terminate() },
  "bad-utf8": {
    expect: Infinity,
    start: (ws) => ws.send(Buffer.from([0x68, 0xff, 0xfe]), { binary: false }),
  },
  "too-big": { expect: Infinity, start: (ws) => ws.send(Buffer.alloc(2000, 7)) },
  "too-big-fragmented": {
    expect: Infinity,
    start: (ws) => sendFragments(ws, Buffer.alloc(1200, 7), true, 2),
  },
  "too-big-compressed": { expect: Infinity, start: (ws) => ws.send("a".repeat(100000)) },
  handshake: { expect: 0, start: (ws) => ws.close(1000) },
};

const plan = scenarios[scenario];
if (!plan) {
  process.stderr.write("ws_client.js: unknown scenario " + scenario + "\n");
  process.exit(2);
}

const ws = new WebSocket(url, protocols, { perMessageDeflate: deflate });
let received = 0;

ws.on("open", () => {
  emit({ event: "open", protocol: ws.protocol, extensions: ws.extensions });
  plan.start(ws);
});

ws.on("message", (data, isBinary) => {
  const event = {
    event: "message",
    binary: isBinary,
    length: data.length,
    sha256: crypto.createHash("sha256").update(data).digest("hex"),
  };
  if (!isBinary && data.length <= 200) event.text = data.toString("utf8");
  emit(event);
  received += 1;
  if (received === plan.expect) ws.close(1000);
});

ws.on("pong", (data) => {
  emit({ event: "pong", data: data.toString("utf8") });
  if (plan.onPong) plan.onPong(ws);
});

ws.on("error", (err) => emit({ event: "error", message: String(err) }));

const timer = setTimeout(() => {
  emit({ event: "timeout" });
  process.exit(3);
}, 20000);

// Nothing else keeps node alive once the connection is closed: it exits 0 by itself
// (no process.exit(), which could cut short a pending write to a pipe).
ws.on("close", (code, reason) => {
  emit({ event: "close", code, reason: reason.toString("utf8") });
  clearTimeout(timer);
});
