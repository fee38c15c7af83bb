#!/usr/bin/env node
// The `guardian` command. All logic lives in ../src/cli/main.ts; this file only wires the process.
import { main } from '../src/cli/main.ts';

process.exitCode = await main(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
});
