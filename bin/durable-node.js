#!/usr/bin/env node
// The `durable-node` command (see lib/cli.ts).
import { main } from "../dist/cli.js";

process.exitCode = await main(process.argv.slice(2));
