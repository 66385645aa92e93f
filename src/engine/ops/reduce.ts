/** (reduce ops: in progress) */
export {};
