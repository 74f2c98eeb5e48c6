// An `engine.io` server (the reference Engine.IO implementation) for anywire's interop tests.
//
// Usage: node eio_server.js [--port=N] [--pingInterval=MS] [--pingTimeout=MS]
//                           [--maxHttpBufferSize=BYTES] [--transports=polling,websocket]
//                           [--cookie] [--log-requests]
//
// Listens on 127.0.0.1, port N (default 0: any free port; pass the old port to restart a
// killed server on the same port), and prints the bound port on stdout as its first line.
// Every later line is one JSON event:
//
//   {"event": "connection", "sid", "transport"}    a new session
//   {"event": "upgrade", "sid", "transport"}       the session moved to another transport
//   {"event": "message", "sid", "data" | "base64"} a message (binary as base64)
//   {"event": "close", "sid", "reason"}            the session ended (the reference's reason)
//   {"event": "request", "transport", "cookie", "custom"}   with --log-requests, each HTTP
//                                                  request: its Cookie and X-Custom headers
//
// Each session echoes every message (text as text, binary as binary), except:
//   "disconnect me"   the server closes the session (a CLOSE packet: "server disconnect")
//   "big:N"           the server sends a text message of N "x" characters
//
// --cookie sets engine.io's `cookie` option (an "io" cookie with the sid, as sticky load
// balancers use). The server exits when its stdin closes (the test process died).
"use strict";

const http = require("http");
const engine = require("engine.io");

const options = {};
let port = 0;
let logRequests = false;
for (const arg of process.argv.slice(2)) {
  const [name, value] = arg.replace(/^--/, "").split("=");
  if (name === "port") port = Number(value);
  else if (name === "transports") options.transports = value.split(",");
  else if (name === "cookie") options.cookie = { name: "io", path: "/", httpOnly: true };
  else if (name === "log-requests") logRequests = true;
  else options[name] = Number(value);
}

function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

const httpServer = http.createServer();
const server = engine.attach(httpServer, options);

if (logRequests) {
  server.on("headers", (headers, req) => {
    const transport = new URL(req.url, "http://x").searchParams.get("transport");
    emit({
      event: "request",
      transport,
      cookie: req.headers.cookie || null,
      custom: req.headers["x-custom"] || null,
    });
  });
}

server.on("connection", (socket) => {
  emit({ event: "connection", sid: socket.id, transport: socket.transport.name });
  socket.on("upgrade", (transport) => {
    emit({ event: "upgrade", sid: socket.id, transport: transport.name });
  });
  socket.on("message", (data) => {
    if (typeof data === "string") {
      emit({ event: "message", sid: socket.id, data: data.length > 200 ? `<${data.length}>` : data });
      if (data === "disconnect me") return socket.close();
      if (data.startsWith("big:")) return socket.send("x".repeat(Number(data.slice(4))));
      return socket.send(data);
    }
    emit({ event: "message", sid: socket.id, base64: Buffer.from(data).toString("base64") });
    socket.send(data);
  });
  socket.on("close", (reason) => emit({ event: "close", sid: socket.id, reason }));
});

httpServer.listen(port, "127.0.0.1", () => {
  process.stdout.write(`${httpServer.address().port}\n`);
});

process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
