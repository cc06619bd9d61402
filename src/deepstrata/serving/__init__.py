"""Serving finished runs over the Open Inference Protocol (KServe v2), as Triton and KServe speak it.

Problem: a trained model is only useful to other programs once it answers requests: quickly
under load, safely against hostile input, observably, and in a protocol existing clients speak.
Idea: `strata serve RUN [RUN ...]` puts each run behind one FastAPI app (`app.py`) speaking the
protocol's HTTP/REST form (`protocol.py`: JSON tensors and the binary tensor extension). Each
model has a backend (`backends.py`: eager torch, or ONNX Runtime on the run's export) and a
dynamic batcher (`batcher.py`) that merges concurrent requests into one forward pass. Limits
(`limits.py`: body size, bounded queue, timeouts, bearer token) answer with the right status at
once; Prometheus metrics and one access-log line per request (`metrics.py`) show what happens;
`server.py` runs uvicorn on 127.0.0.1 and drains on SIGTERM.
"""
