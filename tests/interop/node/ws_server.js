// A `ws` WebSocket server for anywire's interop tests.
//
// Usage: node ws_server.js [--no-deflate | --deflate=JSON] [--protocols=a,b]
//
// Listens on 127.0.0.1, port 0, and prints the bound port on stdout as its first line.
// Every later stdout line is one JSON event (a connection's close code and reason,
// a pong). What a connection does depends on the request path:
//
//   /echo (or any other path)  echo every message, text as text and binary as binary
//   /close                     after the first message, close with 4002 "bye"
//   /close-no-code             after the first message, close without a status code
//   /terminate                 after the first message, drop the TCP connection
//   /bad-utf8                  after the first message, send invalid UTF-8 as text
//   /fragmented                after the first message, send three fragmented messages
//                              (text split inside a UTF-8 character, binary, and a
//                              large text one that is compressed when deflate is on),
//                              with a ping between two fragments
//   /ping                      ping with payload "abc"; send "pong:<payload>" on the pong
//   /subprotocol               send the negotiated subprotocol ("" for none)
//   /headers                   send the request headers as a JSON object
//
// --deflate=JSON gives ws's perMessageDeflate options ({"serverMaxWindowBits": 10}).
// --protocols=a,b installs a handleProtocols that picks the first of the server's
// list that the client offers (or none); without it, `ws` picks the client's first.
"use strict";

const { WebSocketServer } = require("ws");

const args = process.argv.slice(2);
const deflateArg = args.find((a) => a.startsWith("--deflate="));
const deflate = args.includes("--no-deflate")
  ? false
  : deflateArg
    ? JSON.parse(deflateArg.slice("--deflate=".length))
    : true;
const protocolsArg = args.find((a) => a.startsWith("--protocols="));
const serverProtocols = protocolsArg ? protocolsArg.split("=")[1].split(",") : null;

function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

function chooseProtocol(offered) {
  return serverProtocols.find((p) => offered.has(p)) || false;
}

const options = { host: "127.0.0.1", port: 0, perMessageDeflate: deflate };
if (serverProtocols) options.handleProtocols = chooseProtocol;
const wss = new WebSocketServer(options);

function sendFragmented(ws) {
  // "✓" is e2 9c 93 in UTF-8 (bytes 13 to 15): the second fragment ends inside it.
  const text = Buffer.from("frag-ment-ed ✓", "utf8");
  ws.send(text.subarray(0, 5), { binary: false, fin: false });
  ws.ping("mid");
  ws.send(text.subarray(5, 14), { binary: false, fin: false });
  ws.send(text.subarray(14), { binary: false, fin: true });

  ws.send(Buffer.from([0, 1, 2]), { binary: true, fin: false });
  ws.send(Buffer.from([253, 254, 255]), { binary: true, fin: true });

  // First fragment >= the 1024-byte threshold, so deflate (when on) compresses it.
  ws.send("a".repeat(4096), { binary: false, fin: false });
  ws.send("b".repeat(4096), { binary: false, fin: false });
  ws.send("c", { binary: false, fin: true });
}

const onFirstMessage = {
  "/close": (ws) => ws.close(4002, "bye"),
  "/close-no-code": (ws) => ws.close(), // an empty close frame, as browsers send
  "/terminate": (ws) => ws.terminate(), // the TCP connection ends, no close frame
  "/bad-utf8": (ws) => ws.send(Buffer.from([0x68, 0xff, 0xfe]), { binary: false }),
  "/fragmented": sendFragmented,
};

wss.on("connection", (ws, req) => {
  const path = req.url.split("?")[0];
  ws.on("close", (code, reason) => {
    emit({ event: "close", path, code, reason: reason.toString("utf8") });
  });
  ws.on("pong", (data) => {
    emit({ event: "pong", path, data: data.toString("utf8") });
    if (path === "/ping") ws.send("pong:" + data.toString("utf8"));
  });
  ws.on("error", (err) => emit({ event: "error", path, message: String(err) }));

  if (path === "/subprotocol") ws.send(ws.protocol);
  if (path === "/headers") ws.send(JSON.stringify(req.headers));
  if (path === "/ping") ws.ping("abc");

  let first = true;
  ws.on("message", (data, isBinary) => {
    const action = first ? onFirstMessage[path] : undefined;
    first = false;
    if (action) action(ws);
    else ws.send(data, { binary: isBinary });
  });
});

wss.on("listening", () => {
  process.stdout.write(String(wss.address().port) + "\n");
});

wss.on("error", (err) => {
  process.stderr.write("ws_server.js: " + String(err) + "\n");
  process.exit(1);
});

// The test kills us; a closed stdin (the test process died) also ends the server.
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
