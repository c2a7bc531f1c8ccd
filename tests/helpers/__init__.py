"""Code the test modules (and the benchmarks) share; no test module imports another one."""
