// A cap on how many object databases keep their files open at once.

import type { StorageCore } from "./storage.js";

/**
 * Each open database holds three file descriptors (the file, its WAL and its shared memory), and
 * objects stay loaded for a while after use, so thousands of them would exhaust the process's
 * limit. Past the cap, the longest-open idle databases are closed; they reopen on their next use.
 */
export class OpenFiles {
  readonly #open = new Set<StorageCore>();

  constructor(readonly max: number) {}

  opened(core: StorageCore): void {
    this.#open.add(core);
    if (this.#open.size <= this.max) return;
    for (const candidate of this.#open) {
      if (this.#open.size <= this.max) break;
      if (candidate !== core && candidate.closeIfIdle()) this.#open.delete(candidate);
    }
  }

  closed(core: StorageCore): void {
    this.#open.delete(core);
  }
}
