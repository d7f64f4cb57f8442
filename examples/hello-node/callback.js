// A callback-style handler (Handler `callback.handler`): answers through `callback`.
exports.handler = (event, context, callback) => {
  if (event && event.fail) {
    callback(new Error(event.fail));
    return;
  }
  setTimeout(() => callback(null, { style: "callback", requestId: context.awsRequestId }), 5);
};
