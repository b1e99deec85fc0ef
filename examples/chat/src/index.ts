// A chat room per name: one Durable Object holds the room's WebSockets through the Hibernation
// API, so an idle room costs no memory while its members stay connected, and it keeps the last
// messages in its SQLite database for whoever joins next.
//
//   npx durable-node dev examples/chat    (from this repository: npm run dev examples/chat)
//   open http://127.0.0.1:8787 in two windows, or http://127.0.0.1:8787/?room=other for another room
//   curl http://127.0.0.1:8787/room/lobby   # the room's recent messages, as JSON
//   npx wscat -c "ws://127.0.0.1:8787/room/lobby?name=ann"
import { DurableObject } from "cloudflare:workers";
import page from "./index.html";

interface Env {
  CHAT: DurableObjectNamespace<ChatRoom>;
}

/** How many messages a room remembers for the next joiner. */
const HISTORY = 50;

// A type, not an interface: sql.exec's row type must be indexable.
type Message = {
  at: number;
  name: string;
  text: string;
};

/** What each socket carries through hibernation: the instance that accepted it may be gone. */
interface Member {
  name: string;
}

export class ChatRoom extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // The constructor runs again each time a message wakes the room, so this must be cheap and idempotent.
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, at INTEGER, name TEXT, text TEXT)");
    // Keep-alive pings are answered by the runtime without waking the room.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade") !== "websocket") return Response.json(this.history());

    const wanted = (new URL(request.url).searchParams.get("name") ?? "").trim().slice(0, 32) || "anonymous";
    // Each socket is tagged with its member's name, so a taken name is found without reading every attachment.
    let name = wanted;
    for (let n = 2; this.ctx.getWebSockets(name).length > 0; n++) name = `${wanted} (${n})`;

    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server, [name]);
    server.serializeAttachment({ name } satisfies Member);
    server.send(JSON.stringify({ type: "history", messages: this.history() }));
    this.broadcast({ type: "joined", name });
    return new Response(null, { status: 101, webSocket: client });
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const { name } = ws.deserializeAttachment() as Member;
    const text = (typeof message === "string" ? message : new TextDecoder().decode(message)).slice(0, 1000);
    const at = Date.now();
    const sql = this.ctx.storage.sql;
    sql.exec("INSERT INTO messages (at, name, text) VALUES (?, ?, ?)", at, name, text);
    sql.exec("DELETE FROM messages WHERE id <= (SELECT max(id) FROM messages) - ?", HISTORY);
    this.broadcast({ type: "message", at, name, text });
  }

  async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    // Before the web_socket_auto_reply_to_close date (2026-04-07) the object must answer the
    // client's Close itself; 1005 ("no code") and 1006 ("gone") cannot be sent back.
    if (code !== 1006) ws.close(code === 1005 ? 1000 : code, "bye");
    const { name } = ws.deserializeAttachment() as Member;
    // The closing socket is still in getWebSockets() while this handler runs.
    this.broadcast({ type: "left", name }, ws);
  }

  history(): Message[] {
    return this.ctx.storage.sql.exec<Message>("SELECT at, name, text FROM messages ORDER BY id").toArray();
  }

  broadcast(event: object, except?: WebSocket): void {
    const data = JSON.stringify(event);
    for (const ws of this.ctx.getWebSockets()) {
      if (ws !== except) ws.send(data);
    }
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const room = /^\/room\/([\w-]{1,64})$/.exec(url.pathname);
    if (room) return env.CHAT.getByName(room[1]!).fetch(request);
    if (url.pathname === "/") return new Response(page, { headers: { "content-type": "text/html;charset=UTF-8" } });
    return new Response("Not found", { status: 404 });
  },
};
