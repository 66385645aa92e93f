/** (pool ops: in progress) */
export {};
