/** Parity runners for the sinkhorn family (work in progress: registers none yet). */
export {};
