"""The test harness: throw-away databases and broker keys, the development stack, demo data, fake vendor web
services and a COSE builder. Tests, the demo and the benchmarks use it; nothing in production or the SDK imports it."""
