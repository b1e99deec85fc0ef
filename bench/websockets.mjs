// The WebSocket table: the same hibernating Durable Object (workers/chat.mjs) served over loopback by durable-node
// (a Node HTTP server + runtime.handleUpgrade, the core serving the connections) and by Miniflare 4 (workerd's HTTP
// server, which is what `wrangler dev` runs), in one run, driven by `ws` clients in this process.
// Usage: node bench/websockets.mjs   (build first: npm run build; Miniflare from bench/node_modules)
import { execFileSync, spawn } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import WebSocket from "ws";
import { canPin, killGroup, onCpu } from "./lib/processes.mjs";
import { median } from "./lib/table.mjs";

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const register = pathToFileURL(path.join(benchDir, "..", "dist", "register.js")).href;
const PLAN = { echoWarmup: 500, echoCalls: 5_000, broadcastSockets: 1_000, broadcastRounds: 15, idleSockets: 10_000 };
// node-ws: a plain `ws` server with no runtime (ws-server.mjs), the floor any Node server meets with these clients.
const SIDES = ["durable-node", "miniflare", "node-ws"];

// Where the two processes run decides the round trip more than either side's code does (see canPin), so both sides
// run alike: this process (the clients) on CPU 0, the server on CPU 1 (every thread of it, workerd's included).
if (canPin) execFileSync("taskset", ["-p", "-c", "0", String(process.pid)], { stdio: "ignore" });

function startServer(side) {
  const args = ["--expose-gc", ...(side === "durable-node" ? ["--import", register] : []), "ws-server.mjs", side];
  const [command, argv] = onCpu(1, process.execPath, args);
  // Its own process group: Miniflare's workerd child goes down with it.
  const child = spawn(command, argv, { cwd: benchDir, stdio: ["pipe", "pipe", "inherit"], detached: true });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => JSON.parse((await lines.next()).value);
  return next().then(({ port }) => ({
    url: `ws://127.0.0.1:${port}/`,
    ask: (command) => {
      child.stdin.write(`${command}\n`);
      return next();
    },
    stop: () => killGroup(child.pid),
  }));
}

function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

/** Opens `n` connections, `width` at a time; stops at the first failure and returns what opened. */
async function openMany(url, n, width = 200) {
  const sockets = [];
  let error;
  while (sockets.length < n && error === undefined) {
    const batch = Math.min(width, n - sockets.length);
    const settled = await Promise.allSettled(Array.from({ length: batch }, () => open(url)));
    for (const s of settled) {
      if (s.status === "fulfilled") sockets.push(s.value);
      else error ??= s.reason?.message ?? String(s.reason);
    }
  }
  return { sockets, error };
}

const nextMessage = (ws) => new Promise((resolve) => ws.once("message", resolve));
const percentile = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

async function echo(url, text = "ping!") {
  const ws = await open(url);
  const times = [];
  for (let i = 0; i < PLAN.echoWarmup + PLAN.echoCalls; i++) {
    const start = performance.now();
    const reply = nextMessage(ws);
    ws.send(text);
    await reply;
    if (i >= PLAN.echoWarmup) times.push((performance.now() - start) * 1000);
  }
  ws.terminate();
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99) };
}

async function broadcast(url) {
  const { sockets, error } = await openMany(url, PLAN.broadcastSockets);
  if (error) throw new Error(`opened ${sockets.length} of ${PLAN.broadcastSockets}: ${error}`);
  const rounds = [];
  for (let r = 0; r < PLAN.broadcastRounds + 2; r++) {
    const start = performance.now();
    const all = Promise.all(sockets.map(nextMessage));
    sockets[r % sockets.length].send(`broadcast:${r}`);
    await all;
    if (r >= 2) rounds.push(performance.now() - start);
  }
  for (const ws of sockets) ws.terminate();
  return { ms: median(rounds) };
}

async function idle(server) {
  const before = await server.ask("memory");
  const { sockets, error } = await openMany(server.url, PLAN.idleSockets, 500);
  // One round trip on the last socket: the server has taken every connection.
  const last = sockets.at(-1);
  if (last) {
    const reply = nextMessage(last);
    last.send("settle");
    await reply;
  }
  const { hibernated } = await server.ask("hibernate");
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const after = await server.ask("memory");
  for (const ws of sockets) ws.terminate();
  return {
    connected: sockets.length,
    error,
    hibernated,
    rssPerConnection: (after.rss - before.rss) / Math.max(1, sockets.length),
    heapGrowth: after.heapUsed - before.heapUsed,
  };
}

