"""The node engine: the daemon on one Node core and one driver (`engine: node`).

engine.py composes it (`NodeAgent`); transport.py, executors.py and status.py are its
ports, boundary.py its input boundary, placing.py the daemon's placement behind the
Node's placer, metrics.py its counters, services.py its gRPC handlers.
"""
