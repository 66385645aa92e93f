/**
 * A small, safe pickle interpreter (protocols 0–5 binary opcodes; the text opcodes of protocol 0 that
 * PyTorch could emit), enough for PyTorch checkpoints (spec §3.2).
 *
 * The machine is the one CPython's `pickle.Unpickler` implements: a value stack, a mark stack (MARK
 * pushes the current stack depth; TUPLE/LIST/DICT/SETITEMS/APPENDS pop back to it) and a memo table
 * (BINPUT/MEMOIZE store the top of the stack, BINGET pushes it again, which is how shared objects such as
 * one storage used by several tensors keep their identity).
 *
 * Nothing is ever executed. GLOBAL pushes a `PickleGlobal`; the caller's `findGlobal` hook may attach a
 * function that REDUCE/NEWOBJ call with the argument tuple (that is how `_rebuild_tensor_v2` becomes a
 * tensor descriptor and `collections.OrderedDict` a Map). A global without a function yields an opaque
 * `PickleObject` recording its name, arguments and BUILD state. BINPERSID hands the persistent id to the
 * `persistentLoad` hook (PyTorch's storages).
 *
 * Python values map to: None → null, bool → boolean, int → number (bigint beyond ±2^53), float → number,
 * str → string, bytes/bytearray → Uint8Array, tuple → frozen array, list → array, dict → Map, set/frozenset
 * → Set. Any malformed input raises PickleError naming the byte offset and the opcode.
 */

export class PickleError extends Error {
  override name = 'PickleError';
}

export type PickleCall = (args: unknown[]) => unknown;

/** A `module.name` reference pushed by GLOBAL / STACK_GLOBAL. */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    /** What calling the global does (REDUCE, NEWOBJ); undefined: calls produce a PickleObject. */
    readonly call?: PickleCall,
  ) {}
  toString(): string {
    return `${this.module}.${this.name}`;
  }
}

/** An instance of a class the caller did not resolve: its name, constructor args and BUILD state. */
export class PickleObject {
  state: unknown = undefined;
  /** Items appended (list subclasses) or set (dict subclasses), if any. */
  listItems: unknown[] = [];
  dictItems = new Map<unknown, unknown>();
  constructor(
    readonly module: string,
    readonly name: string,
    readonly args: unknown[],
  ) {}
}

export interface UnpickleOptions {
  /** Called for BINPERSID / PERSID with the persistent id; its result is pushed. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Resolve a global to a callable; return undefined to leave it opaque. */
  findGlobal?: (module: string, name: string) => PickleCall | undefined;
  /** Names the input in error messages. */
  source?: string;
}

export interface UnpickleResult {
  value: unknown;
  /** Byte offset just past the STOP opcode. */
  end: number;
}

const OPNAMES = new Map<number, string>([
  [0x28, 'MARK'],
  [0x2e, 'STOP'],
  [0x30, 'POP'],
  [0x31, 'POP_MARK'],
  [0x32, 'DUP'],
  [0x42, 'BINBYTES'],
  [0x43, 'SHORT_BINBYTES'],
  [0x47, 'BINFLOAT'],
  [0x49, 'INT'],
  [0x4a, 'BININT'],
  [0x4b, 'BININT1'],
  [0x4c, 'LONG'],
  [0x4d, 'BININT2'],
  [0x4e, 'NONE'],
  [0x50, 'PERSID'],
  [0x51, 'BINPERSID'],
  [0x52, 'REDUCE'],
  [0x54, 'BINSTRING'],
  [0x55, 'SHORT_BINSTRING'],
  [0x58, 'BINUNICODE'],
  [0x5d, 'EMPTY_LIST'],
  [0x61, 'APPEND'],
  [0x62, 'BUILD'],
  [0x63, 'GLOBAL'],
  [0x64, 'DICT'],
  [0x65, 'APPENDS'],
  [0x67, 'GET'],
  [0x68, 'BINGET'],
  [0x6a, 'LONG_BINGET'],
  [0x6c, 'LIST'],
  [0x70, 'PUT'],
  [0x71, 'BINPUT'],
  [0x72, 'LONG_BINPUT'],
  [0x73, 'SETITEM'],
  [0x74, 'TUPLE'],
  [0x75, 'SETITEMS'],
  [0x7d, 'EMPTY_DICT'],
  [0x29, 'EMPTY_TUPLE'],
  [0x80, 'PROTO'],
  [0x81, 'NEWOBJ'],
  [0x85, 'TUPLE1'],
  [0x86, 'TUPLE2'],
  [0x87, 'TUPLE3'],
  [0x88, 'NEWTRUE'],
  [0x89, 'NEWFALSE'],
  [0x8a, 'LONG1'],
  [0x8b, 'LONG4'],
  [0x8c, 'SHORT_BINUNICODE'],
  [0x8d, 'BINUNICODE8'],
  [0x8e, 'BINBYTES8'],
  [0x8f, 'EMPTY_SET'],
  [0x90, 'ADDITEMS'],
  [0x91, 'FROZENSET'],
  [0x92, 'NEWOBJ_EX'],
  [0x93, 'STACK_GLOBAL'],
  [0x94, 'MEMOIZE'],
  [0x95, 'FRAME'],
  [0x96, 'BYTEARRAY8'],
]);

