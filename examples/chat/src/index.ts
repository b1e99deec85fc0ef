// A chat room per name: one Durable Object holds the room's WebSockets through the Hibernation
// API, so an idle room costs no memory while its members stay connected, and it keeps the last
// messages in its SQLite database for whoever joins next.
//
//   npx durable-node dev examples/chat      then open http://127.0.0.1:8787 in two windows
//   curl http://127.0.0.1:8787/rooms/lobby/history
import { DurableObject } from "cloudflare:workers";
import page from "./index.html";

interface Env {
  ROOMS: DurableObjectNamespace<ChatRoom>;
}

const HISTORY = 50;

interface Member {
  name: string;
}

export class ChatRoom extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, at INTEGER, name TEXT, text TEXT)",
    );
    // Keep-alive pings are answered without waking the room.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade") !== "websocket") return Response.json(this.history());
    const name = (new URL(request.url).searchParams.get("name") ?? "").trim().slice(0, 32) || "anonymous";
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment({ name } satisfies Member);
    server.send(JSON.stringify({ type: "history", messages: this.history() }));
    this.broadcast({ type: "joined", name });
    return new Response(null, { status: 101, webSocket: client });
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const { name } = ws.deserializeAttachment() as Member;
    const text = String(message).slice(0, 1000);
    const at = Date.now();
    this.ctx.storage.sql.exec("INSERT INTO messages (at, name, text) VALUES (?, ?, ?)", at, name, text);
    this.ctx.storage.sql.exec(
      "DELETE FROM messages WHERE id <= (SELECT max(id) FROM messages) - ?",
      HISTORY,
    );
    this.broadcast({ type: "message", at, name, text });
  }

  async webSocketClose(ws: WebSocket): Promise<void> {
    const { name } = ws.deserializeAttachment() as Member;
    this.broadcast({ type: "left", name }, ws);
  }

  history(): { at: number; name: string; text: string }[] {
    return this.ctx.storage.sql
      .exec<{ at: number; name: string; text: string }>("SELECT at, name, text FROM messages ORDER BY id")
      .toArray();
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
    const room = /^\/rooms\/([\w-]{1,64})(\/history)?$/.exec(url.pathname);
    if (room) return env.ROOMS.getByName(room[1]!).fetch(request);
    if (url.pathname === "/") return new Response(page, { headers: { "content-type": "text/html;charset=UTF-8" } });
    return new Response("Not found", { status: 404 });
  },
};
