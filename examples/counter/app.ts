// A plain Node HTTP app that keeps its state in Durable Objects:
//   GET /counter/<name>        increments the counter <name> and returns its value
//   GET /counter/<name>/<user> a click through a session RpcTarget (promise pipelining)
import http from "node:http";
import { createRuntime } from "durable-node";
import { Counter } from "./counter.js";

const runtime = createRuntime({ durableObjects: { COUNTER: Counter } });
const { COUNTER } = runtime.env;

const server = http.createServer(async (req, res) => {
  const [, route, name, user] = new URL(req.url ?? "/", "http://localhost").pathname.split("/");
  if (route !== "counter" || !name) {
    res.writeHead(404).end("try /counter/<name>\n");
    return;
  }
  try {
    const stub = COUNTER.getByName(name);
    const body = user ? { message: await stub.session(user).click() } : { name, value: await stub.increment() };
    res.writeHead(200, { "content-type": "application/json" }).end(`${JSON.stringify(body)}\n`);
  } catch (err) {
    res.writeHead(500).end(`${(err as Error).message}\n`);
  }
});

server.listen(Number(process.env.PORT ?? 8787), "127.0.0.1", () => {
  const { port } = server.address() as { port: number };
  console.log(`counter example listening on http://127.0.0.1:${port}/counter/<name>`);
});

const stop = () => server.close(() => void runtime.dispose());
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
