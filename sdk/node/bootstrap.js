// Stoke's Node.js runtime: the loop that runs a `nodejs*` function over the Lambda Runtime API.
//
// Stoke runs it as `/var/lang/bin/node /var/runtime/bootstrap.js` inside the sandbox, with
// `_HANDLER=file.export`, `LAMBDA_TASK_ROOT=/var/task` and `AWS_LAMBDA_RUNTIME_API` set. The
// handler file is `file.js`, `file.mjs` or `file.cjs` (ES modules through `import()`); the
// handler may be async (or return a promise) or take a callback (3 parameters). Errors are
// posted as Lambda's `{"errorType", "errorMessage", "trace"}`; an import failure goes to
// `/runtime/init/error` (`Runtime.ImportModuleError`, `Runtime.HandlerNotFound`).
"use strict";

const net = require("net");
const fs = require("fs");
const path = require("path");
const { pathToFileURL } = require("url");

const [HOST, PORT] = (process.env.AWS_LAMBDA_RUNTIME_API || "127.0.0.1:9001").split(":");
const PREFIX = "/2018-06-01/runtime";

// A minimal HTTP/1.1 client for the Runtime API: one kept-alive socket, one request at a time,
// Content-Length bodies only (what the Runtime API sends). `http.request` costs a few hundred
// microseconds of every call in parsing, agents and event plumbing; this costs tens.
class Conn {
  constructor(host, port) {
    this.host = host;
    this.port = port;
    this.sock = null;
    this.buf = Buffer.alloc(0);
    this.pending = null;
  }

  connect() {
    const sock = net.connect({ host: this.host, port: this.port });
    sock.setNoDelay(true);
    sock.on("data", (d) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.parse();
    });
    const gone = (err) => {
      if (this.sock !== sock) return;
      this.sock = null;
      this.buf = Buffer.alloc(0);
      const p = this.pending;
      this.pending = null;
      if (p) p.reject(err || new Error("the Runtime API closed the connection"));
    };
    sock.on("error", gone);
    sock.on("close", () => gone());
    this.sock = sock;
  }

  parse() {
    const p = this.pending;
    if (!p) return;
    const end = this.buf.indexOf("\r\n\r\n");
    if (end < 0) return;
    const lines = this.buf.toString("latin1", 0, end).split("\r\n");
    const status = Number(lines[0].split(" ", 3)[1]);
    const headers = {};
    for (let i = 1; i < lines.length; i++) {
      const c = lines[i].indexOf(":");
      if (c > 0) headers[lines[i].slice(0, c).trim().toLowerCase()] = lines[i].slice(c + 1).trim();
    }
    const n = Number(headers["content-length"] || 0);
    if (this.buf.length < end + 4 + n) return;
    const body = this.buf.subarray(end + 4, end + 4 + n);
    this.buf = this.buf.subarray(end + 4 + n);
    this.pending = null;
    p.resolve({ status, headers, body });
  }

  send(head, data) {
    return new Promise((resolve, reject) => {
      if (!this.sock) this.connect();
      this.pending = { resolve, reject };
      this.sock.write(data.length ? Buffer.concat([Buffer.from(head, "latin1"), data]) : head);
    });
  }

  async request(method, urlPath, body, headers) {
    const data = body === undefined ? Buffer.alloc(0) : Buffer.from(body);
    let head = `${method} ${PREFIX}${urlPath} HTTP/1.1\r\nHost: ${this.host}\r\n`;
    for (const [k, v] of Object.entries(headers || {})) head += `${k}: ${v}\r\n`;
    head += `Content-Length: ${data.length}\r\n\r\n`;
    const reused = this.sock !== null;
    try {
      return await this.send(head, data);
    } catch (e) {
      // A kept-alive socket the server closed: one retry on a new one.
      if (!reused) throw e;
      return this.send(head, data);
    }
  }
}

const conn = new Conn(HOST, Number(PORT));
const request = (method, urlPath, body, headers) => conn.request(method, urlPath, body, headers);

function errorBody(err, type) {
  const e = err instanceof Error ? err : new Error(String(err));
  return {
    errorType: type || (err instanceof Error ? e.name : "Error"),
    errorMessage: e.message,
    trace: (e.stack || "").split("\n"),
  };
}

class ImportError extends Error {
  constructor(type, message) {
    super(message);
    this.name = type;
  }
}

