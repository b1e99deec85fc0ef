// The WebSocket bench's Durable Object, the same code on both sides: every socket is hibernatable;
// a message is echoed to its sender, or (prefixed "broadcast:") sent to every socket of the room.
import { DurableObject } from "cloudflare:workers";

export class Chat extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    // Answered by the runtime without running this object's code.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  async fetch() {
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }

  webSocketMessage(ws, message) {
    if (typeof message === "string" && message.startsWith("broadcast:")) {
      for (const socket of this.ctx.getWebSockets()) socket.send(message);
      return;
    }
    ws.send(message);
  }

  webSocketClose() {}
}

export default {
  fetch(request, env) {
    return env.CHAT.get(env.CHAT.idFromName("room")).fetch(request);
  },
};
