'use strict';
// One place for "undo this at the end": servers to stop, temp dirs to delete.
// Runs on normal completion (callers await runCleanup) and on SIGINT/SIGTERM.

const tasks = [];

/** Registers an async undo step; returns a function that runs it now (once) and unregisters it. */
function onCleanup(fn) {
  const task = { fn, done: false };
  tasks.push(task);
  return async () => {
    if (task.done) return;
    task.done = true;
    tasks.splice(tasks.indexOf(task), 1);
    await fn();
  };
}

/** Runs every registered step, newest first; a failing step does not stop the others. */
async function runCleanup() {
  while (tasks.length) {
    const task = tasks.pop();
    task.done = true;
    try {
      await task.fn();
    } catch (err) {
      console.error('cleanup failed:', err.message);
    }
  }
}

for (const signal of [ 'SIGINT', 'SIGTERM' ]) {
  // once: a second Ctrl-C falls back to the default and kills us at once
  process.once(signal, async () => {
    console.error(`\n${signal}: stopping servers and removing temp files...`);
    await runCleanup();
    process.exit(130);
  });
}

module.exports = { onCleanup, runCleanup };
