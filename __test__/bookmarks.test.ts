// Point-in-time recovery (spec §10, lines 247–250): bookmarks of real past states, restored when
// the object next starts. Persisted objects only; in memory, workerd's answer (spec 249).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createRuntime, type Runtime } from "../lib/index.js";
import { Journal } from "./fixtures/bookmark-objects.js";
import { rejection } from "./helpers.js";

const BOOKMARK = /^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$/;
const NOT_AVAILABLE = "This Durable Object's storage back-end does not implement point-in-time recovery.";

const runtimes: Runtime[] = [];
const dirs: string[] = [];

function start(dir: string | false, legacy = false) {
  const runtime = createRuntime({
    durableObjects: { JOURNAL: legacy ? { class: Journal, sqlite: false } : Journal },
    persist: dir,
  });
  runtimes.push(runtime);
  return runtime;
}

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dn-bookmarks-"));
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  for (const runtime of runtimes.splice(0)) await runtime.dispose();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe("bookmarks", () => {
  it("getCurrentBookmark(): 8-8-8-32 hex digits, later bookmarks sort after earlier ones (spec 247)", async () => {
    const journal = start(tempDir()).env.JOURNAL.getByName("a");
    await journal.write("one");
    const first = await journal.bookmark();
    await journal.write("two");
    const second = await journal.bookmark();
    expect(first).toMatch(BOOKMARK);
    expect(second).toMatch(BOOKMARK);
    expect(second > first).toBe(true);
  });

  it("onNextSessionRestoreBookmark(): the state comes back when the object next starts; the undo bookmark reverses it (spec 250)", async () => {
    const runtime = start(tempDir());
    const journal = runtime.env.JOURNAL.getByName("a");
    await journal.write("one");
    const before = await journal.bookmark();
    await journal.write("two");
    const undo = await journal.restoreNextTime(before);
    expect(undo).toMatch(BOOKMARK);
    expect(await journal.read(), "nothing changes until the object restarts").toEqual({ value: "two", log: ["one", "two"] });
    await rejection(journal.restart());
    const restarted = runtime.env.JOURNAL.getByName("a");
    expect(await restarted.read()).toEqual({ value: "one", log: ["one"] });
    await restarted.restoreNextTime(undo);
    await rejection(restarted.restart());
    expect(await runtime.env.JOURNAL.getByName("a").read()).toEqual({ value: "two", log: ["one", "two"] });
  });

  it("getBookmarkForTime(): the state as it was at that time", async () => {
    const runtime = start(tempDir());
    const journal = runtime.env.JOURNAL.getByName("a");
    await journal.write("one");
    await journal.bookmark();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const between = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await journal.write("two");
    await journal.bookmark();
    const then = await journal.bookmarkFor(between);
    expect(await journal.bookmarkFor(new Date(between) as never)).toBe(then);
    await journal.restoreNextTime(then);
    await rejection(journal.restart());
    expect(await runtime.env.JOURNAL.getByName("a").read()).toEqual({ value: "one", log: ["one"] });
  });

  it("bookmarks outlive the process: a new runtime on the same folder restores one", async () => {
    const dir = tempDir();
    const first = start(dir);
    await first.env.JOURNAL.getByName("a").write("one");
    const bookmark = await first.env.JOURNAL.getByName("a").bookmark();
    await first.env.JOURNAL.getByName("a").write("two");
    await first.dispose();
    const second = start(dir);
    const journal = second.env.JOURNAL.getByName("a");
    expect(await journal.read()).toEqual({ value: "two", log: ["one", "two"] });
    await journal.restoreNextTime(bookmark);
    await rejection(journal.restart());
    expect(await second.env.JOURNAL.getByName("a").read()).toEqual({ value: "one", log: ["one"] });
  });

  it("a restore brings back the alarm of that state: a deleted alarm fires again, a later one is dropped", async () => {
    const runtime = start(tempDir());
    const journal = runtime.env.JOURNAL.getByName("a");
    const due = Date.now() + 150;
    await journal.setAlarm(due);
    const withAlarm = await journal.bookmark();
    await journal.setAlarm(null);
    await journal.restoreNextTime(withAlarm);
    await rejection(journal.restart());
    const restarted = runtime.env.JOURNAL.getByName("a");
    expect(await restarted.alarmAt()).toBe(due);
    await expect.poll(() => restarted.alarmed(), { timeout: 3000 }).toBe(true);

    const other = runtime.env.JOURNAL.getByName("b");
    await other.write("one");
    const withoutAlarm = await other.bookmark();
    await other.setAlarm(Date.now() + 150);
    await other.restoreNextTime(withoutAlarm);
    await rejection(other.restart());
    const back = runtime.env.JOURNAL.getByName("b");
    expect(await back.alarmAt()).toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await back.alarmed()).toBe(false);
  });

  it("getCurrentBookmark() inside a transaction is refused: that state is not committed yet", async () => {
    const journal = start(tempDir()).env.JOURNAL.getByName("a");
    await journal.write("one");
    const err = await rejection(journal.bookmarkInTransaction());
    expect(err.message).toBe("getCurrentBookmark() cannot be called inside a transaction: its state is not committed yet.");
    expect(await journal.bookmark()).toMatch(BOOKMARK);
  });

  it("an unknown bookmark, or a time before the history kept → RangeError", async () => {
    const journal = start(tempDir()).env.JOURNAL.getByName("a");
    await journal.write("one");
    await journal.bookmark();
    const unknown = "00000000-00000000-000000ff-00000000000000000000000000000000";
    const err = await rejection(journal.restoreNextTime(unknown));
    expect(err).toBeInstanceOf(RangeError);
    expect(err.message).toBe(`Unknown or expired bookmark: ${unknown}`);
    const early = await rejection(journal.bookmarkFor(1));
    expect(early).toBeInstanceOf(RangeError);
    expect(early.message).toMatch(/^No bookmark for 1: this object's recorded history starts at \d+\.$/);
  });

  it("in memory, and for KV-backed classes: workerd's answer (spec 249)", async () => {
    for (const journal of [start(false).env.JOURNAL.getByName("m"), start(tempDir(), true).env.JOURNAL.getByName("k")]) {
      for (const call of [() => journal.bookmark(), () => journal.bookmarkFor(Date.now()), () => journal.restoreNextTime("x")]) {
        const err = await rejection(call());
        expect(err.message).toBe(NOT_AVAILABLE);
      }
    }
  });
});
