/**
 * `rdpp teacher export`: write the teacher's weights as one small safetensors file that travels to
 * machines without network (air-gapped inspection PCs, GPU servers): only the tensors the teacher uses,
 * f32 or f16, with its kind, preprocessing and source in the metadata (src/model/teacher/teacher-file.ts).
 * Any command then takes it as `--teacher resnet50-keras=<file>` (or wrn50=/resnet18= for torchvision
 * exports) and fetches nothing. No GPU needed.
 */
import { TEACHER_DTYPES, TEACHER_FLAG, type TeacherDtype } from '../../model/teacher/teacher-file.js';
import { type Command, UsageError } from '../command.js';
import { parseTeacher, TEACHER_USAGE } from '../teacher.js';
import { runTeacherExport } from '../teacher-export.js';

export const teacherCommand: Command = {
  name: 'teacher',
  summary: 'export the teacher weights as one small .safetensors file (f32/f16) for offline machines',
  usage: `export [--teacher ${Object.values(TEACHER_FLAG).join('|')}=<file>] --out <file.safetensors> [--dtype f32|f16]`,
  positionals: true,
  options: {
    teacher: {
      type: 'string',
      default: 'resnet50-keras',
      help: `the teacher to export: ${TEACHER_USAGE}`,
    },
    out: { type: 'string', help: 'the .safetensors file to write (atomically)' },
    dtype: {
      type: 'string',
      default: 'f32',
      help: 'f32 (exact) or f16 (half the size; rounded to nearest even, widened to f32 on load)',
    },
  },
  async run({ values, positionals }) {
    const what = positionals[0];
    if (what !== 'export' || positionals.length > 1)
      throw new UsageError(
        `expected \`rdpp teacher export --out <file.safetensors>\`, got '${positionals.join(' ')}'`,
      );
    const out = values.out as string | undefined;
    if (!out) throw new UsageError('--out <file.safetensors> is required');
    const dtype = String(values.dtype) as TeacherDtype;
    if (!TEACHER_DTYPES.includes(dtype))
      throw new UsageError(`--dtype must be ${TEACHER_DTYPES.join(' or ')}, got '${dtype}'`);
    const r = await runTeacherExport({
      teacher: parseTeacher(values.teacher as string | undefined),
      out,
      dtype,
    });
    console.log(
      `wrote ${r.out}: ${r.teacher} teacher, ${r.tensors} tensors, ${r.parameters.toLocaleString('en-US')} values as ${r.dtype}, ` +
        `${(r.bytes / 1e6).toFixed(1)} MB (${r.bytes} bytes); source ${r.origin.source}` +
        (r.origin.convertedFrom ? ` via ${r.origin.convertedFrom}` : ''),
    );
    console.log(`sha256 ${r.sha256}`);
    if (r.half)
      console.log(
        `f16: largest relative rounding error ${r.half.maxRelativeError.toExponential(2)}, ` +
          `${r.half.subnormal} values stored as subnormals, ${r.half.flushedToZero} tiny values became 0`,
      );
    console.log(`use it with: --teacher ${TEACHER_FLAG[r.teacher]}=${r.out}`);
    return 0;
  },
};
