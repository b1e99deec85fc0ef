// A cap on how many object databases keep their files open at once.

import type { StorageCore } from "./storage.js";

/**
 * Each open database holds three file descriptors (the file, its WAL and its shared memory), and
 * objects stay loaded for a while after use, so thousands of them would exhaust the process's
 * limit. Past the cap, the least recently used idle databases are closed; they reopen on their
 * next use (which costs milliseconds, hence the recency order).
 */
export class OpenFiles {
  /** In order of last use, oldest first. */
  readonly #open = new Set<StorageCore>();
  #last: StorageCore | undefined;

  constructor(readonly max: number) {}

  /** `core` was used: it moves to the recent end (cheaply skipped for repeated use). */
  used(core: StorageCore): void {
    if (core === this.#last) return;
    this.#last = core;
    if (this.#open.delete(core)) this.#open.add(core);
  }

  opened(core: StorageCore): void {
    this.#open.add(core);
    this.#last = core;

    if (this.#open.size <= this.max) return;
    for (const candidate of this.#open) {
      if (this.#open.size <= this.max) break;
      if (candidate !== core && candidate.closeIfIdle()) this.#open.delete(candidate);
    }
  }

  closed(core: StorageCore): void {
    this.#open.delete(core);
    if (this.#last === core) this.#last = undefined;
  }
}
