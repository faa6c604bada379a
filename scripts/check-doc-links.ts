// `npm run lint` runs this: every relative link in README.md and docs/**/*.md must resolve, and a `#anchor`
// into a markdown file must name one of its headings (GitHub's slugs). Prints each broken link as
// `file:line: link` and exits 1 if there is any. Links with a scheme (https:, mailto:) are not checked. Paths of the
// repository named in the docs (src/..., test/..., deploy/...) and the docs cited by comments in src/ must exist too.
// No markdown library is a dependency of the project, so this reads the little markdown it needs itself:
// fenced code blocks and inline code are skipped, inline links, images and reference definitions are read.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(__dirname, '..');

interface Link {
  line: number;
  target: string;
}

function markdownFiles(): string[] {
  const files = [join(root, 'README.md')];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.md')) files.push(path);
    }
  };
  if (existsSync(join(root, 'docs'))) walk(join(root, 'docs'));
  return files.sort();
}

// The text with fenced code blocks blanked out (newlines kept, so line numbers stay those of the file).
function withoutFences(text: string): string {
  const lines = text.split('\n');
  let fence: { char: string; length: number } | undefined;
  const kept = lines.map((line) => {
    const opening = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (fence) {
      const closing = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(line);
      if (closing?.[1]?.[0] === fence.char && closing[1].length >= fence.length) fence = undefined;
      return '';
    }
    if (opening?.[1]) {
      fence = { char: opening[1][0] ?? '`', length: opening[1].length };
      return '';
    }
    return line;
  });
  return kept.join('\n');
}

// ... and inline code spans too. A span may wrap onto the next line; it is closed by a run of backticks of the
// same length.
function withoutCode(text: string): string {
  return withoutFences(text).replace(/(`+)[\s\S]*?\1/g, (span) => span.replace(/[^\n]/g, ' '));
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) if (text[i] === '\n') line++;
  return line;
}

function linksOf(text: string): Link[] {
  const prose = withoutCode(text);
  const links: Link[] = [];
  // Inline links and images: ](target) or ](<target>), with an optional title.
  for (const m of prose.matchAll(/\]\(\s*(<[^>\n]*>|[^()\s]+)(?:\s+("[^"]*"|'[^']*'|\([^)]*\)))?\s*\)/g)) {
    const raw = m[1] ?? '';
    links.push({ line: lineAt(prose, m.index), target: raw.replace(/^<|>$/g, '') });
  }
  // Reference definitions: [label]: target
  for (const m of prose.matchAll(/^ {0,3}\[[^\]\n]+\]:\s*(<[^>\n]*>|\S+)/gm)) {
    const raw = m[1] ?? '';
    links.push({ line: lineAt(prose, m.index), target: raw.replace(/^<|>$/g, '') });
  }
  return links.sort((a, b) => a.line - b.line);
}

// GitHub's heading anchors: the heading's text as rendered, lower-cased, punctuation dropped (letters, digits,
// spaces, hyphens and underscores kept), spaces turned into hyphens; a repeated slug gets -1, -2, ...
function slug(heading: string): string {
  const rendered = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links and images: their text
    .replace(/<[^>]+>/g, '') // inline HTML
    .replace(/`/g, '')
    .replace(/(^|[^\p{L}\p{N}])[*_]+|[*_]+(?=[^\p{L}\p{N}]|$)/gu, '$1'); // emphasis markers
  return rendered
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\p{M} _-]/gu, '')
    .replace(/ /g, '-');
}

const anchorCache = new Map<string, Set<string>>();

function anchorsOf(file: string): Set<string> {
  const cached = anchorCache.get(file);
  if (cached) return cached;
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of withoutFences(readFileSync(file, 'utf8')).split('\n')) {
    const heading = /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(line);
    if (heading) {
      const base = slug(heading[1] ?? '');
      const count = seen.get(base) ?? 0;
      seen.set(base, count + 1);
      anchors.add(count === 0 ? base : `${base}-${count}`);
    }
    for (const m of line.matchAll(/<a\s[^>]*(?:name|id)="([^"]+)"/g)) anchors.add(m[1] ?? '');
  }
  anchorCache.set(file, anchors);
  return anchors;
}

function problem(file: string, target: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) return undefined; // not relative
  const hash = target.indexOf('#');
  const pathPart = hash >= 0 ? target.slice(0, hash) : target;
  const anchor = hash >= 0 ? target.slice(hash + 1) : undefined;
  let path: string;
  try {
    path = pathPart === '' ? file : resolve(dirname(file), decodeURIComponent(pathPart.split('?')[0] ?? ''));
  } catch {
    return 'malformed';
  }
  if (!existsSync(path)) return 'no such file';
  if (anchor === undefined || anchor === '') return undefined;
  if (statSync(path).isDirectory() || !path.endsWith('.md')) return undefined;
  let wanted: string;
  try {
    wanted = decodeURIComponent(anchor).toLowerCase();
  } catch {
    return 'malformed anchor';
  }
  return anchorsOf(path).has(wanted) ? undefined : 'no such heading';
}

let broken = 0;
const files = markdownFiles();
let checked = 0;
for (const file of files) {
  for (const link of linksOf(readFileSync(file, 'utf8'))) {
    checked++;
    const why = problem(file, link.target);
    if (why) {
      broken++;
      console.log(`${relative(root, file)}:${link.line}: ${link.target} (${why})`);
    }
  }
}
// Paths of this repository named in the docs (`src/drivers/clusterServices.ts`) and the docs that code comments
// cite (`docs/runbooks/rollback-restore.md`) must exist too.
const REPO_PATH = /(?<![\w./-])((?:src|test|docs|deploy|bench|scripts)\/[\w./-]*\w\.(?:ts|md|ya?ml|sh|json))\b/g;
function missingPaths(file: string, text: string): void {
  for (const m of text.matchAll(REPO_PATH)) {
    checked++;
    if (existsSync(join(root, m[1] ?? ''))) continue;
    broken++;
    console.log(`${relative(root, file)}:${lineAt(text, m.index)}: ${m[1]} (no such file in the repository)`);
  }
}
for (const file of files) missingPaths(file, readFileSync(file, 'utf8'));
const sources = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
for (const file of sources(join(root, 'src'))) {
  const text = readFileSync(file, 'utf8');
  for (const m of text.matchAll(/(?<![\w./-])docs\/[\w./-]*\.md/g)) {
    checked++;
    if (existsSync(join(root, m[0]))) continue;
    broken++;
    console.log(`${relative(root, file)}:${lineAt(text, m.index)}: ${m[0]} (cited, but no such file)`);
  }
}
if (broken > 0) {
  console.log(`${broken} broken link(s) in ${files.length} markdown files`);
  process.exit(1);
}
console.log(`doc links: ${checked} links and paths in ${files.length} markdown files and src/, all resolve`);
