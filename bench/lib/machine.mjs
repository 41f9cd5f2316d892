// What the figures were measured on: they mean little without it.
import os from "node:os";
import pg from "pg";
import { redisInfo } from "./resources.mjs";

export async function machineInfo(ctx) {
  const cpus = os.cpus();
  const client = new pg.Client({ connectionString: ctx.baseDatabaseUrl.replace(/\/[^/]*$/, "/postgres") });
  await client.connect();
  const pgVersion = (await client.query("show server_version")).rows[0].server_version;
  await client.end();
  const redis = await redisInfo(ctx.redisUrl);
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.replace(/\s+/g, " ").trim() ?? "unknown",
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    loadAverage: os.loadavg().map((x) => Number(x.toFixed(2))),
    postgres: pgVersion,
    redis: `${redis.version}${redis.aof ? " (AOF on)" : " (AOF off)"}`,
  };
}
