import { readFile } from 'node:fs/promises';

/** One non-empty JSONL line: its 1-based number and its parsed value, or why it is not JSON. */
export type JsonlLine = { line: number; value: unknown } | { line: number; error: string };

/** Read a JSONL text. Blank lines are skipped (they keep their numbers). */
export function parseJsonl(text: string): JsonlLine[] {
  const out: JsonlLine[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] ?? '').replace(/\r$/, '');
    if (raw.trim() === '') continue;
    try {
      out.push({ line: i + 1, value: JSON.parse(raw) });
    } catch (err) {
      out.push({ line: i + 1, error: `not valid JSON (${(err as Error).message.replace(/\s+/g, ' ')})` });
    }
  }
  return out;
}

/** The file's text, or stdin's for `-`. */
export async function readJsonlSource(file: string, stdin: NodeJS.ReadableStream = process.stdin): Promise<string> {
  if (file !== '-') return readFile(file, 'utf8');
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