// Round trips are taken in ROUNDS alternating rounds (a fresh server each), so a noisy spell of the machine falls on
// both sides; each cell is the median over rounds. Broadcast and memory run once per side, in the first round.
const ROUNDS = 3;
const results = Object.fromEntries(SIDES.map((side) => [side, { echo: [], auto: [] }]));
for (let round = 0; round < ROUNDS; round++) {
  for (const side of SIDES) {
    const server = await startServer(side);
    const result = results[side];
    const scenarios = [
      ["echo", () => echo(server.url)],
      ["auto", () => echo(server.url, "ping")],
      ...(round === 0
        ? [
            ["broadcast", () => broadcast(server.url)],
            ["idle", () => idle(server)],
          ]
        : []),
    ];
    for (const [name, run] of scenarios) {
      let outcome;
      try {
        outcome = await run();
      } catch (err) {
        outcome = { error: err.message };
      }
      if (Array.isArray(result[name])) result[name].push(outcome);
      else result[name] = outcome;
    }
    server.stop();
  }
}
// Round trips: the median over rounds of each percentile (or the first failure).
for (const side of SIDES) {
  for (const name of ["echo", "auto"]) {
    const rounds = results[side][name];
    const failedRound = rounds.find((r) => r.error);
    results[side][name] = failedRound ?? { p50: median(rounds.map((r) => r.p50)), p99: median(rounds.map((r) => r.p99)) };
  }
}

const fmt = (v, unit, digits = 0) => (v === undefined ? "—" : `${v.toFixed(digits)} ${unit}`);
const cell = (r, get) => (r?.error ? `failed: ${r.error}` : get(r));
const ratio = (a, b) => (a > 0 && b > 0 ? `${(b / a).toFixed(1)}×` : "—");
const dn = results["durable-node"];
const mf = results.miniflare;
const floor = results["node-ws"];
console.log(`# WebSockets over loopback: durable-node vs Miniflare 4 (workerd) — ${new Date().toISOString()}`);
console.log(
  `node ${process.version}; clients: ws in this process${canPin ? " on CPU 0, each server on CPU 1" : " (not pinned: taskset missing or one CPU)"}; ` +
    `the same Durable Object (bench/workers/chat.mjs); the floor column is a plain ws server doing the same in JS, no object\n`,
);
/** One row: `show` formats a side's result, `value` picks the number the ratio compares. */
const row = (label, show, value) =>
  console.log(`| ${label} | ${[dn, mf, floor].map(show).join(" | ")} | ${ratio(value(dn), value(mf))} |`);
const idleCell = (r) =>
  `${fmt(r.rssPerConnection / 1024, "KiB", 1)} RSS per connection (${r.connected} connected${r.error ? `, then: ${r.error}` : ""}; JS heap ${r.heapGrowth >= 0 ? "+" : ""}${fmt(r.heapGrowth / 1024, "KiB")}${r.hibernated ? ", hibernated" : ""})`;
console.log("| scenario | durable-node | Miniflare 4 | plain Node ws server (floor) | Miniflare / durable-node |");
console.log("|---|---|---|---|---|");
row(
  `echo round trip, p50 (${PLAN.echoCalls} sequential, median of ${ROUNDS} rounds)`,
  (r) => cell(r.echo, (e) => fmt(e.p50, "µs")),
  (r) => r.echo.p50,
);
row("echo round trip, p99", (r) => cell(r.echo, (e) => fmt(e.p99, "µs")), (r) => r.echo.p99);
row(
  `broadcast to ${PLAN.broadcastSockets} sockets, send → last received (median of ${PLAN.broadcastRounds})`,
  (r) => cell(r.broadcast, (b) => fmt(b.ms, "ms", 1)),
  (r) => r.broadcast.ms,
);
row(
  "auto-response round trip, p50 (answered without the object's code; the floor answers in JS)",
  (r) => cell(r.auto, (e) => fmt(e.p50, "µs")),
  (r) => r.auto.p50,
);
row("auto-response round trip, p99", (r) => cell(r.auto, (e) => fmt(e.p99, "µs")), (r) => r.auto.p99);
row(`${PLAN.idleSockets} idle connections`, (r) => cell(r.idle, idleCell), (r) => r.idle.rssPerConnection);
