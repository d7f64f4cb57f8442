// hello-node: Stoke's `nodejs*` runtime example (Handler `index.handler`, an async handler).
// Answers a greeting, the context's fields, and a counter kept in a module global: it rises
// from call to call while the execution environment stays warm.
let calls = 0;

exports.handler = async (event, context) => {
  calls += 1;
  if (event && event.fail) {
    throw new TypeError(event.fail);
  }
  console.log(`hello-node call ${calls}`);
  return {
    message: `Hello, ${(event && event.name) || "world"}!`,
    calls,
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    invokedFunctionArn: context.invokedFunctionArn,
    memoryLimitInMB: context.memoryLimitInMB,
    awsRequestId: context.awsRequestId,
    logGroupName: context.logGroupName,
    logStreamName: context.logStreamName,
    remainingMs: context.getRemainingTimeInMillis(),
    clientContext: context.clientContext,
    traceId: process.env._X_AMZN_TRACE_ID,
  };
};
