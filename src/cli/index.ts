#!/usr/bin/env node
/**
 * `shmring`: an `ipcs`-like tool that understands channels.
 *
 * ```sh
 * shmring ls [prefix] [--json]          # every channel: kind, sync, capacity, bytes used, ...
 * shmring stat <ch> [--watch] [--json]  # header fields, participants, lag per subscriber
 * shmring tail <ch> [--count N] [--from earliest|latest|<position>] [--durable <name>]
 *                                       # decoded messages as JSON lines
 * shmring pub <ch> [json] [--create]    # one message, or JSON lines from stdin
 * shmring rm <ch> | --stale             # remove a channel, or every stale one
 * shmring rm <ch> --subscriber <name>   # remove a named subscriber of a channel
 * shmring demo | bench                  # the two-process demo; the benchmark suite
 * shmring bridge export <ch> --nats <url> --subject <s> [--jetstream [--stream <n>] [--no-create]]
 * shmring bridge import <s> <ch> --nats <url> [--jetstream --stream <n> --durable <c>] [--create]
 * ```
 *
 * Every command takes `--dir <path>`: the directory of the channels (default the
 * `SHMRING_DIR` environment variable when set, else `/dev/shm`).
 *
 * Every command has `--help`; errors print one line `shmring <command>: <reason>` to stderr
 * and exit with status 1.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError as CommanderArgumentError, Option } from 'commander';
import {
  type Channel,
  type ChannelStats,
  type CodecName,
  list,
  open,
  unlink,
  unlinkIfStale,
} from '../index.js';
import { addBridge } from './bridge.js';
import { bytes, listingJson, statText, table, toJson } from './format.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The package root (`dist/cli/..`/..). */
const root = join(here, '..', '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  version: string;
  scripts?: Record<string, string>;
};

/** An error the user can act on: printed as one line, exit status 1. */
class CliError extends Error {}

/** Runs a command body; any error becomes one line on stderr and exit status 1. */
function action<A extends unknown[]>(
  command: string,
  body: (...args: A) => Promise<void> | void,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await body(...args);
    } catch (e) {
      const message = (e instanceof Error ? e.message : String(e)).split('\n')[0];
      process.stderr.write(`shmring ${command}: ${message}\n`);
      process.exitCode = 1;
    }
  };
}

const positiveInt = (what: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new CommanderArgumentError(`${what} must be >= 1`);
  return n;
};

/**
 * `tail --durable`: reads as the named subscriber with `receiveSync`, which consumes a message
 * at the next call, so exactly what was printed is consumed: after the last one (the count,
 * or Ctrl-C) one more call consumes it (a message that call takes stays unconsumed for the
 * next reader of the name). Waits in 50 ms calls, yielding to the event loop in between.
 */
