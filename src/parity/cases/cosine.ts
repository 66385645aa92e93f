/** Parity runners for the cosine family (work in progress: registers none yet). */
export {};