async function loadHandler(spec) {
  const root = process.env.LAMBDA_TASK_ROOT || "/var/task";
  const dot = spec.lastIndexOf(".");
  if (dot <= 0 || dot === spec.length - 1) {
    throw new ImportError("Runtime.MalformedHandlerName", `Bad handler ${spec}`);
  }
  const file = spec.slice(0, dot);
  const name = spec.slice(dot + 1);
  let mod;
  const base = path.resolve(root, file);
  const found = [".js", ".mjs", ".cjs"].map((ext) => base + ext).find((p) => fs.existsSync(p));
  if (!found) {
    throw new ImportError(
      "Runtime.ImportModuleError",
      `Error: Cannot find module '${file}'\nRequire stack:\n- ${__filename}`,
    );
  }
  try {
    if (found.endsWith(".mjs")) {
      mod = await import(pathToFileURL(found).href);
    } else {
      try {
        mod = require(found);
      } catch (e) {
        if (e && e.code === "ERR_REQUIRE_ESM") {
          mod = await import(pathToFileURL(found).href);
        } else {
          throw e;
        }
      }
    }
  } catch (e) {
    if (e instanceof SyntaxError) {
      throw new ImportError("Runtime.UserCodeSyntaxError", `${e.name}: ${e.message}`);
    }
    throw new ImportError("Runtime.ImportModuleError", `${e.name}: ${e.message}`);
  }
  let fn = mod && mod[name];
  if (fn === undefined && mod && mod.default) fn = mod.default[name];
  if (typeof fn !== "function") {
    throw new ImportError("Runtime.HandlerNotFound", `${spec} is undefined or not exported`);
  }
  return fn;
}

function makeContext(headers) {
  const deadline = Number(headers["lambda-runtime-deadline-ms"] || 0);
  let clientContext;
  if (headers["lambda-runtime-client-context"]) {
    try {
      clientContext = JSON.parse(headers["lambda-runtime-client-context"]);
    } catch (_) {
      clientContext = undefined;
    }
  }
  let identity;
  if (headers["lambda-runtime-cognito-identity"]) {
    try {
      identity = JSON.parse(headers["lambda-runtime-cognito-identity"]);
    } catch (_) {
      identity = undefined;
    }
  }
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: headers["lambda-runtime-invoked-function-arn"],
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: headers["lambda-runtime-aws-request-id"],
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    clientContext,
    identity,
    getRemainingTimeInMillis: () => Math.max(deadline - Date.now(), 0),
  };
}

// Runs the handler: a promise of { ok: value } or { err: error }.
function run(handler, event, context) {
  return new Promise((resolve) => {
    let settled = false;
    const done = (err, value) => {
      if (settled) return;
      settled = true;
      if (err !== undefined && err !== null) resolve({ err });
      else resolve({ ok: value });
    };
    context.done = done;
    context.succeed = (v) => done(null, v);
    context.fail = (e) => done(e === undefined ? new Error("handled") : e);
    try {
      const r = handler.length >= 3 ? handler(event, context, done) : handler(event, context);
      if (r && typeof r.then === "function") {
        r.then((v) => done(null, v), (e) => done(e === undefined ? new Error("undefined") : e));
      } else if (handler.length < 3) {
        done(null, r);
      }
    } catch (e) {
      done(e);
    }
  });
}

async function main() {
  let handler;
  try {
    handler = await loadHandler(process.env._HANDLER || "");
  } catch (e) {
    const type = e instanceof ImportError ? e.name : "Runtime.UnhandledPromiseRejection";
    const body = errorBody(e, type);
    console.error(`ERROR\t${type}: ${e.message}`);
    await request("POST", "/init/error", JSON.stringify(body), {
      "Content-Type": "application/json",
      "Lambda-Runtime-Function-Error-Type": type,
    });
    process.exit(1);
  }
  for (;;) {
    const next = await request("GET", "/invocation/next");
    if (next.status !== 200) {
      await new Promise((r) => setTimeout(r, 10));
      continue;
    }
    const id = next.headers["lambda-runtime-aws-request-id"];
    if (next.headers["lambda-runtime-trace-id"]) {
      process.env._X_AMZN_TRACE_ID = next.headers["lambda-runtime-trace-id"];
    } else {
      delete process.env._X_AMZN_TRACE_ID;
    }
    let event;
    try {
      event = next.body.length ? JSON.parse(next.body.toString("utf8")) : null;
    } catch (e) {
      event = next.body.toString("utf8");
    }
    const result = await run(handler, event, makeContext(next.headers));
    if ("err" in result) {
      const body = errorBody(result.err);
      console.error(`${new Date().toISOString()}\t${id}\tERROR\tInvoke Error \t${JSON.stringify(body)}`);
      await request("POST", `/invocation/${id}/error`, JSON.stringify(body), {
        "Content-Type": "application/json",
        "Lambda-Runtime-Function-Error-Type": body.errorType,
      });
    } else {
      let out;
      try {
        out = result.ok === undefined ? "null" : JSON.stringify(result.ok);
      } catch (e) {
        const body = errorBody(e);
        await request("POST", `/invocation/${id}/error`, JSON.stringify(body), {
          "Content-Type": "application/json",
        });
        continue;
      }
      await request("POST", `/invocation/${id}/response`, out, {
        "Content-Type": "application/json",
      });
    }
  }
}

process.on("unhandledRejection", (reason) => {
  console.error("ERROR\tUnhandled Promise Rejection\t", reason);
});

main().catch((e) => {
  console.error("the Stoke Node.js runtime failed:", e);
  process.exit(1);
});
