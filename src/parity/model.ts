/**
 * Whole-model parity (rd18.json, wrn50.json and any file of that format): rebuild the RD++ networks from
 * the fixture's formula weights, run one training step's forward and backward on the fixture's inputs and
 * permutation, and compare — with the fixture's per-category tolerances — every intermediate feature, the
 * loss scalars, every gradient, the BN running statistics after the forward pass, and (from a fresh model
 * in eval mode) the anomaly maps and image scores. Sections a fixture does not hold are skipped and
 * reported as such. `params_after_adam` is informational (the fixtures README explains why).
 */
import { Adam, backward, scope, type Tensor, tensor } from '../engine/index.js';
import { readSafetensors, toFloat32 } from '../engine/io/safetensors.js';
import { gemmPrecision } from '../engine/precision.js';
import { Rdpp } from '../model/rdpp.js';
import type { NetState } from '../model/state.js';
import { TorchvisionTeacher } from '../model/teacher/torchvision.js';
import { modelFixture, modelTolerance } from './f16.js';

export interface Digest {
  shape: number[];
  sum: number;
  l2: number;
  absmax: number;
  idx: number[];
  val: number[];
}

export interface ModelCheck {
  category: string;
  name: string;
  error: number;
  tolerance: number;
  pass: boolean;
  informational?: boolean;
}

export interface ModelParityResult {
  checks: ModelCheck[];
  skipped: string[];
  pass: boolean;
}

/** max over the digest's samples of |a − b| / absmax(b). */
export function digestError(got: Float32Array, d: Digest): number {
  let e = 0;
  d.idx.forEach((i, k) => {
    const g = got[i];
    e = Math.max(
      e,
      g === undefined || !Number.isFinite(g) ? Number.POSITIVE_INFINITY : Math.abs(g - d.val[k]!),
    );
  });
  return e / Math.max(d.absmax, 1e-30);
}

export function digestAbsError(got: Float32Array, d: Digest): number {
  let e = 0;
  d.idx.forEach((i, k) => {
    e = Math.max(e, Math.abs((got[i] ?? Number.NaN) - d.val[k]!));
  });
  return Number.isNaN(e) ? Number.POSITIVE_INFINITY : e;
}

function l2(a: Float32Array): number {
  let s = 0;
  for (const v of a) s += v * v;
  return Math.sqrt(s);
}

type Json = Record<string, unknown>;

