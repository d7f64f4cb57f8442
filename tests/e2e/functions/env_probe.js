// What a nodejs function sees: its file tree, home folder, user, interpreter and environment
// (test_runtime_env.py).
const fs = require("fs");
const os = require("os");

function state(p) {
  try {
    fs.statSync(p);
    return "exists";
  } catch (e) {
    return e.code;
  }
}

exports.handler = async (event) => {
  const paths = {};
  for (const p of event.paths || []) paths[p] = state(p);
  return {
    root: fs.readdirSync("/").sort(),
    paths,
    homedir: os.homedir(),
    user: os.userInfo().username,
    execPath: process.execPath,
    version: process.version,
    env: process.env,
    opt: fs.readdirSync("/opt"),
    globalPaths: require("module").globalPaths,
  };
};
