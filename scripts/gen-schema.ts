// Writes rules/schema.json (JSON Schema for editors) from the zod rules schema, the one source
// of truth. Run: npx node scripts/gen-schema.ts   (a test fails when the committed file is stale)
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { rulesJsonSchemaText } from '../guardian/src/rules/json-schema.ts';

const target = fileURLToPath(new URL('../rules/schema.json', import.meta.url));
await writeFile(target, rulesJsonSchemaText());
console.log(`wrote ${target}`);
