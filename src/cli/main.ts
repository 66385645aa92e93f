/**
 * `rdpp`: one command-line program with subcommands. `dist/train.js` enters it at `train`.
 */
import { initImageCodecs } from '../platform/wasm-codecs.js';
import { type Command, helpText, parse, UsageError } from './command.js';
import { bench } from './commands/bench.js';
import { compare } from './commands/compare.js';
import { demo } from './commands/demo.js';
import { exportCommand } from './commands/export.js';
import { info } from './commands/info.js';
import { parity } from './commands/parity.js';
import { predict } from './commands/predict.js';
import { profile } from './commands/profile.js';
import { teacherCommand } from './commands/teacher.js';
import { test } from './commands/test.js';
import { train } from './commands/train.js';
import { tune } from './commands/tune.js';

export const COMMANDS: Command[] = [
  demo,
  train,
  test,
  predict,
  exportCommand,
  teacherCommand,
  info,
  parity,
  bench,
  tune,
  profile,
  compare,
];

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    'rdpp — RD++ anomaly detection on WebGPU',
    '',
    'usage: rdpp <command> [options]      (rdpp <command> --help for its options)',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)} ${c.summary}`),
    '',
    'Environment: RDPP_PRINT_SHADERS=1, RDPP_ALLOW_UNSAFE_APIS=1, ... (see src/engine/flags.ts).',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(mainHelp());
    return name ? 0 : 2;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    console.error(`rdpp: unknown command '${name}'.\n\n${mainHelp()}`);
    return 2;
  }
  try {
    const args = parse(cmd, rest);
    if (args === 'help') {
      console.log(helpText(cmd));
      return 0;
    }
    await initImageCodecs();
    return await cmd.run(args);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`rdpp ${cmd.name}: ${e.message}`);
      return 2;
    }
    const err = e as Error;
    console.error(
      `rdpp ${cmd.name}: ${err.name && err.name !== 'Error' ? `${err.name}: ` : ''}${err.message}`,
    );
    if (process.env.RDPP_DEBUG) console.error(err.stack);
    return 1;
  }
}

/** Run and exit with the command's status (Dawn keeps the event loop alive otherwise). */
export function runCli(argv: string[]): void {
  main(argv).then(
    (code) => process.exit(code),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}

const entry = process.argv[1] ?? '';
if (/rdpp(\.js)?$/.test(entry)) runCli(process.argv.slice(2));
