import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { get } from './commands/get';
import { ls, mv, rm, stat } from './commands/files';
import { put } from './commands/put';
import { reindex } from './commands/reindex';
import { status } from './commands/status';
import { CliConfig, DEFAULTS, GlobalOptions, resolveConfig } from './config';
import { CliError, EXIT } from './errors';

const { version } = require('../package.json') as { version: string };

const EXIT_HELP = `
Environment: SONOFS_URL, SONOFS_TOKEN, SONOFS_PREFIX, SONOFS_TUS_PATH (a flag wins over its variable);
unfinished uploads are remembered in $XDG_CONFIG_HOME/sonofs/uploads.json (default ~/.config/sonofs).

Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 auth refused, 5 server unreachable or failing,
6 sha1 mismatch, 130 interrupted (run the same command again to resume).`;

function integer(name: string, min: number, max: number) {
  return (v: string) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    return n;
  };
}

/** The program, with `run` called by each command's action with the resolved configuration. */
function program(run: (action: (cfg: CliConfig) => Promise<void>) => Promise<void>): Command {
  const p = new Command('sonofs')
    .description('Upload, download and manage files on an egg-sonofs node.')
    .version(version, '-V, --version', 'print the version')
    .addOption(new Option('-u, --url <url>', 'the node (with any path it is mounted under)').env('SONOFS_URL').default(DEFAULTS.url))
    .addOption(new Option('-t, --token <token>', 'sent as "Authorization: Bearer <token>" on every request').env('SONOFS_TOKEN'))
    .addOption(new Option('--prefix <path>', 'the plugin\'s route prefix (config.sonofs.prefix)').env('SONOFS_PREFIX').default(DEFAULTS.prefix))
    .addOption(new Option('--tus-path <path>', 'the tus endpoint (config.sonofs.tus.path)').env('SONOFS_TUS_PATH').default(DEFAULTS.tusPath))
    .option('--no-progress', 'draw no progress bars (never drawn when stderr is not a terminal)')
    .option('-v, --verbose', 'print each request, and the stack trace of an error')
    .helpOption('-h, --help', 'show help for sonofs or a command')
    .helpCommand('help [command]', 'show help for a command')
    .configureHelp({ showGlobalOptions: true })
    .addHelpText('after', EXIT_HELP)
    .exitOverride()
    .configureOutput({ outputError: (s, write) => write(`sonofs: ${s.replace(/^error: /, '')}`) });

  p.command('put')
    .description('upload files over tus, resumable; 秒传 (instant) when the node has the content already')
    .argument('<file...>', 'files to upload; - reads standard input')
    .option('-p, --parallel <n>', 'files uploaded at once', integer('--parallel', 1, 64), 2)
    .option('-n, --name <name>', 'the stored name (one file, or standard input: default "stdin")')
    .option('--no-instant', 'always send the bytes (no 秒传 check)')
    .option('--chunk-size <bytes>', 'bytes per request (default: the rest of the file in one; 8 MiB for standard input)', integer('--chunk-size', 1024, 2 ** 40))
    .option('--json', 'one JSON object per file, one per line')
    .addHelpText('after', `
Prints one line per file: name, file id, sha1, and "instant" or the speed.
Ctrl-C or a lost connection: run the same command again and unfinished files go on where they stopped.

Example:
  sonofs put photos/*.jpg --parallel 4`)
    .action((files: string[], o) => run(cfg => put(cfg, files, o)));

  p.command('get')
    .description('download a file, resuming a partial download, and check its sha1')
    .argument('<ref>', 'file id or sha1')
    .option('-o, --output <file>', 'where to write it (default: its name on the server; - for standard output)')
    .option('-f, --force', 'overwrite the output file if it exists')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
The bytes go to FILE.<sha1 prefix>.part first, which a later run resumes (HTTP Range),
and become FILE once their sha1 is the file's. A mismatch exits 6 and removes the partial file.`)
    .action((ref: string, o) => run(cfg => get(cfg, ref, o)));

  p.command('ls')
    .description('list your files, newest first')
    .option('-l, --limit <n>', 'at most this many', integer('--limit', 1, 1000), 100)
    .option('--json', 'print them as a JSON array')
    .action(o => run(cfg => ls(cfg, o)));

  p.command('stat')
    .description('size, type, sha1, name and times of a file')
    .argument('<ref>', 'file id or sha1')
    .option('--json', 'print it as JSON')
    .action((ref: string, o) => run(cfg => stat(cfg, ref, o)));

  p.command('mv')
    .description('rename your file (other users\' names stay)')
    .argument('<ref>', 'file id or sha1')
    .argument('<name>', 'the new name')
    .option('--json', 'print the renamed file as JSON')
    .action((ref: string, name: string, o) => run(cfg => mv(cfg, ref, name, o)));

  p.command('rm')
    .description('remove your files (other users who have the same content keep theirs)')
    .argument('<ref...>', 'file ids or sha1s')
    .option('--json', 'print the removed files as JSON')
    .action((refs: string[], o) => run(cfg => rm(cfg, refs, o)));

  p.command('status')
    .description('the node\'s health and space')
    .option('--json', 'print the report as JSON')
    .action(o => run(cfg => status(cfg, o)));

  p.command('reindex')
    .description('cluster mode: re-create the shared catalog\'s keys in Redis from stopped nodes\' bundles (after Redis lost its data)')
    .option('--root <dir>', 'a stopped node\'s data root (config.sonofs.root); repeat for several', (v: string, all: string[]) => [ ...all, v ], [] as string[])
    .addOption(new Option('--redis <url>', 'the cluster\'s Redis: redis://host:port[/db], or a comma list for a Redis Cluster').env('SONOFS_REDIS_URL'))
    .option('--namespace <name>', 'the cluster\'s namespace (config.sonofs.cluster.namespace)', 'sonofs')
    .option('--no-verify-data', 'do not read every file\'s bytes to check them (faster; a torn file is then not left out)')
    .option('--json', 'print the result per root as JSON')
    .addHelpText('after', `
Run it for the root of every node, in any order, with each node stopped (it takes the root's lock).
Each record changes a key only where it is newer than what the key holds: running it again changes nothing.

Example:
  sonofs reindex --redis redis://127.0.0.1:6379 --root /data/node1 --root /data/node2`)
    .action(o => run(() => reindex(o)));

  return p;
}

/** Runs the command line; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  let verbose = argv.includes('--verbose') || argv.includes('-v');
  let cli: Command;
  const run = async (action: (cfg: CliConfig) => Promise<void>) => {
    const cfg = resolveConfig(cli.opts<GlobalOptions>());
    verbose = cfg.verbose;
    await action(cfg);
  };
  cli = program(run);
  try {
    await cli.parseAsync(argv);
    return EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too; commander has printed what it had to say
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.OK;
      return EXIT.USAGE;
    }
    const e = err instanceof CliError ? err : new CliError(EXIT.GENERAL, (err as Error)?.message ?? String(err), err);
    process.stderr.write(`sonofs: ${e.message}\n`);
    if (verbose) process.stderr.write(`${((e.cause ?? e) as Error)?.stack ?? ''}\n`);
    return e.exit;
  }
}

/** bin/sonofs: exits with main's code once stdout has been written out. */
export function run(): void {
  main(process.argv).then(code => {
    process.stdout.write('', () => process.exit(code));
  });
}
