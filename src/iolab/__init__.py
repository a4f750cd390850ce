"""iolab: honest storage benchmarks and fault-injecting storage test tools."""

__version__ = "0.1.0"
