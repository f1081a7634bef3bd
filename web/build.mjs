// Builds the dashboard and the C++ source that embeds it (src/web/CMakeLists.txt runs this).
//
//   node build.mjs --out DIR [--no-typecheck]
//
// 1. type-checks web/src with tsc (the bundler strips types without checking them);
// 2. bundles src/main.tsx with esbuild into DIR/dist/assets/ with content-hashed names
//    (main-<hash>.js, main-<hash>.css, favicon-<hash>.svg);
// 3. writes DIR/dist/index.html naming those files;
// 4. gzips every file (level 9; kept when smaller);
// 5. writes DIR/web_assets.cpp: every file's bytes (and gzip copy) as arrays, and
//    opensense::web::EmbeddedAssets() listing them; rewritten only when its text changes, so an
//    unchanged dashboard recompiles nothing;
// 6. writes DIR/sizes.json (raw and gzip bytes per file) for docs/performance.md.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const outIndex = args.indexOf('--out');
if (outIndex < 0 || !args[outIndex + 1]) {
  console.error('usage: node build.mjs --out DIR [--no-typecheck]');
  process.exit(2);
}
const out = path.resolve(args[outIndex + 1]);
const dist = path.join(out, 'dist');

if (!args.includes('--no-typecheck')) {
  const tsc = path.join(here, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '--noEmit', '-p', here], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('web: type errors (above); the dashboard was not built');
    process.exit(1);
  }
}

fs.rmSync(dist, { recursive: true, force: true });
fs.mkdirSync(path.join(dist, 'assets'), { recursive: true });

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: ['src/main.tsx'],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  outdir: path.join(dist, 'assets'),
  entryNames: '[name]-[hash]',
  chunkNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  splitting: true,
  jsx: 'automatic',
  jsxImportSource: 'preact',
  loader: { '.svg': 'file' },
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});
if (result.errors.length > 0) process.exit(1);

// The favicon, hashed like everything under /assets/.
const favicon = fs.readFileSync(path.join(here, 'src', 'favicon.svg'));
const faviconName = `favicon-${createHash('sha256').update(favicon).digest('hex').slice(0, 10)}.svg`;
fs.writeFileSync(path.join(dist, 'assets', faviconName), favicon);

const outputs = Object.keys(result.metafile.outputs).map((p) => path.basename(p));
const js = outputs.find((f) => f.startsWith('main-') && f.endsWith('.js'));
// Chunks loaded on demand (the device page with uPlot) must not carry CSS of their own: nothing
// would load it. Their styles are imported by main.tsx.
const strayCss = outputs.filter((f) => f.endsWith('.css') && !f.startsWith('main-'));
if (strayCss.length > 0) {
  console.error('web: CSS in a lazily loaded chunk (import it from main.tsx instead): ' + strayCss.join(', '));
  process.exit(1);
}
const css = outputs.find((f) => f.startsWith('main-') && f.endsWith('.css'));
if (!js || !css) {
  console.error('web: esbuild produced no main js/css: ' + outputs.join(', '));
  process.exit(1);
}
const template = fs.readFileSync(path.join(here, 'index.html'), 'utf8');
const html = template
  .replace('{{CSS}}', `/assets/${css}`)
  .replace('{{JS}}', `/assets/${js}`)
  .replace(
    '{{PRELOAD}}',
    // The chunks main imports statically: fetched at once rather than after main is parsed.
    Object.entries(result.metafile.outputs)
      .filter(([p]) => path.basename(p) === js)
      .flatMap(([, o]) => o.imports.filter((i) => i.kind === 'import-statement'))
      .map((i) => `<link rel="modulepreload" href="/assets/${path.basename(i.path)}">`)
      .join('\n'),
  )
  .replace('{{FAVICON}}', `/assets/${faviconName}`);
fs.writeFileSync(path.join(dist, 'index.html'), html);

const types = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
};
const files = [{ url: '/index.html', file: path.join(dist, 'index.html') }];
for (const f of fs.readdirSync(path.join(dist, 'assets')).sort()) {
  files.push({ url: `/assets/${f}`, file: path.join(dist, 'assets', f) });
}

const sizes = {};
let arrays = '';
let table = '';
files.forEach((f, i) => {
  const body = fs.readFileSync(f.file);
  const gz = zlib.gzipSync(body, { level: 9 });
  const useGz = gz.length < body.length;
  if (useGz) fs.writeFileSync(f.file + '.gz', gz);
  sizes[f.url] = { bytes: body.length, gzip: useGz ? gz.length : body.length };
  arrays += bytes(`kFile${i}`, body);
  if (useGz) arrays += bytes(`kFile${i}Gz`, gz);
  const type = types[path.extname(f.url)] ?? 'application/octet-stream';
  table +=
    `      {${JSON.stringify(f.url)}, ${JSON.stringify(type)}, View(kFile${i}, ${body.length}), ` +
    (useGz ? `View(kFile${i}Gz, ${gz.length})},\n` : `{}},\n`);
});

const cpp = `// Generated by web/build.mjs from web/: do not edit. The dashboard's files, embedded.
#include "web/dashboard.hpp"

namespace opensense::web {
namespace {

std::string_view View(const unsigned char* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

${arrays}
}  // namespace

const std::vector<Asset>& EmbeddedAssets() {
  static const std::vector<Asset> assets = {
${table}  };
  return assets;
}

}  // namespace opensense::web
`;
const target = path.join(out, 'web_assets.cpp');
if (!fs.existsSync(target) || fs.readFileSync(target, 'utf8') !== cpp) fs.writeFileSync(target, cpp);
fs.writeFileSync(path.join(out, 'sizes.json'), JSON.stringify(sizes, null, 2) + '\n');
const total = (k) => Object.entries(sizes).filter(([u]) => /\.(js|css)$/.test(u)).reduce((n, [, s]) => n + s[k], 0);
console.log(`web: dashboard built: JS+CSS ${total('bytes')} bytes, ${total('gzip')} bytes gzip`);

function bytes(name, buf) {
  const lines = [];
  for (let i = 0; i < buf.length; i += 32) lines.push(Array.from(buf.subarray(i, i + 32)).join(','));
  return `alignas(16) const unsigned char ${name}[] = {\n${lines.join(',\n')}};\n`;
}
