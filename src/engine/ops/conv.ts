/** (conv ops: in progress) */
export {};
