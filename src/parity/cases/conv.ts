/** Parity runners for the conv family (work in progress: registers none yet). */
export {};
