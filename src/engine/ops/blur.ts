/** (blur ops: in progress) */
export {};