export async function runModelParity(
  json: Json,
  safetensors: Uint8Array,
  log: (l: string) => void = () => {},
): Promise<ModelParityResult> {
  const file = readSafetensors(safetensors, 'model fixture');
  const host = (k: string) => {
    const t = file.tensors.get(k);
    if (!t) throw new Error(`model fixture has no tensor '${k}'`);
    return { shape: t.shape, data: toFloat32(t) };
  };
  const tol = json.tolerance as Record<string, number>;
  const checks: ModelCheck[] = [];
  const skipped: string[] = [];
  // `tolerance_per_scalar` overrides tolerance.scalars for the scalars it names (fixtures README: recon and
  // L_proj are means of 1 − cos with cos ≈ 0.999, where float32 rounding alone is ~1e-4 relative)
  const perScalar = (json.tolerance_per_scalar ?? {}) as Record<string, number>;
  // PRECISION=f16: the f16 tolerances of parity/f16.ts, which widen the fixture's (never tighten them)
  const precision = gemmPrecision();
  const check = (category: string, name: string, error: number, informational = false) => {
    // names must match exactly; a category the fixture gives no tolerance for is informational
    const tolerance =
      category === 'names'
        ? 0
        : modelTolerance(
            modelFixture(json.proj_base as number),
            category,
            category === 'scalars' && name in perScalar
              ? perScalar[name]!
              : (tol[category] ?? Number.POSITIVE_INFINITY),
            precision,
          );
    checks.push({
      category,
      name,
      error,
      tolerance,
      pass: informational || error <= tolerance,
      informational,
    });
  };

  const base = json.proj_base as number;
  const build = () => {
    const teacher = new TorchvisionTeacher(base === 64 ? 'wide_resnet50_2' : 'resnet18');
    const model = new Rdpp(teacher);
    const mods: [string, NetState][] = [
      ['encoder.', teacher.state],
      ['bn.', model.ocbe.state],
      ['decoder.', model.decoder.state],
      ['proj.', model.proj.state],
    ];
    for (const [prefix, st] of mods) st.initFormula(prefix);
    return { model, mods };
  };

  // the module tree must hold the same tensors under the same names, in state_dict order
  const names = json.names as Record<string, [string, number[]][]> | undefined;
  {
    const { model, mods } = build();
    if (names) {
      for (const [prefix, st] of mods) {
        // the teacher deliberately stops at layer3 (layer4 and fc are never used by RD++)
        const want = (names[prefix.slice(0, -1)] ?? [])
          .filter(([n]) => !n.startsWith('encoder.layer4.') && !n.startsWith('encoder.fc.'))
          .map(([n, s]) => `${n}:${s.join('x')}`);
        const got = st.decls.map((d) => `${prefix}${d.name}:${d.shape.join('x')}`);
        const same = want.length === got.length && want.every((w, i) => w === got[i]);
        check('names', `${prefix}* (${got.length} tensors)`, same ? 0 : 1);
        if (!same)
          log(`names differ in ${prefix}: first mismatch at ${want.findIndex((w, i) => w !== got[i])}`);
      }
    } else skipped.push('names');

    if ('scalars' in json) {
      const perm = json.perm as number[];
      const img = host('img');
      const imgNoise = host('img_noise');
      const digests = json.tensors as Record<string, Digest>;
      const results: Record<string, Float32Array> = {};
      const scalars: Record<string, number> = {};
      const done = scope(() => {
        const f = model.trainForward(
          tensor(img.data, img.shape),
          tensor(imgNoise.data, imgNoise.shape),
          perm,
          'official',
        );
        backward(f.loss);
        return f;
      });
      const named: [string, Tensor | null][] = [
        ['bottleneck', done.bottleneck],
        ...[0, 1, 2].flatMap(
          (k) =>
            [
              [`teacher${k}`, done.teacher[k]!],
              [`teacher_noise${k}`, done.teacherNoise[k]!],
              [`proj${k}`, done.projected[k]!],
              [`proj_noise${k}`, done.projectedNoise[k]!],
              [`student${k}`, done.student[k]!],
            ] as [string, Tensor][],
        ),
      ];
      for (const [k, t] of named) if (t) results[k] = await t.read();
      scalars.L_distill = await done.kd.item();
      scalars.L_proj = await done.proj.item();
      scalars.loss = await done.loss.item();
      scalars.recon = await done.recon.item();
      for (const k of Object.keys(digests)) {
        if (!results[k]) {
          skipped.push(`tensor ${k}`);
          continue;
        }
        check('features', k, digestError(results[k]!, digests[k]!));
      }
      const refScalars = json.scalars as Record<string, number>;
      for (const k of ['L_distill', 'L_proj', 'loss', 'recon'])
        if (k in refScalars)
          check('scalars', k, Math.abs(scalars[k]! - refScalars[k]!) / Math.abs(refScalars[k]!));
      // gradients
      const grads = json.grads as Record<string, Digest | null>;
      for (const [prefix, st] of mods.slice(1)) {
        for (const [n, t] of st.named()) {
          const full = prefix + n;
          if (!(full in grads)) continue;
          const d = grads[full];
          if (d === null || d === undefined) {
            check('grads_abs', `${full} (unused: no gradient)`, t.grad ? l2(await t.grad.read()) : 0);
            continue;
          }
          if (!t.grad) {
            check('grads_val', full, Number.POSITIVE_INFINITY);
            continue;
          }
          const g = await t.grad.read();
          if (d.l2 < 1e-8) check('grads_abs', full, digestAbsError(g, d));
          else {
            check('grads_val', full, digestError(g, d));
            check('grads_l2', full, Math.abs(l2(g) - d.l2) / d.l2);
          }
        }
      }
      // running statistics after the train-mode forward
      const running = json.bn_running_after_forward as Record<string, Digest>;
      for (const [prefix, st] of mods.slice(1, 3)) {
        for (const [n, t] of st.named()) {
          const d = running[prefix + n];
          if (d) check('running', prefix + n, digestError(await t.read(), d));
        }
      }
      // one Adam step of each optimizer (informational)
      const after = json.params_after_adam as Record<string, Digest> | undefined;
      if (after) {
        const groups = model.parameterGroups();
        const optP = new Adam(groups.proj, { lr: 1e-3, betas: [0.5, 0.999] });
        const optD = new Adam(groups.ocbeDecoder, { lr: 5e-3, betas: [0.5, 0.999] });
        optP.step();
        optD.step();
        for (const [prefix, st] of mods.slice(1)) {
          for (const d of st.decls) {
            const ref = after[prefix + d.name];
            if (ref && d.trainable)
              check(
                'params_after_adam',
                prefix + d.name,
                digestError(await st.get(d.name).read(), ref),
                true,
              );
          }
        }
        optP.dispose();
        optD.dispose();
      }
      for (const t of [
        done.loss,
        done.kd,
        done.proj,
        done.recon,
        done.contrast,
        done.ssot,
        done.bottleneck,
        ...done.teacher,
        ...done.teacherNoise,
        ...done.projected,
        ...done.projectedNoise,
        ...done.student,
      ])
        t?.dispose();
    } else skipped.push('training step');
    model.dispose();
  }

  // eval: a fresh formula model in eval mode
  const ev = json.eval as Record<string, { raw: Digest; smooth: Digest; image_scores: number[] }> | undefined;
  if (ev) {
    const { model } = build();
    for (const [size, e] of Object.entries(ev)) {
      const key = file.tensors.has(`img_eval${size}`) ? `img_eval${size}` : 'img';
      const img = host(key);
      const out = scope(() => model.anomalyMaps(tensor(img.data, img.shape)));
      const raw = await out.raw.read();
      const smooth = await out.smooth.read();
      const scores = await out.scores.read();
      check(
        'eval',
        `amap${size} raw`,
        file.tensors.has(`amap${size}`) ? fullError(raw, host(`amap${size}`).data) : digestError(raw, e.raw),
      );
      check(
        'eval',
        `amap${size} smooth`,
        file.tensors.has(`amap${size}_smooth`)
          ? fullError(smooth, host(`amap${size}_smooth`).data)
          : digestError(smooth, e.smooth),
      );
      e.image_scores.forEach((s, b) => {
        check('eval', `image_score[${b}]@${size}`, Math.abs(scores[b]! - s) / Math.abs(s));
      });
      for (const t of [out.raw, out.smooth, out.scores]) t.dispose();
    }
    model.dispose();
  } else skipped.push('eval');

  return { checks, skipped, pass: checks.every((c) => c.pass) };
}

function fullError(got: Float32Array, want: Float32Array): number {
  if (got.length !== want.length) return Number.POSITIVE_INFINITY;
  let d = 0;
  let m = 0;
  for (let i = 0; i < want.length; i++) {
    d = Math.max(d, Math.abs(got[i]! - want[i]!));
    m = Math.max(m, Math.abs(want[i]!));
  }
  return d / Math.max(m, 1e-30);
}