async function tailDurable(
  ch: Channel<unknown>,
  durable: string,
  from: 'latest' | 'earliest' | number | undefined,
  count: number | undefined,
  print: (value: unknown, position: number) => void,
): Promise<void> {
  let stop = false;
  const onSignal = (): void => {
    stop = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.stderr.write(
    `tailing ${ch.name} as subscriber ${durable}${count === undefined ? ' (Ctrl-C to stop)' : ` for ${count} messages`}\n`,
  );
  let seen = 0;
  try {
    while (!stop && (count === undefined || seen < count)) {
      const m = ch.receiveSync(50, { durable, from });
      if (m === undefined) await new Promise((r) => setImmediate(r));
      else {
        print(m.value, m.position);
        seen++;
      }
    }
    if (seen > 0) ch.receiveSync(0, { durable }); // consumes the last one printed
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** `--from`: `latest`, `earliest` or a position (an integer >= 0). */
function startOf(v: string): 'latest' | 'earliest' | number {
  if (v === 'latest' || v === 'earliest') return v;
  const n = Number(v);
  if (v.trim() === '' || !Number.isSafeInteger(n) || n < 0) {
    throw new CommanderArgumentError(
      `from must be earliest, latest or a position (an integer >= 0), not ${v}`,
    );
  }
  return n;
}

/** `--dir`, which every command takes. */
const dirOption = () =>
  new Option(
    '--dir <path>',
    'directory of the channels, an absolute path (default: $SHMRING_DIR, else /dev/shm)',
  );

/** The `dir` option of the catalog calls and `open`, from a command's `--dir`. */
const inDir = (dir: string | undefined): { dir?: string } => (dir === undefined ? {} : { dir });

const codecOption = () =>
  new Option('--codec <codec>', 'how messages are encoded')
    .choices(['msgpack', 'json', 'raw'])
    .default('msgpack');

const program = new Command()
  .name('shmring')
  .description(
    'Inspect and use shmring channels (ring buffers in /dev/shm, or in the directory of --dir).',
  )
  .version(pkg.version)
  .configureOutput({
    // commander's own errors (unknown option, missing argument) stay one line.
    outputError: (str, write) => write(`${str.split('\n')[0]}\n`),
  });

program
  .command('ls')
  .description('list channels: name, kind, sync, capacity, bytes used, participants, stale?')
  .argument('[prefix]', 'only channels whose name starts with this')
  .option('--json', 'print a JSON array')
  .addOption(dirOption())
  .action(
    action('ls', (prefix: string | undefined, opts: { json?: boolean; dir?: string }) => {
      const found = list(inDir(opts.dir)).filter(
        (l) => prefix === undefined || l.name.startsWith(prefix),
      );
      if (opts.json) {
        console.log(JSON.stringify(found.map(listingJson), null, 2));
        return;
      }
      if (found.length === 0) {
        console.log('no channels');
        return;
      }
      const rows = found.map((l) => {
        const s = l.summary;
        if (s === undefined) return [l.name, `(${l.error?.code}: ${l.error?.message})`];
        return [
          l.name,
          s.kind,
          s.sync,
          s.policy,
          bytes(s.capacity),
          bytes(s.bytesUsed),
          String(s.participants.length),
          s.stale ? 'stale' : '',
        ];
      });
      console.log(
        table(
          ['NAME', 'KIND', 'SYNC', 'POLICY', 'CAPACITY', 'USED', 'PARTICIPANTS', 'STALE'],
          rows,
        ),
      );
    }),
  );

function statOnce(name: string, dir: string | undefined): ChannelStats {
  // Attaching takes no participant slot: looking does not change the channel.
  const ch = open(name, inDir(dir));
  try {
    return ch.stats();
  } finally {
    ch.close();
  }
}

program
  .command('stat')
  .description('header fields, per-participant counters and lag of one channel')
  .argument('<channel>', 'channel name')
  .option('--json', 'print JSON (with --watch: one JSON line per snapshot)')
  .option('-w, --watch', 'print again every interval until interrupted')
  .option(
    '--interval <ms>',
    'with --watch: milliseconds between snapshots',
    positiveInt('interval'),
    1000,
  )
  .addOption(dirOption())
  .action(
    action(
      'stat',
      async (
        name: string,
        opts: { json?: boolean; watch?: boolean; interval: number; dir?: string },
      ) => {
        const show = (s: ChannelStats, first: boolean): void => {
          if (opts.json) console.log(JSON.stringify(s, null, opts.watch ? undefined : 2));
          else console.log(`${first ? '' : '\n'}${statText(s)}`);
        };
        show(statOnce(name, opts.dir), true);
        if (!opts.watch) return;
        let stop = false;
        const onSignal = () => {
          stop = true;
        };
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        while (!stop) {
          await new Promise((r) => setTimeout(r, opts.interval));
          if (!stop) show(statOnce(name, opts.dir), false);
        }
      },
    ),
  );

program
  .command('tail')
  .description('print the messages published on a channel, decoded, as JSON lines')
  .argument('<channel>', 'channel name')
  .option(
    '--from <start>',
    "where to start: 'latest' (the default: what is published from now on), 'earliest' " +
      '(the oldest message the channel still holds) or a position (the first message at or ' +
      'after it; see --positions)',
    startOf,
  )
  .option('--from-now', 'the same as --from latest (the default)')
  .option(
    '--durable <name>',
    'read as the named subscriber <name>: resume after what it consumed before, and keep ' +
      'its place when tail exits',
  )
  .option('--positions', 'print {"position": p, "value": v} per message')
  .option('-n, --count <n>', 'exit after this many messages', positiveInt('count'))
  .addOption(codecOption())
  .addOption(dirOption())
  .action(
    action(
      'tail',
      async (
        name: string,
        opts: {
          count?: number;
          codec: CodecName;
          from?: 'latest' | 'earliest' | number;
          fromNow?: boolean;
          durable?: string;
          positions?: boolean;
          dir?: string;
        },
      ) => {
        if (opts.fromNow && opts.from !== undefined && opts.from !== 'latest') {
          throw new CliError('--from-now and --from disagree; give one of them');
        }
        const ch = open<unknown>(name, { codec: opts.codec, ...inDir(opts.dir) });
        const print = (value: unknown, position: number): void => {
          const line = opts.positions ? { position, value } : value;
          process.stdout.write(`${toJson(line)}\n`);
        };
        if (opts.durable !== undefined) {
          await tailDurable(ch, opts.durable, opts.from, opts.count, print).finally(() =>
            ch.close(),
          );
          return;
        }
        let seen = 0;
        await new Promise<void>((resolve, reject) => {
          const stop = (): void => {
            sub.unsubscribe();
            resolve();
          };
          const sub = ch.records({ from: opts.from }).subscribe({
            next({ value, position }) {
              print(value, position);
              seen++;
              if (opts.count !== undefined && seen >= opts.count) stop();
            },
            error: reject,
            complete: resolve,
          });
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
          process.stderr.write(
            `tailing ${name}${opts.count === undefined ? ' (Ctrl-C to stop)' : ` for ${opts.count} messages`}\n`,
          );
        }).finally(() => ch.close());
      },
    ),
  );

program
  .command('pub')
  .description('publish one JSON value, or one per line of stdin (waits for room if full)')
  .argument('<channel>', 'channel name')
  .argument('[json]', 'the value to publish, as JSON; without it, JSON lines from stdin')
  .option('--create', 'create the channel if it does not exist')
  .option(
    '--flush <when>',
    "with a disk --dir: 'os' (default), 'publish' (sync each message) or milliseconds",
  )
  .addOption(codecOption())
  .addOption(dirOption())
  .action(
    action(
      'pub',
      async (
        name: string,
        text: string | undefined,
        opts: { create?: boolean; codec: CodecName; dir?: string; flush?: string },
      ) => {
        const parse = (line: string, where: string): unknown => {
          if (opts.codec === 'raw') return Buffer.from(line);
          try {
            return JSON.parse(line);
          } catch (e) {
            throw new CliError(`${where} is not valid JSON (${(e as Error).message})`);
          }
        };
        const value = text === undefined ? undefined : parse(text, 'the message');
        const flush =
          opts.flush === undefined || Number.isNaN(Number(opts.flush))
            ? (opts.flush as 'os' | 'publish' | undefined)
            : Number(opts.flush);
        const ch: Channel<unknown> = open<unknown>(name, {
          create: opts.create === true,
          codec: opts.codec,
          ...inDir(opts.dir),
          ...(flush === undefined ? {} : { flush }),
        });
        let published = 0;
        const count = (n: number): string => `${n} message${n === 1 ? '' : 's'}`;
        try {
          if (text !== undefined) {
            await ch.send(value);
            published++;
          } else {
            let lineNo = 0;
            for await (const line of createInterface({ input: process.stdin })) {
              lineNo++;
              if (line.trim() === '') continue;
              try {
                await ch.send(parse(line, `line ${lineNo}`));
              } catch (e) {
                // Say what already went out, so that a rerun can skip it.
                const why = (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
                throw new CliError(
                  `${why.startsWith(`line ${lineNo}`) ? why : `line ${lineNo}: ${why}`}; ${count(published)} (the lines before it) had been published to ${name}`,
                );
              }
              published++;
            }
          }
        } finally {
          ch.close();
        }
        console.log(`published ${count(published)} to ${name}`);
      },
    ),
  );

const rm = program
  .command('rm')
  .description('remove a channel, or with --stale every channel whose processes are all dead')
  .argument('[channel]', 'channel name (one starting with - goes after --: rm -- -name)')
  .option('--stale', 'remove every stale channel (creator and all participants dead)')
  .option('--prefix <prefix>', 'with --stale: only channels whose name starts with this')
  .option('--json', 'print the removed names as a JSON array')
  .option(
    '--subscriber <name>',
    'with a channel: remove its named subscriber <name> instead (it must not be attached); ' +
      'its position stops holding producers back',
  )
  .addOption(dirOption())
  .action(
    action(
      'rm',
      (
        name: string | undefined,
        opts: {
          stale?: boolean;
          prefix?: string;
          json?: boolean;
          subscriber?: string;
          dir?: string;
        },
      ) => {
        if ((name === undefined) === (opts.stale !== true)) {
          throw new CliError('give either a channel name or --stale');
        }
        const removed: string[] = [];
        if (name !== undefined && opts.subscriber !== undefined) {
          const ch = open(name, inDir(opts.dir));
          try {
            if (!ch.removeSubscriber(opts.subscriber)) {
              throw new CliError(`channel ${name} has no subscriber named ${opts.subscriber}`);
            }
          } finally {
            ch.close();
          }
          removed.push(`${name} subscriber ${opts.subscriber}`);
        } else if (name !== undefined) {
          unlink(name, inDir(opts.dir));
          removed.push(name);
        } else {
          for (const l of list(inDir(opts.dir))) {
            if (opts.prefix !== undefined && !l.name.startsWith(opts.prefix)) continue;
            // Checked again right before the unlink: a channel that came back to life stays.
            if (l.summary?.stale && unlinkIfStale(l.name, inDir(opts.dir))) removed.push(l.name);
          }
        }
        if (opts.json) console.log(JSON.stringify(removed));
        else if (removed.length === 0) console.log('nothing to remove');
        else for (const r of removed) console.log(`removed ${r}`);
      },
    ),
  );
// Channel names may start with '-' (`rm -rf` is the channel "-rf" or a slip): say how to
// name one instead of only "unknown option".
// `unknownOption` is commander's (14) hook for an unknown flag; not in its typings.
(rm as unknown as { unknownOption(flag: string): void }).unknownOption = function (
  this: Command,
  flag: string,
): void {
  this.error(
    `error: unknown option '${flag}' (to remove a channel whose name starts with '-', put it after --: shmring rm -- ${flag})`,
    { code: 'commander.unknownOption' },
  );
};

/** For the commands that run other processes: `--dir` reaches them as `SHMRING_DIR`. */
function dirForChildren(dir: string | undefined): void {
  if (dir === undefined) return;
  if (!dir.startsWith('/'))
    throw new CliError(`--dir ${JSON.stringify(dir)} is not an absolute path`);
  process.env.SHMRING_DIR = dir;
}

/** Runs a child with inherited stdio; resolves its exit status. */
function runInherited(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: 'inherit', cwd: root });
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolve(code ?? (signal === null ? 1 : 128));
    });
  });
}

