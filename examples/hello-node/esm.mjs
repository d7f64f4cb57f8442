// An ES module handler (Handler `esm.handler`).
export const handler = async (event) => ({ style: "esm", event });
