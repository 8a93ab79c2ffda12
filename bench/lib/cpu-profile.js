'use strict';
// Preloaded into server processes to take a CPU profile of the measured part of a run:
//   BENCH_CPU_PROFILE=<dir>[,<delay s>[,<seconds>]] NODE_OPTIONS="--require $PWD/bench/lib/cpu-profile.js" node bench/upload.js ...
// Egg workers are forked and stopped by their master, and `node --cpu-prof` writes
// only at a clean exit; this profiles a window instead, through node:inspector, in
// every process whose script matches BENCH_CPU_PROFILE_MATCH (egg app and agent
// workers, the raw and tus servers), and writes <dir>/<script>-<pid>.cpuprofile.
// Summarize with `node bench/profile-summary.js <dir>`.
const inspector = require('node:inspector');
const fs = require('node:fs');
const path = require('node:path');

const [ dir, delayS = '8', seconds = '5' ] = (process.env.BENCH_CPU_PROFILE || '').split(',');
const match = new RegExp(process.env.BENCH_CPU_PROFILE_MATCH || 'app_worker|agent_worker|raw\\.js|tus-server\\.js');
const script = path.basename(process.argv[1] || '');

if (dir && match.test(process.argv[1] || '')) {
  const session = new inspector.Session();
  session.connect();
  session.post('Profiler.enable', () => session.post('Profiler.setSamplingInterval', { interval: 250 }));
  let state = 'waiting';
  const write = () => {
    if (state !== 'running') return;
    state = 'done';
    // an in-process inspector session answers synchronously, so this works in an 'exit' handler too
    session.post('Profiler.stop', (err, result) => {
      if (err) return console.error(`cpu-profile: ${err.message}`);
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, `${script.replace(/\.js$/, '')}-${process.pid}.cpuprofile`);
      fs.writeFileSync(file, JSON.stringify(result.profile));
      console.error(`cpu-profile: wrote ${file}`);
    });
  };
  setTimeout(() => {
    state = 'running';
    session.post('Profiler.start');
    setTimeout(write, Number(seconds) * 1000).unref();
  }, Number(delayS) * 1000).unref();
  // the server may be stopped before the window ends: keep what was taken
  process.on('exit', write);
}