program
  .command('demo')
  .description('run the demo: a publisher and a subscriber process move quotes over a channel')
  .argument('[count]', 'how many quotes', positiveInt('count'))
  .addOption(dirOption())
  .action(
    action('demo', async (count: number | undefined, opts: { dir?: string }) => {
      dirForChildren(opts.dir);
      const demo = join(root, 'dist', 'demo', 'index.js');
      if (!existsSync(demo)) throw new CliError(`the demo is not built (${demo} is missing)`);
      process.exitCode = await runInherited(
        process.execPath,
        count === undefined ? [demo] : [demo, String(count)],
      );
    }),
  );

program
  .command('bench')
  .description('run the benchmark suite (npm run bench, from a source checkout)')
  .argument('[args...]', 'passed on to the benchmark harness')
  .option('--dry-run', 'print the command instead of running it')
  .addOption(dirOption())
  .allowUnknownOption()
  .action(
    action('bench', async (args: string[], opts: { dryRun?: boolean; dir?: string }) => {
      dirForChildren(opts.dir);
      if (!existsSync(join(root, 'bench', 'run.mjs')) || pkg.scripts?.bench === undefined) {
        throw new CliError(
          `the benchmark harness is not here (needs bench/run.mjs and an npm script "bench" in ${root}); run it from a source checkout of shmring`,
        );
      }
      const cmd = ['npm', 'run', 'bench', ...(args.length > 0 ? ['--', ...args] : [])];
      if (opts.dryRun) {
        console.log(cmd.join(' '));
        return;
      }
      process.exitCode = await runInherited(cmd[0] as string, cmd.slice(1));
    }),
  );

addBridge(program, action, dirOption);

await program.parseAsync(process.argv);
