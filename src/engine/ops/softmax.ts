/** (softmax ops: in progress) */
export {};
