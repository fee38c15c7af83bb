import { z } from 'zod';
import { RulesFileSchema } from './schema.ts';

/**
 * The JSON Schema (draft 2020-12) of a rules file as written, generated from the zod schema
 * (`io: 'input'`: durations as text, defaults optional). `rules/schema.json` holds this text.
 *
 * @example
 * await writeFile('rules/schema.json', rulesJsonSchemaText());
 */
export function rulesJsonSchemaText(): string {
  const schema = z.toJSONSchema(RulesFileSchema, { io: 'input', target: 'draft-2020-12', unrepresentable: 'any' });
  // Top-level `x-…` keys hold shared YAML anchors; the parser drops them (parse.ts withoutExtensionKeys).
  const withExtensions = { ...schema, patternProperties: { '^x-': { description: 'Extension key: a place for YAML anchors shared by rules (ignored).' } } };
  return `${JSON.stringify({ ...withExtensions, $id: 'https://rollback-guardian.dev/rules/schema.json' }, null, 2)}\n`;
}
