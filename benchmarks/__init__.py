"""Speed and memory harness for restore (issue 5). Run: ``python -m benchmarks.run``."""
