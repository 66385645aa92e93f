/**
 * Reverse-mode autograd, micrograd-sized: each op that needs a gradient attaches a GradNode to its
 * output (its inputs and a backward closure); `backward(loss)` builds one topological order with an
 * iterative DFS (never a recursion per path: residual graphs would make that exponential), seeds the
 * output gradient and walks the order in reverse, accumulating into a map.
 *
 * Leaves (parameters) accumulate into `.grad` across calls, so gradient accumulation over several
 * batches is just "call backward twice, then step" — exactly what RD++ does every 2 batches.
 * `noGrad(fn)` runs without recording (the frozen teacher, evaluation).
 */
import { keep, setViewRecorder, type Tensor } from './tensor.js';

export interface GradNode {
  op: string;
  inputs: readonly Tensor[];
  /** Gradients w.r.t. each input (null where an input needs none). May return fresh tensors only. */
  backward: (gradOut: Tensor) => (Tensor | null)[];
}

let gradDepth = 0;

export function isGradEnabled(): boolean {
  return gradDepth === 0;
}

/** Run `fn` without recording gradients. */
export function noGrad<T>(fn: () => T): T {
  gradDepth++;
  try {
    return fn();
  } finally {
    gradDepth--;
  }
}

/**
 * Attach a backward rule to `out` when any input requires a gradient and recording is on.
 * Returns `out`. Ops call this once, right after launching their forward kernel.
 */
export function record(
  op: string,
  out: Tensor,
  inputs: readonly Tensor[],
  backward: GradNode['backward'],
): Tensor {
  if (gradDepth === 0 && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward };
  }
  return out;
}

// Views pass the gradient through reshaped (the gradient's own views are not recorded: gradients never
// require a gradient).
setViewRecorder((src, out) => {
  record('view', out, [src], (g) => [g.view(src.shape)]);
});

/** Mark a tensor as a trainable leaf. */
export function param(t: Tensor, name?: string): Tensor {
  t.requiresGrad = true;
  if (name) t.name = name;
  return keep(t);
}

/** Topological order of the tensors `root` depends on through recorded nodes (inputs before users). */
export function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<number>();
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root.id);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1] = i + 1;
      const next = inputs[i]!;
      if (next.requiresGrad && !seen.has(next.id)) {
        seen.add(next.id);
        stack.push([next, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order;
}

export interface BackwardHooks {
  /** How to add two gradients (an engine op). */
  add: (a: Tensor, b: Tensor) => Tensor;
  /** Add `src` into `dst` in place (accumulating a leaf's gradient). */
  addInto: (dst: Tensor, src: Tensor) => void;
  /** A copy with its own buffer. */
  clone: (t: Tensor) => Tensor;
  /** The seed gradient for a loss (ones of the loss's shape). */
  ones: (shape: readonly number[]) => Tensor;
}

let hooks: BackwardHooks | null = null;

/** ops/ registers the elementwise ops autograd needs (keeps this file free of kernel code). */
export function setBackwardHooks(h: BackwardHooks): void {
  hooks = h;
}

/**
 * Backpropagate from `root` (a scalar loss unless `seed` is given). Leaf gradients are accumulated into
 * `.grad` (and kept out of scopes); intermediate gradients are disposed as soon as they are consumed;
 * the graph is released (nodes dropped) afterwards.
 */
export function backward(root: Tensor, seed?: Tensor): void {
  if (!hooks) throw new Error('autograd: ops are not loaded (import the engine entry point)');
  if (!root.requiresGrad) throw new Error(`backward(): ${root.describe()} does not depend on any parameter`);
  if (!seed && root.size !== 1)
    throw new Error(`backward(): ${root.describe()} is not a scalar; pass a seed gradient`);
  const h = hooks;
  const order = topoOrder(root);
  const grads = new Map<number, Tensor>();
  grads.set(root.id, seed ?? h.ones(root.shape));
  const ownSeed = !seed;
  for (let k = order.length - 1; k >= 0; k--) {
    const t = order[k]!;
    const g = grads.get(t.id);
    if (!g) continue;
    grads.delete(t.id);
    if (!t.node) {
      // a leaf: accumulate
      if (t.grad) {
        h.addInto(t.grad, g);
        g.dispose();
      } else if (g.storage.refs > 1) {
        // g is a view shared with another gradient: a leaf's .grad is accumulated in place, so it
        // must own its buffer.
        t.grad = keep(h.clone(g));
        g.dispose();
      } else {
        t.grad = keep(g);
      }
      continue;
    }
    const gin = t.node.backward(g);
    if (g !== seed || ownSeed) g.dispose();
    t.node.inputs.forEach((x, i) => {
      const gi = gin[i];
      if (!gi) return;
      if (!x.requiresGrad) {
        gi.dispose();
        return;
      }
      const prev = grads.get(x.id);
      if (prev) {
        grads.set(x.id, h.add(prev, gi));
        prev.dispose();
        gi.dispose();
      } else grads.set(x.id, gi);
    });
  }
  for (const t of order) t.node = null;
}
