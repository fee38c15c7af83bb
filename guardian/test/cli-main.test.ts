/**
 * `guardian --help` lists the commands from main.ts's table without loading any command module
 * (so it answers at once); the table's summaries are the commands' own; `--version` prints the
 * guardian's version.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

import { COMMAND_TABLE } from '../src/cli/main.ts';
import { cli } from './cli-helpers.ts';

describe('guardian --help and --version', () => {
  it.each(Object.entries(COMMAND_TABLE))('the summary of %s in --help is the command module\'s own', async (name, entry) => {
    const { command } = await entry.load();
    expect(command.name).toBe(name);
    expect(entry.summary).toBe(command.summary);
  });

  it('--help lists every command; --version prints the version', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    for (const name of Object.keys(COMMAND_TABLE)) expect(help.stdout).toMatch(new RegExp(`^  ${name} +\\S`, 'm'));
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    const version = await cli(['--version']);
    expect(version).toEqual({ code: 0, stdout: `guardian ${pkg.version} (node ${process.versions.node}, from source)\n`, stderr: '' });
  });
});

describe('README commands', () => {
  it('shell examples never run the TypeScript with a bare `node` (the machine\'s Node may be 20): npm run or npx', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const blocks = [...readme.matchAll(/```(?:sh|bash|shell)\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
    const bare = blocks.flatMap((b) => b.split('\n')).filter((line) => /^\s*(?:[A-Z_]+=\S+\s+)*node\s+\S+\.ts\b/.test(line));
    expect(bare).toEqual([]);
  });
});
