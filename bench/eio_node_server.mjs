// The node `engine.io` echo server of bench/eio_server_run.py (started by eio_servers.py)
// and of bench/eio_client_run.py.
//
//   node bench/eio_node_server.mjs --port 0 --ping-interval MS --ping-timeout MS --max-payload BYTES
//
// Listens on 127.0.0.1, prints `PORT <n>` once it accepts connections and echoes every
// message (text as text, binary as binary) until terminated. HTTP compression and
// permessage-deflate are off, as on the Python servers.

import http from "node:http";
import { attach } from "engine.io";
import { parseArgs } from "./_load_common.mjs";

const options = parseArgs(process.argv.slice(2), {
  port: 0,
  "ping-interval": 25000,
  "ping-timeout": 20000,
  "max-payload": 1e6,
});

const httpServer = http.createServer();
const server = attach(httpServer, {
  pingInterval: options["ping-interval"],
  pingTimeout: options["ping-timeout"],
  maxHttpBufferSize: options["max-payload"],
  httpCompression: false,
  perMessageDeflate: false,
});

server.on("connection", (socket) => {
  socket.on("message", (data) => socket.send(data));
});

httpServer.listen(options.port, "127.0.0.1", 4096, () => {
  process.stdout.write(`PORT ${httpServer.address().port}\n`);
});

process.on("SIGTERM", () => process.exit(0));
