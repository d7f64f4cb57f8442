"""Real brokers for the event source tests, each started on a free loopback port with a
temporary data folder and stopped after, so that no test depends on a service left running.

- `RedisServer(dir).start()` runs `redis-server` (Debian package `redis-server`) with an
  append-only file synced on every write (a kill -9 loses nothing it acknowledged), and
  with `user=(name, password)` one ACL user only (the default user off);
  `.stop()`, `.kill()` (SIGKILL), `.restart()` (same port and data), `.url`, and
  `.command(*args)` to speak to it (a small RESP client over one socket: tests need a handful
  of commands, and the Python environment carries no Redis package).
- `RabbitServer(dir).start()` runs `rabbitmq-server` (Debian package `rabbitmq-server`) as a
  node of its own: its AMQP, distribution and epmd ports free ones, its data, logs, config
  and Erlang cookie under `dir`, so nothing is shared with a system broker; `.stop()`,
  `.kill()` (SIGKILL), `.restart()` / `.start()` again (same ports and data), `.close()`
  (the node and its epmd gone), `.url`, and `.declare()`, `.bind()`, `.publish()`,
  `.count()` through `pika` (the test requirements' AMQP client) on a connection of its
  own, or `.client()` for another (one per thread).
- `NatsServer(dir).start()` runs `nats-server -js` (Debian package `nats-server`) with its
  JetStream store in the folder (file-backed streams: a kill -9 loses nothing it
  acknowledged); the same `.stop()`, `.kill()`, `.restart()`, `.url`, and `.client()`, a small
  NATS client (publish with headers, JetStream's API, publishing with acknowledgements).
"""

from __future__ import annotations

from broker_nats import NatsClient, NatsError, NatsServer, nats_binary
from broker_rabbit import RabbitClient, RabbitServer, rabbit_binaries
from broker_redis import RedisError, RedisServer, redis_binary

__all__ = [
    "NatsClient",
    "NatsError",
    "NatsServer",
    "RabbitClient",
    "RabbitServer",
    "RedisError",
    "RedisServer",
    "nats_binary",
    "rabbit_binaries",
    "redis_binary",
]