/** Python 2 module names that Python 3's unpickler maps (fix_imports) and that checkpoints can contain. */
const PY2_MODULES: Record<string, string> = { __builtin__: 'builtins', copy_reg: 'copyreg' };

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Little-endian two's-complement integer of any length (LONG1/LONG4 payload). */
export function decodeLong(b: Uint8Array): number | bigint {
  const n = b.length;
  if (n === 0) return 0;
  if (n <= 6) {
    let v = 0;
    for (let i = n - 1; i >= 0; i--) v = v * 256 + b[i]!;
    if (b[n - 1]! & 0x80) v -= 2 ** (8 * n);
    return v;
  }
  let v = 0n;
  for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  if (b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
  return v >= MIN_SAFE && v <= MAX_SAFE ? Number(v) : v;
}

const utf8 = new TextDecoder('utf-8');

/** Run one pickle starting at `start`; returns the unpickled value and the offset after STOP. */
export function unpickle(bytes: Uint8Array, start = 0, opts: UnpickleOptions = {}): UnpickleResult {
  const source = opts.source ?? 'pickle';
  const len = bytes.byteLength;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, len);
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let pos = start;
  let opPos = start;
  let op = 0;

  const fail = (msg: string): never => {
    const name = OPNAMES.get(op) ?? `0x${op.toString(16).padStart(2, '0')}`;
    throw new PickleError(`${source}: pickle opcode ${name} at byte ${opPos}: ${msg}`);
  };
  const need = (n: number) => {
    if (n < 0 || pos + n > len) fail(`unexpected end of data (needs ${n} bytes, ${len - pos} left)`);
  };
  const u8 = () => {
    need(1);
    return bytes[pos++]!;
  };
  const u16 = () => {
    need(2);
    const v = dv.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = () => {
    need(4);
    const v = dv.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const i32 = () => {
    need(4);
    const v = dv.getInt32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = () => {
    need(8);
    const v = dv.getBigUint64(pos, true);
    pos += 8;
    if (v > MAX_SAFE) fail(`length ${v} is too large`);
    return Number(v);
  };
  const take = (n: number) => {
    need(n);
    const b = bytes.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const line = (): string => {
    let e = pos;
    while (e < len && bytes[e] !== 0x0a) e++;
    if (e >= len) fail('unexpected end of data (unterminated text argument)');
    const s = utf8.decode(bytes.subarray(pos, e));
    pos = e + 1;
    return s;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1]!))
      fail('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail('no MARK on the mark stack');
    return stack.splice(m!);
  };
  const tuple = (items: unknown[]): unknown[] => Object.freeze(items) as unknown[];
  const memoGet = (k: number) => {
    if (!memo.has(k)) fail(`memo key ${k} was never stored`);
    stack.push(memo.get(k));
  };
  const memoPut = (k: number) => {
    memo.set(k, top());
  };
  const makeGlobal = (module: string, name: string): PickleGlobal => {
    module = PY2_MODULES[module] ?? module;
    return new PickleGlobal(module, name, opts.findGlobal?.(module, name));
  };
  const call = (fn: unknown, args: unknown): unknown => {
    if (!(fn instanceof PickleGlobal)) fail(`cannot call a ${describe(fn)}`);
    if (!Array.isArray(args)) fail(`arguments of ${String(fn)} are a ${describe(args)}, not a tuple`);
    const g = fn as PickleGlobal;
    // Errors thrown by the caller's hooks pass through unchanged (they name their own problem).
    if (g.call) return g.call(args as unknown[]);
    return new PickleObject(g.module, g.name, args as unknown[]);
  };
  const persistent = (pid: unknown): unknown => {
    if (!opts.persistentLoad) return fail('persistent id without a persistent_load handler');
    return opts.persistentLoad(pid);
  };
  const setItems = (target: unknown, kv: unknown[]) => {
    if (kv.length % 2) fail('odd number of items for a dict');
    const m = target instanceof Map ? target : target instanceof PickleObject ? target.dictItems : null;
    if (!m) return fail(`cannot set items on a ${describe(target)}`);
    for (let i = 0; i < kv.length; i += 2) m.set(kv[i], kv[i + 1]);
  };
  const append = (target: unknown, items: unknown[]) => {
    if (Array.isArray(target) && !Object.isFrozen(target)) target.push(...items);
    else if (target instanceof PickleObject) target.listItems.push(...items);
    else if (target instanceof Set) for (const v of items) target.add(v);
    else fail(`cannot append to a ${describe(target)}`);
  };

  for (;;) {
    opPos = pos;
    if (pos >= len) {
      op = 0;
      fail('unexpected end of data before STOP');
    }
    op = bytes[pos++]!;
    switch (op) {
      case 0x80: {
        // PROTO
        const v = u8();
        if (v > 5) fail(`unsupported pickle protocol ${v}`);
        break;
      }
      case 0x95: // FRAME: length of the next frame; frames are transparent here
        u64();
        break;
      case 0x2e: {
        // STOP
        const value = pop();
        return { value, end: pos };
      }
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        if (marks.length && stack.length === marks[marks.length - 1]) popMark();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x8a: // LONG1
        stack.push(decodeLong(take(u8())));
        break;
      case 0x8b: {
        // LONG4
        const n = i32();
        if (n < 0) fail('negative length');
        stack.push(decodeLong(take(n)));
        break;
      }
      case 0x49: {
        // INT (text): "01"/"00" are True/False in protocol 0
        const s = line();
        if (s === '01' || s === '00') stack.push(s === '01');
        else stack.push(parseIntText(s, fail));
        break;
      }
      case 0x4c: // LONG (text), with an optional trailing L
        stack.push(parseIntText(line().replace(/L$/, ''), fail));
        break;
      case 0x47: {
        // BINFLOAT: big-endian float64
        need(8);
        stack.push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      }
      case 0x58: // BINUNICODE
        stack.push(utf8.decode(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8.decode(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(utf8.decode(take(u64())));
        break;
      case 0x54: {
        // BINSTRING (Python 2 str; decoded as UTF-8 like torch.load does)
        const n = i32();
        if (n < 0) fail('negative length');
        stack.push(utf8.decode(take(n)));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        stack.push(utf8.decode(take(u8())));
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(take(u64()).slice());
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(tuple([]));
        break;
      case 0x85: // TUPLE1
        stack.push(tuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        const a = pop();
        stack.push(tuple([a, b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(tuple([a, b, c]));
        break;
      }
      case 0x74: // TUPLE
        stack.push(tuple(popMark()));
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        append(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        append(top(), items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: {
        // DICT
        const m = new Map();
        setItems(m, popMark());
        stack.push(m);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const kv = popMark();
        setItems(top(), kv);
        break;
      }
      case 0x8f: // EMPTY_SET
        stack.push(new Set());
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) fail(`cannot add items to a ${describe(s)}`);
        for (const v of items) (s as Set<unknown>).add(v);
        break;
      }
      case 0x91: // FROZENSET
        stack.push(new Set(popMark()));
        break;
      case 0x68: // BINGET
        memoGet(u8());
        break;
      case 0x6a: // LONG_BINGET
        memoGet(u32());
        break;
      case 0x67: // GET (text)
        memoGet(parseIntText(line(), fail) as number);
        break;
      case 0x71: // BINPUT
        memoPut(u8());
        break;
      case 0x72: // LONG_BINPUT
        memoPut(u32());
        break;
      case 0x70: // PUT (text)
        memoPut(parseIntText(line(), fail) as number);
        break;
      case 0x94: // MEMOIZE
        memoPut(memo.size);
        break;
      case 0x63: {
        // GLOBAL: "module\nname\n"
        const module = line();
        const name = line();
        stack.push(makeGlobal(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('module and name must be strings');
        stack.push(makeGlobal(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args));
        break;
      }
      case 0x81: {
        // NEWOBJ: cls.__new__(cls, *args)
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX: cls, args, kwargs (kwargs ignored unless empty)
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (kwargs instanceof Map && kwargs.size)
          fail(`keyword arguments for ${String(cls)} are not supported`);
        stack.push(call(cls, args));
        break;
      }
      case 0x62: {
        // BUILD: obj.__setstate__(state); kept on opaque objects, ignored elsewhere (e.g. the
        // `_metadata` of an OrderedDict state_dict)
        const state = pop();
        const obj = top();
        if (obj instanceof PickleObject) obj.state = state;
        break;
      }
      case 0x51: // BINPERSID
        stack.push(persistent(pop()));
        break;
      case 0x50: // PERSID (text)
        stack.push(persistent(line()));
        break;
      default:
        fail('unknown or unsupported opcode');
    }
  }
}

function parseIntText(s: string, fail: (msg: string) => never): number | bigint {
  if (!/^[-+]?\d+$/.test(s)) fail(`'${s}' is not an integer`);
  const v = BigInt(s);
  return v >= MIN_SAFE && v <= MAX_SAFE ? Number(v) : v;
}

/** A short description of a value's type for messages. */
export function describe(v: unknown): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return Object.isFrozen(v) ? 'tuple' : 'list';
  if (v instanceof Map) return 'dict';
  if (v instanceof Set) return 'set';
  if (v instanceof Uint8Array) return 'bytes';
  if (v instanceof PickleGlobal) return `global ${String(v)}`;
  if (v instanceof PickleObject) return `${v.module}.${v.name} object`;
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return typeof v;
}
