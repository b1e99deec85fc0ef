// wrangler `migrations` applied to persisted state, each tag once: renamed and transferred classes
// keep their objects under the new name, deleted classes lose theirs. New classes need nothing.

import path from "node:path";
import { ConfigError, type WorkerConfig } from "../config.js";
import { call, native } from "../native.js";

const CLASS_NAME = /^[A-Za-z_$][\w$]*$/;

/** Applies the config's migrations not yet applied to the state in `persistDir`; returns their tags. */
export function applyMigrations(config: WorkerConfig, persistDir: string): string[] {
  const file = path.basename(config.path);
  const worker = config.name ?? path.basename(config.dir);
  const applied: string[] = [];
  if (config.migrations.length === 0) return applied;
  const store = call(() => new native.RuntimeStore(persistDir));
  try {
    config.migrations.forEach((migration, i) => {
      const key = `${file}: migrations[${i}]`;
      const checked = (name: string, field: string) => {
        if (!CLASS_NAME.test(name)) throw new ConfigError(`${key}.${field}: "${name}" is not a class name`);
        return name;
      };
      const renames = [
        ...migration.renamedClasses.flatMap(({ from, to }) => [checked(from, "renamed_classes"), checked(to, "renamed_classes")]),
        ...migration.transferredClasses.flatMap(({ from, to }) => [
          checked(from, "transferred_classes"),
          checked(to, "transferred_classes"),
        ]),
      ];
      const deletes = migration.deletedClasses.map((name) => checked(name, "deleted_classes"));
      if (call(() => store.migrate(persistDir, worker, migration.tag, renames, deletes))) applied.push(migration.tag);
    });
  } finally {
    store.close();
  }
  return applied;
}
