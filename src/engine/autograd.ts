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
  /** The tensors whose values `backward` reads (kept alive until it has run). */
  saved: readonly Tensor[];
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
 *
 * `saved` lists the tensors whose *values* the rule reads (PyTorch's save_for_backward); by default the
 * inputs and the output. Declaring fewer lets `release` free the others during the forward pass: an add
 * or a concat needs no values at all, a ReLU only its output.
 */
export function record(
  op: string,
  out: Tensor,
  inputs: readonly Tensor[],
  backward: GradNode['backward'],
  saved: readonly Tensor[] = [...inputs, out],
): Tensor {
  if (gradDepth === 0 && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward, saved };
    for (const t of saved) t.savedBy++;
  }
  return out;
}

// Views pass the gradient through reshaped (the gradient's own views are not recorded: gradients never
// require a gradient).
setViewRecorder((src, out) => {
  record('view', out, [src], (g) => [g.view(src.shape)], []);
});

/**
 * Give up temporaries once their last consumer has been recorded, so the pool can hand their buffers to
 * the next layer instead of keeping every activation of a network alive until the enclosing scope ends
 * (what dropping the last Python reference does in PyTorch). The caller must not read them afterwards.
 *   - without gradient recording (inference, the frozen teacher): disposed now;
 *   - with recording: the values are freed now if no recorded backward rule reads them (the autograd node
 *     stays, so gradients still flow through), else as soon as the last rule that reads them has run.
 */
export function release(...ts: (Tensor | null | undefined)[]): void {
  for (const t of ts) {
    if (!t) continue;
    if (gradDepth > 0) t.dispose();
    else if (t.savedBy > 0) t.dropped = true;
    else t.freeData();
  }
}

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
    const node = t.node;
    const gin = node.backward(g);
    if (g !== seed || ownSeed) g.dispose();
    // this rule has run: what it saved may be freed now if its owner released it
    t.node = null;
    for (const x of node.saved) if (--x.savedBy === 0 && x.dropped) x.freeData();
    node.inputs.forEach((x, i) => {
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
  for (const t of order) {
    // rules that did not run (no gradient reached them) release what they saved
    if (t.node) for (const x of t.node.saved) if (--x.savedBy === 0 && x.dropped) x.freeData();
    t.node = null;
  }
}
