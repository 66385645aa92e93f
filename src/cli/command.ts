/**
 * The shape of a subcommand, and the argument parsing every subcommand shares (node:util parseArgs).
 */
import { parseArgs } from 'node:util';
import { UsageError } from '../pipeline/errors.js';

export { UsageError };

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  default?: string | boolean;
  /** One line for --help; include the default and units. */
  help: string;
  multiple?: boolean;
}

export interface Command {
  name: string;
  summary: string;
  /** Usage line(s) after `rdpp <name>`. */
  usage: string;
  options: Record<string, OptionSpec>;
  /** Positional arguments are allowed. */
  positionals?: boolean;
  run: (args: { values: Record<string, unknown>; positionals: string[] }) => Promise<number>;
}

export function helpText(cmd: Command): string {
  const lines = [
    `rdpp ${cmd.name} — ${cmd.summary}`,
    '',
    `usage: rdpp ${cmd.name} ${cmd.usage}`,
    '',
    'options:',
  ];
  const opts = {
    ...cmd.options,
    help: { type: 'boolean', short: 'h', help: 'show this help' } as OptionSpec,
  };
  for (const [name, o] of Object.entries(opts)) {
    const flagName = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ' <value>' : ''}`;
    const def = o.default !== undefined && o.default !== false ? ` (default: ${o.default})` : '';
    lines.push(`  ${flagName.padEnd(30)} ${o.help}${def}`);
  }
  return lines.join('\n');
}

export function parse(
  cmd: Command,
  argv: string[],
): { values: Record<string, unknown>; positionals: string[] } | 'help' {
  const options: Record<
    string,
    { type: 'string' | 'boolean'; short?: string; default?: string | boolean; multiple?: boolean }
  > = { help: { type: 'boolean', short: 'h' } };
  for (const [k, o] of Object.entries(cmd.options)) {
    options[k] = { type: o.type };
    if (o.short) options[k].short = o.short;
    if (o.default !== undefined) options[k].default = o.default;
    if (o.multiple) options[k].multiple = true;
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: attachValues(cmd, argv),
      options,
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new UsageError(
      `${(e as Error).message.split('\n')[0]}\nRun \`rdpp ${cmd.name} --help\` for the options.`,
    );
  }
  if (parsed.values.help) return 'help';
  if (!cmd.positionals && parsed.positionals.length)
    throw new UsageError(`unexpected argument '${parsed.positionals[0]}'. Run \`rdpp ${cmd.name} --help\`.`);
  return { values: parsed.values as Record<string, unknown>, positionals: parsed.positionals };
}

/**
 * Give every value-taking option its value explicitly (`--name=value`), so that a negative number is a
 * value (`--image-size -5` is then refused by the option's own check, naming it) and a missing value is
 * said as such (`--epochs --out x`), instead of parseArgs's "argument is ambiguous".
 */
function attachValues(cmd: Command, argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const m = /^--([^=]+)$/.exec(a);
    const spec = m ? cmd.options[m[1]!] : undefined;
    if (!m || spec?.type !== 'string') {
      out.push(a);
      continue;
    }
    const next = argv[i + 1];
    const example = spec.default !== undefined ? ` (default: ${spec.default})` : '';
    if (next === undefined) throw new UsageError(`${a} needs a value: ${spec.help}${example}.`);
    if (next.startsWith('-') && !/^-(\d|\.\d)/.test(next))
      throw new UsageError(
        `${a} needs a value, but it is followed by the option '${next}': ${spec.help}${example}.`,
      );
    out.push(`${a}=${next}`);
    i++;
  }
  return out;
}
