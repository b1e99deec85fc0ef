// Compatibility dates and flags (spec §13) that change Durable Object behaviour.

export interface Compat {
  /** `deleteAll()` also deletes the alarm (default from 2026-02-24). */
  readonly deleteAllDeletesAlarm: boolean;
  /** `ctx.exports` (default from 2025-11-17). */
  readonly ctxExports: boolean;
  /** The `experimental` flag: APIs such as `sql.setMaxPageCountForTest`. */
  readonly experimental: boolean;
}

export function compat(date: string | undefined, flags: readonly string[] = []): Compat {
  const day = date ?? new Date().toISOString().slice(0, 10);
  const flag = (on: string, off: string, since: string) =>
    flags.includes(on) || (!flags.includes(off) && day >= since);
  return {
    deleteAllDeletesAlarm: flag("delete_all_deletes_alarm", "delete_all_preserves_alarm", "2026-02-24"),
    ctxExports: flag("enable_ctx_exports", "disable_ctx_exports", "2025-11-17"),
    experimental: flags.includes("experimental"),
  };
}
