// A to-do list per name: each list is a Durable Object with its own SQLite database, and the
// Worker calls its methods over RPC.
//
//   npx durable-node dev examples/todos    (from this repository: npm run dev examples/todos)
//   curl -s -X POST http://127.0.0.1:8787/lists/home/todos -d '{"title":"water the plants"}'
//   curl -s -X PATCH http://127.0.0.1:8787/lists/home/todos/1 -d '{"done":true}'
//   curl -s http://127.0.0.1:8787/lists/home/todos
//   curl -s -X DELETE http://127.0.0.1:8787/lists/home/todos/1
import { DurableObject } from "cloudflare:workers";

interface Env {
  LISTS: DurableObjectNamespace<TodoList>;
}

interface Todo {
  id: number;
  title: string;
  done: boolean;
}

type Row = { id: number; title: string; done: number };

const toTodo = (row: Row): Todo => ({ id: row.id, title: row.title, done: row.done === 1 });

export class TodoList extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS todos (id INTEGER PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0)",
    );
  }

  list(): Todo[] {
    return this.ctx.storage.sql.exec<Row>("SELECT id, title, done FROM todos ORDER BY id").toArray().map(toTodo);
  }

  add(title: string): Todo {
    return toTodo(this.ctx.storage.sql.exec<Row>("INSERT INTO todos (title) VALUES (?) RETURNING *", title).one());
  }

  /** The updated to-do, or null when there is none with this id. */
  setDone(id: number, done: boolean): Todo | null {
    const rows = this.ctx.storage.sql.exec<Row>("UPDATE todos SET done = ? WHERE id = ? RETURNING *", done ? 1 : 0, id).toArray();
    return rows.length > 0 ? toTodo(rows[0]!) : null;
  }

  remove(id: number): boolean {
    return this.ctx.storage.sql.exec("DELETE FROM todos WHERE id = ?", id).rowsWritten > 0;
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const match = /^\/lists\/([\w-]{1,64})\/todos(?:\/(\d+))?$/.exec(new URL(request.url).pathname);
    if (!match) return new Response("Not found", { status: 404 });
    const list = env.LISTS.getByName(match[1]!);
    const id = match[2] === undefined ? undefined : Number(match[2]);
    const body = async () => (await request.json().catch(() => ({}))) as Record<string, unknown>;
    const notFound = () => Response.json({ error: `no to-do ${id}` }, { status: 404 });

    if (id === undefined && request.method === "GET") return Response.json(await list.list());
    if (id === undefined && request.method === "POST") {
      const { title } = await body();
      if (typeof title !== "string" || title.trim() === "") {
        return Response.json({ error: 'expected {"title": "…"}' }, { status: 400 });
      }
      return Response.json(await list.add(title.trim()), { status: 201 });
    }
    if (id !== undefined && request.method === "PATCH") {
      const { done } = await body();
      if (typeof done !== "boolean") return Response.json({ error: 'expected {"done": true|false}' }, { status: 400 });
      const todo = await list.setDone(id, done);
      return todo ? Response.json(todo) : notFound();
    }
    if (id !== undefined && request.method === "DELETE") {
      return (await list.remove(id)) ? new Response(null, { status: 204 }) : notFound();
    }
    return new Response("Method not allowed", { status: 405 });
  },
};
