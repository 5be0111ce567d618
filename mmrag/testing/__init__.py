"""Local process harnesses for tests and benchmarks (like ``celery.contrib.testing``): a real
Redis server and real ``mmrag worker`` processes on loopback, started and ended by their owner."""
