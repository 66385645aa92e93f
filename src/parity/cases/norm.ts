/** Parity runners for the norm family (work in progress: registers none yet). */
export {};
