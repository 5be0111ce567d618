"""Local process harnesses for tests and benchmarks (like ``celery.contrib.testing``): a real
Redis server and real ``mmrag worker`` processes on loopback, and a fake Slack, started and
ended by their owner."""
