#!/usr/bin/env node
'use strict';
// Summarizes .cpuprofile files (from bench/lib/cpu-profile.js or node --cpu-prof):
// per file, the busy share, then self time by package and the top functions.
//   node bench/profile-summary.js <dir or files...> [--top 30]
const fs = require('node:fs');
const path = require('node:path');

const args = process.argv.slice(2);
const topAt = args.indexOf('--top');
const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 30;
const files = args.flatMap(a => fs.statSync(a).isDirectory()
  ? fs.readdirSync(a).filter(f => f.endsWith('.cpuprofile')).map(f => path.join(a, f))
  : [ a ]);

for (const file of files) {
  const p = JSON.parse(fs.readFileSync(file, 'utf8'));
  const byId = new Map(p.nodes.map(n => [ n.id, n ]));
  const self = new Map();
  const dt = p.timeDeltas;
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i];
    self.set(id, (self.get(id) || 0) + (dt[i + 1] ?? 0));
  }
  const total = (p.endTime - p.startTime);
  let idle = 0;
  const byFn = new Map();
  const byPkg = new Map();
  for (const [ id, us ] of self) {
    const n = byId.get(id);
    const f = n.callFrame;
    if (f.functionName === '(idle)') { idle += us; continue; }
    const where = pkgOf(f.url);
    const key = `${f.functionName || '(anonymous)'} ${where}:${f.lineNumber + 1}`;
    byFn.set(key, (byFn.get(key) || 0) + us);
    byPkg.set(where.split(' ')[0], (byPkg.get(where.split(' ')[0]) || 0) + us);
  }
  const busy = total - idle;
  console.log(`\n== ${path.basename(file)}: ${(total / 1e6).toFixed(1)} s, busy ${(100 * busy / total).toFixed(0)}%`);
  const pct = us => `${(100 * us / busy).toFixed(1).padStart(5)}%`;
  console.log('-- self time by package (share of busy time)');
  for (const [ k, us ] of [ ...byPkg ].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`${pct(us)}  ${k}`);
  console.log('-- top functions (self)');
  for (const [ k, us ] of [ ...byFn ].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${k}`);
  console.log('-- top functions (inclusive: with what they call)');
  for (const [ k, us ] of [ ...inclusive(p.nodes, self) ].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${k}`);
}

/** Time in each function and below it, a recursive call counted once. */
function inclusive(nodes, self) {
  const byId = new Map(nodes.map(n => [ n.id, n ]));
  const out = new Map();
  const walk = (id, onStack) => {
    const n = byId.get(id);
    const f = n.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${pkgOf(f.url)}:${f.lineNumber + 1}`;
    let total = self.get(id) || 0;
    const fresh = !onStack.has(key);
    if (fresh) onStack.add(key);
    for (const c of n.children || []) total += walk(c, onStack);
    if (fresh) {
      onStack.delete(key);
      if (!/^\((root|program|idle|garbage collector)\)/.test(key)) out.set(key, (out.get(key) || 0) + total);
    }
    return total;
  };
  walk(nodes[0].id, new Set());
  return out;
}

/** node_modules/<pkg>, the project's own file, node:internal, or (native). */
function pkgOf(url) {
  if (!url) return '(native/gc)';
  const m = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/);
  if (m) {
    const all = [ ...url.matchAll(/node_modules\/((?:@[^/]+\/)?[^/]+)/g) ];
    return `${all[all.length - 1][1]} ${m[2].split('node_modules/').pop()}`;
  }
  if (url.startsWith('node:')) return url;
  return url.replace(/^file:\/\//, '').replace(/^.*\/(dist|sbuild|egg-sonofs[^/]*)\//, '');
}
