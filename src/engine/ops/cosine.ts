/** (cosine ops: in progress) */
export {};
